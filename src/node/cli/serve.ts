/** `slotgate serve`: runs an edge node until SIGTERM/SIGINT, then drains within --grace. */
import { DEFAULT_GRACE_MS, createEdgeNode } from "../edge-node.js";
import { createLogger, errorFields, errorMessage } from "../logger.js";
import { configPath, durationOption, logLevel, type Parsed } from "./args.js";
import { load } from "./shared.js";
import { EXIT, type CliIo } from "./io.js";

export async function serve(parsed: Parsed, io: CliIo): Promise<number> {
  const file = configPath(parsed);
  const graceMs = durationOption(parsed, "grace", DEFAULT_GRACE_MS);
  const logger = createLogger({ level: logLevel(parsed, "info") });
  const config = await load(file, io);
  if (!config) return EXIT.invalidConfig;

  let node: Awaited<ReturnType<typeof createEdgeNode>>;
  try {
    node = await createEdgeNode(config, { logger });
  } catch (error) {
    logger.error({ err: errorFields(error) }, "cannot create the edge node");
    io.stderr(`slotgate serve: ${errorMessage(error)}\n`);
    return EXIT.runtime;
  }

  // Signals are handled from here on, so that one arriving while start() waits (for the store,
  // say) still drains instead of killing the process.
  let stopRequested: NodeJS.Signals | undefined;
  let onStop: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      logger.warn({ signal }, "second signal: exiting without draining");
      process.exit(1);
    }
    stopRequested = signal;
    logger.info({ signal, graceMs }, "signal received");
    onStop?.();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await node.start();
  } catch (error) {
    io.stderr(`slotgate serve: cannot start: ${errorMessage(error)}\n`);
    await node.stop(0).catch(() => undefined);
    return EXIT.runtime;
  }

  return new Promise<number>((resolve) => {
    onStop = () => {
      node.stop(graceMs).then(
        () => resolve(EXIT.ok),
        (error: unknown) => {
          logger.error({ err: errorFields(error, true) }, "stop failed");
          resolve(EXIT.runtime);
        },
      );
    };
    if (stopRequested) onStop();
  });
}
