/**
 * Child processes of the proxy benchmark: spawn, wait for a line, read CPU time, stop — and make
 * sure none outlives the benchmark:
 * - every child is registered; `stopAll()` ends them (SIGTERM, then SIGKILL after a grace);
 * - a synchronous 'exit' hook SIGKILLs whatever is still registered (an uncaught error, Ctrl-C);
 * - each child gets a tiny watchdog shell reading a pipe from us: when this process dies without
 *   running hooks (SIGKILL), the pipe closes and the watchdog SIGKILLs the child.
 * Only processes started here are ever signalled, by their pid.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The last 64 KiB of stdout + stderr. */
  output(): string;
  readonly exited: Promise<number | string | null>;
  hasExited(): boolean;
  /** Resolves with the first match of `re` in the output (already seen or to come). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM (or `signal`), SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

interface Entry {
  child: ChildProcess;
  watchdog: ChildProcess | undefined;
}

const live = new Set<Entry>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const e of live) killQuietly(e, "SIGKILL");
  });
}

function killQuietly(e: Entry, signal: NodeJS.Signals): void {
  for (const c of [e.watchdog, e.child]) {
    try {
      c?.kill(signal);
    } catch {
      // already gone
    }
  }
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  hookExit();
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let exitedFlag = false;
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out = (out + chunk.toString("utf8")).slice(-65_536);
    for (const l of [...listeners]) l();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | string | null>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedFlag = true;
      resolve(code ?? signal);
      for (const l of [...listeners]) l();
    });
    child.once("error", (error) => {
      exitedFlag = true;
      out += `\n${error.message}`;
      resolve(null);
      for (const l of [...listeners]) l();
    });
  });
  const entry: Entry = { child, watchdog: child.pid === undefined ? undefined : spawnWatchdog(child.pid) };
  live.add(entry);
  void exited.then(() => {
    entry.watchdog?.kill("SIGKILL");
    live.delete(entry);
  });

  return {
    name,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    hasExited: () => exitedFlag,
    waitFor(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            done();
            resolve(m);
          } else if (exitedFlag) {
            done();
            reject(new Error(`${name} exited before printing ${re}:\n${out.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} did not print ${re} within ${timeoutMs} ms:\n${out.slice(-2000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5_000) {
      if (exitedFlag) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `sh` blocking on a pipe from us; when the pipe closes (we died), it SIGKILLs `pid`. */
function spawnWatchdog(pid: number): ChildProcess | undefined {
  try {
    const w = spawn("/bin/sh", ["-c", 'read _unused; kill -9 "$1" 2>/dev/null', "watchdog", String(pid)], { stdio: ["pipe", "ignore", "ignore"] });
    w.on("error", () => undefined);
    w.unref();
    (w.stdin as Socket | null)?.unref?.();
    return w;
  } catch {
    return undefined;
  }
}

/** Stops every child still running (SIGTERM, SIGKILL after `graceMs`). */
export async function stopAllChildren(graceMs = 3_000): Promise<void> {
  await Promise.all(
    [...live].map(async (e) => {
      if (e.child.exitCode !== null || e.child.signalCode !== null) return;
      const gone = new Promise((resolve) => e.child.once("exit", resolve));
      killQuietly({ child: e.child, watchdog: undefined }, "SIGTERM");
      const timer = setTimeout(() => killQuietly(e, "SIGKILL"), graceMs);
      await gone;
      clearTimeout(timer);
    }),
  );
}

// ── CPU time from /proc ─────────────────────────────────────────────────────────────────────────

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU time of a process (all its threads) in ms, or NaN when it cannot be read. */
export function cpuTimeMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces, inside parentheses).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

// ── ports and readiness ────────────────────────────────────────────────────────────────────────

/** A port on 127.0.0.1 that was free a moment ago (bound, then released). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds. */
export async function waitForPort(port: number, timeoutMs = 10_000, child?: Child): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (child?.hasExited()) throw new Error(`${child.name} exited before listening on ${port}:\n${child.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms${child ? `:\n${child.output().slice(-2000)}` : ""}`);
    await sleep(25);
  }
}
