/** `slotgate demo`: an edge node on the memory store in front of built-in slow origins, with load. */
import { startDemo } from "../demo.js";
import { createLogger, errorMessage } from "../logger.js";
import { durationOption, intOption, logLevel, UsageError, type Parsed } from "./args.js";
import { EXIT, type CliIo } from "./io.js";

export async function demo(parsed: Parsed, io: CliIo): Promise<number> {
  const port = intOption(parsed, "port", 8080, 0, 65535);
  const statsPort = intOption(parsed, "stats-port", 8404, 0, 65535);
  const durationMs = durationOption(parsed, "duration", 5_000);
  const clients = intOption(parsed, "clients", 40, 1, 1000);
  const level = logLevel(parsed, "warn");
  const load = !parsed.flags.has("no-load");
  if (port !== 0 && port === statsPort) throw new UsageError("--port and --stats-port must differ");
  const print = (line: string) => io.stdout(`${line}\n`);

  let handle: Awaited<ReturnType<typeof startDemo>>;
  try {
    handle = await startDemo({ port, statsPort, load, durationMs, clients, logger: createLogger({ level }), print });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    io.stderr(
      `slotgate demo: cannot start: ${errorMessage(error)}${code === "EADDRINUSE" ? " (pick other ports with --port / --stats-port, or 0 for free ones)" : ""}\n`,
    );
    return EXIT.runtime;
  }
  if (load) {
    await handle.result;
    await handle.stop();
    return EXIT.ok;
  }
  return new Promise<number>((resolve) => {
    const onSignal = () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      void handle.stop().then(() => resolve(EXIT.ok));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
