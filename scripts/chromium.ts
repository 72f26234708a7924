// How slotgate runs Debian's headless Chromium from the command line, for the stats browser test
// and for the README's screenshot: no sandbox (it runs as root in CI), no GPU, no background
// traffic of its own (updates, sync, QUIC), a throwaway profile in `profileDir`.

export const CHROMIUM_TIMEOUT_MS = 60_000;

export function headlessChromiumArgs(profileDir: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    `--user-data-dir=${profileDir}`,
  ];
}
