/**
 * The `slotgate` command line (SPEC §5). `bin/slotgate.js` calls {@link runCli}.
 *
 * Exit codes:
 *   0  success (for `serve`: stopped by SIGTERM/SIGINT after draining)
 *   1  the config file is invalid (every problem printed with its path), or `check` failed
 *   2  usage error (unknown command or option, bad option value)
 *   3  runtime failure: an address cannot be bound, the store cannot be reached or is not
 *      available in this build, the stats of a memory-store node cannot be fetched
 *
 * Logs (`serve`, `demo`) are JSON lines on stdout (pino), at `--log-level` (default info; demo:
 * warn). Reports (`check`, `stats`, `demo`) are plain text on stdout; errors go to stderr.
 */
import { readFileSync } from "node:fs";
import { LOG_LEVELS } from "./logger.js";
import { parseCommandLine, UsageError, type Parsed } from "./cli/args.js";
import { check } from "./cli/check.js";
import { demo } from "./cli/demo.js";
import { defaultIo, EXIT, type CliIo } from "./cli/io.js";
import { serve } from "./cli/serve.js";
import { stats } from "./cli/stats.js";

export { EXIT, type CliIo } from "./cli/io.js";

const MAIN_HELP = `slotgate — a cluster-wide concurrency guard (HAProxy's maxconn, queue and priorities across a fleet)

Usage: slotgate <command> [options]

Commands:
  serve  -c FILE   run an edge node (HTTP/TCP proxy) from a config file
  check  -c FILE   validate a config file
  stats  -c FILE   print the fleet's live numbers from the config's store
  demo             an edge node in front of built-in slow origins, with a load generator

Options:
  -h, --help       help (also: slotgate <command> --help)
  -v, --version    print the version

Exit codes: 0 ok · 1 invalid config · 2 usage error · 3 runtime failure
`;

const HELP: Record<string, string> = {
  serve: `Usage: slotgate serve -c FILE [--grace 10s] [--log-level info]

Runs an edge node: one listener per frontend of FILE, limits shared through the config's store.
SIGTERM or SIGINT stops accepting, lets in-flight requests and connections finish within the
grace period, then closes the rest, releases every lease and exits 0. A second signal exits at once
(exit 1; the store reclaims the leases when they expire).

Options:
  -c, --config FILE      config file (YAML or JSON)
  --grace DURATION       drain time on shutdown, e.g. 10s, 500ms, 0 (default 10s)
  --log-level LEVEL      ${LOG_LEVELS.join(" | ")} (default info); JSON lines on stdout

Exit codes: 0 stopped by a signal · 1 invalid config · 2 usage error · 3 cannot start
`,
  check: `Usage: slotgate check -c FILE

Validates FILE. Prints "ok" and a summary (exit 0), or every problem with its path, e.g.
  backends.web_servers.servers.web1.maxconn: expected a positive integer, got -1
(exit 1). Warnings (on stderr, exit 0): a shared store (redis, redis-cluster, durable-object)
without a top-level version, under which the last node to start sets the fleet's limits.

Exit codes: 0 valid · 1 invalid · 2 usage error
`,
  stats: `Usage: slotgate stats -c FILE [--json]

Prints the fleet's live numbers as a table: one row per scope (in use / max, queued, peaks,
granted, rejected, queue timeouts, aborted, expired leases), read from the config's store.
With store type memory, the numbers live inside the serving process: they are read from its
stats listener (stats.bind of FILE, with stats.token when set).
Read-only: only FILE's store and group are used; the limits of FILE are never pushed, so the fleet
keeps running its own spec whatever FILE says.

Options:
  -c, --config FILE      config file
  --json                 print the raw numbers as JSON

Exit codes: 0 ok · 1 invalid config · 2 usage error · 3 store or stats listener unreachable
`,
  demo: `Usage: slotgate demo [--port 8080] [--stats-port 8404] [--duration 5s] [--clients 40] [--no-load]

Starts an edge node on the memory store (127.0.0.1:PORT) in front of two built-in origins that take
200–500 ms per request (maxconn 2 each), then fires mixed /checkout/ (priority class 1) and /browse/
(class 2) traffic and prints what happened: served per class, rejections by reason, queue wait per
class, and each origin's highest concurrency next to its maxconn.

Options:
  --port N               edge node port (default 8080; 0 picks a free one)
  --stats-port N         stats listener port (default 8404; 0 picks a free one)
  --duration DURATION    how long the load runs (default 5s)
  --clients N            concurrent clients (default 40)
  --no-load              do not generate load; keep serving until Ctrl-C
  --log-level LEVEL      (default warn)

Exit codes: 0 ok · 2 usage error · 3 cannot start (port in use?)
`,
};

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** Runs the command line; resolves with the exit code (`serve` resolves once it has stopped). */
export async function runCli(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    io.stderr(`slotgate: ${(error as Error).message}\n\n${MAIN_HELP}`);
    return EXIT.usage;
  }
  const { command, flags } = parsed;
  if (flags.has("version") && command === undefined) {
    io.stdout(`slotgate ${version()}\n`);
    return EXIT.ok;
  }
  if (command === undefined) {
    if (flags.has("help")) {
      io.stdout(MAIN_HELP);
      return EXIT.ok;
    }
    io.stderr(MAIN_HELP);
    return EXIT.usage;
  }
  if (command === "help") {
    const topic = parsed.rest[0];
    if (topic !== undefined && HELP[topic] === undefined) {
      io.stderr(`slotgate: no help for ${topic.slice(0, 40)}\n\n${MAIN_HELP}`);
      return EXIT.usage;
    }
    io.stdout(topic === undefined ? MAIN_HELP : HELP[topic]!);
    return EXIT.ok;
  }
  const help = HELP[command];
  if (help === undefined) {
    io.stderr(`slotgate: unknown command: ${command.slice(0, 40)}\n\n${MAIN_HELP}`);
    return EXIT.usage;
  }
  if (flags.has("help")) {
    io.stdout(help);
    return EXIT.ok;
  }
  try {
    switch (command) {
      case "check":
        return await check(parsed, io);
      case "serve":
        return await serve(parsed, io);
      case "stats":
        return await stats(parsed, io);
      default:
        return await demo(parsed, io);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`slotgate ${command}: ${error.message}\n\n${help}`);
      return EXIT.usage;
    }
    throw error;
  }
}
