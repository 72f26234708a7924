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
import http from "node:http";
import { readFileSync } from "node:fs";
import { SlotgateConfigError, formatIssue } from "../core/errors.js";
import { readGroupStats, type GuardStats } from "../core/guard.js";
import { createGuard } from "../index.js";
import { formatDuration, parseDuration } from "../edge/config/duration.js";
import { loadEdgeConfig } from "./config/load.js";
import type { EdgeConfig } from "../edge/config/schema.js";
import { createRequestPlanner, toGuardOptions } from "../edge/config/to-guard.js";
import { startDemo } from "./demo.js";
import { DEFAULT_GRACE_MS, createEdgeNode } from "./edge-node.js";
import type { NodeStats } from "./frontend.js";
import { LOG_LEVELS, createLogger, errorFields, errorMessage, redactUrl, type LogLevel } from "./logger.js";
import { publicStats } from "./stats/keys.js";
import { formatStatsTable } from "./stats-table.js";
import { openStore } from "./store.js";

export const EXIT = { ok: 0, invalidConfig: 1, usage: 2, runtime: 3 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

class UsageError extends Error {}

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

interface Parsed {
  command: string | undefined;
  /** Positional arguments after the command. */
  rest: string[];
  values: Map<string, string>;
  flags: Set<string>;
}

const VALUE_OPTIONS: Record<string, readonly string[]> = {
  serve: ["config", "grace", "log-level"],
  check: ["config"],
  stats: ["config"],
  demo: ["port", "stats-port", "duration", "clients", "log-level"],
};
const FLAG_OPTIONS: Record<string, readonly string[]> = {
  serve: ["help"],
  check: ["help"],
  stats: ["help", "json"],
  demo: ["help", "no-load"],
};
const SHORT: Record<string, string> = { c: "config", h: "help", v: "version" };

function parseArgs(argv: readonly string[]): Parsed {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  let command: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-") || arg === "-") {
      if (command === undefined) command = arg;
      else if (command === "help" && rest.length === 0) rest.push(arg);
      else throw new UsageError(`unexpected argument: ${arg.slice(0, 80)}`);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else {
      name = SHORT[arg.slice(1)] ?? arg;
    }
    if (name === "help" || name === "version") {
      flags.add(name);
      continue;
    }
    const cmd = command ?? "";
    if (VALUE_OPTIONS[cmd]?.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values.set(name, value);
    } else if (FLAG_OPTIONS[cmd]?.includes(name) && inline === undefined) {
      flags.add(name);
    } else {
      const shown = arg.slice(0, 80);
      throw new UsageError(command === undefined ? `unknown option ${shown} (options go after the command)` : `unknown option for ${command}: ${shown}`);
    }
  }
  return { command, rest, values, flags };
}

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
    parsed = parseArgs(argv);
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

// ── shared ─────────────────────────────────────────────────────────────────────────────────────

function configPath(parsed: Parsed): string {
  const file = parsed.values.get("config");
  if (file === undefined) throw new UsageError("-c FILE is required");
  return file;
}

function logLevel(parsed: Parsed, fallback: LogLevel): LogLevel {
  const level = parsed.values.get("log-level") ?? fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got ${level.slice(0, 40)}`);
  return level as LogLevel;
}

function durationOption(parsed: Parsed, name: string, fallback: number): number {
  const raw = parsed.values.get(name);
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < 0 || ms > 24 * 3_600_000) throw new UsageError(`--${name}: expected a duration such as 10s, 500ms or 2m, got ${raw.slice(0, 40)}`);
  return ms;
}

function intOption(parsed: Parsed, name: string, fallback: number, min: number, max: number): number {
  const raw = parsed.values.get(name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new UsageError(`--${name}: expected an integer from ${min} to ${max}, got ${raw.slice(0, 40)}`);
  return Number(raw);
}

/** Loads the config, or prints its problems and returns undefined. */
async function load(file: string, io: CliIo): Promise<EdgeConfig | undefined> {
  try {
    return await loadEdgeConfig(file);
  } catch (error) {
    if (error instanceof SlotgateConfigError) {
      const n = error.issues.length;
      io.stderr(`${file}: invalid config (${n} problem${n === 1 ? "" : "s"}):\n${error.issues.map((i) => `  ${formatIssue(i)}\n`).join("")}`);
      return undefined;
    }
    throw error;
  }
}

function describeStore(config: EdgeConfig): string {
  const s = config.store;
  switch (s.type) {
    case "memory":
      return "memory (this process only)";
    case "redis":
      return `redis ${redactUrl(s.url)}${s.prefix === null ? "" : ` prefix ${s.prefix}`}`;
    case "redis-cluster":
      return `redis-cluster ${s.urls.map(redactUrl).join(", ")}${s.prefix === null ? "" : ` prefix ${s.prefix}`}`;
    case "durable-object":
      return `durable-object ${redactUrl(s.url)}`;
  }
}

// ── check ──────────────────────────────────────────────────────────────────────────────────────

async function check(parsed: Parsed, io: CliIo): Promise<number> {
  const file = configPath(parsed);
  const config = await load(file, io);
  if (!config) return EXIT.invalidConfig;
  // What serve would build next: the guard's spec and the request planner.
  try {
    const guard = createGuard(toGuardOptions(config));
    createRequestPlanner(config);
    await guard.close();
  } catch (error) {
    const lines = error instanceof SlotgateConfigError ? error.issues.map((i) => `  ${formatIssue(i)}\n`).join("") : `  ${errorMessage(error)}\n`;
    io.stderr(`${file}: the limits cannot be built:\n${lines}`);
    return EXIT.invalidConfig;
  }
  const out: string[] = [`ok: ${file}`];
  if (config.version === null && config.store.type !== "memory") {
    io.stderr(
      `warning: ${file}: store ${config.store.type} is shared by the fleet, and the config has no version: the last node to start sets the fleet's limits (a rolling deploy, or a node started with an old file, changes them for every node). Add a top-level version and raise it with every change of limits.\n`,
    );
  }
  out.push(`  group ${config.group}${config.version === null ? "" : ` · version ${config.version}`} · store ${describeStore(config)} · on_store_error ${config.onStoreError}${config.localShare === null ? "" : ` (local_share ${config.localShare})`}`);
  if (config.global.maxconn !== null || config.node.maxconn !== null) {
    out.push(`  global maxconn ${config.global.maxconn ?? "-"} · node maxconn ${config.node.maxconn ?? "-"}`);
  }
  for (const f of Object.values(config.frontends)) {
    const extra = [
      f.mode === "http" ? `deny_status ${f.denyStatus}` : `delay_before_close ${formatDuration(f.delayBeforeCloseMs)}`,
      f.priority.length > 0 ? `${f.priority.length} priority rule${f.priority.length === 1 ? "" : "s"}` : "",
      f.limits.length > 0 ? `keyed limits ${f.limits.map((l) => `${l.name} (${l.maxconn})`).join(", ")}` : "",
    ].filter((s) => s !== "");
    out.push(`  frontend ${f.name}: ${f.mode} on ${f.bind.text}, maxconn ${f.maxconn ?? "-"} → ${f.defaultBackend} · ${extra.join(" · ")}`);
  }
  for (const b of Object.values(config.backends)) {
    const servers = b.servers.map((s) => `${s.name} ${s.address.form === "url" ? s.address.url : `${s.address.host}:${s.address.port}`} (maxconn ${s.maxconn ?? "-"}${s.down ? ", down" : ""})`);
    out.push(
      `  backend ${b.name}: ${b.balance}, maxconn ${b.maxconn ?? "-"}, maxqueue ${b.maxqueue ?? "-"}, timeout queue ${formatDuration(b.timeout.queueMs)} connect ${formatDuration(b.timeout.connectMs)} server ${formatDuration(b.timeout.serverMs)} · ${servers.join(", ")}`,
    );
  }
  if (config.stats) out.push(`  stats on ${config.stats.bind.text}${config.stats.token === null ? "" : " (token required)"}${config.stats.showKeys ? " · keyed values shown raw" : ""}`);
  if (config.log.query) out.push("  log: request paths with their query strings");
  io.stdout(`${out.join("\n")}\n`);
  return EXIT.ok;
}

// ── serve ──────────────────────────────────────────────────────────────────────────────────────

async function serve(parsed: Parsed, io: CliIo): Promise<number> {
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

// ── stats ──────────────────────────────────────────────────────────────────────────────────────

async function stats(parsed: Parsed, io: CliIo): Promise<number> {
  const file = configPath(parsed);
  const config = await load(file, io);
  if (!config) return EXIT.invalidConfig;
  const json = parsed.flags.has("json");

  let snapshot: GuardStats;
  let node: NodeStats | undefined;
  if (config.store.type === "memory") {
    if (!config.stats) {
      io.stderr(`slotgate stats: ${file} uses the memory store, whose numbers live inside the serving process, and has no stats listener to ask (add stats: { bind: 127.0.0.1:8404 })\n`);
      return EXIT.runtime;
    }
    try {
      ({ stats: snapshot, node } = await fetchStatsJson(config));
    } catch (error) {
      io.stderr(`slotgate stats: the memory store's numbers live inside the serving process, and its stats listener (${config.stats.bind.text}) did not answer: ${errorMessage(error)}\n`);
      return EXIT.runtime;
    }
  } else {
    const logger = createLogger({ level: "silent" });
    let opened: Awaited<ReturnType<typeof openStore>>;
    try {
      opened = await openStore(config.store, logger);
    } catch (error) {
      io.stderr(`slotgate stats: ${errorMessage(error)}\n`);
      return EXIT.runtime;
    }
    try {
      if (!(await opened.ready(5_000))) {
        io.stderr(`slotgate stats: cannot reach the store (${opened.description})\n`);
        return EXIT.runtime;
      }
      // Read-only (SPEC §2 rule 13): the group is not opened, so FILE's limits are never pushed.
      const read = await readGroupStats(opened.store, config.group);
      if (read === undefined) {
        io.stderr(`slotgate stats: the store (${opened.description}) has no state for group ${config.group}: no node has opened it\n`);
        return EXIT.runtime;
      }
      snapshot = publicStats(read, config);
    } catch (error) {
      io.stderr(`slotgate stats: ${errorMessage(error)}\n`);
      return EXIT.runtime;
    } finally {
      await opened.close();
    }
  }
  io.stdout(json ? `${JSON.stringify({ stats: snapshot, ...(node ? { node } : {}) }, null, 2)}\n` : formatStatsTable(snapshot, config, node));
  return EXIT.ok;
}

function fetchStatsJson(config: EdgeConfig): Promise<{ stats: GuardStats; node: NodeStats | undefined }> {
  const bind = config.stats!.bind;
  const host = bind.wildcard ? (bind.family === 6 ? "::1" : "127.0.0.1") : bind.host;
  const headers: http.OutgoingHttpHeaders = config.stats!.token === null ? {} : { authorization: `Bearer ${config.stats!.token}` };
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: bind.port, path: "/stats.json", headers, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024 * 1024) req.destroy(new Error("answer too large"));
        else chunks.push(c);
      });
      res.once("end", () => {
        if (res.statusCode !== 200) {
          reject(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { stats?: GuardStats; node?: NodeStats };
          if (!body.stats || typeof body.stats !== "object") throw new Error("no stats in the answer");
          resolve({ stats: body.stats, node: body.node });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      res.on("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

// ── demo ───────────────────────────────────────────────────────────────────────────────────────

async function demo(parsed: Parsed, io: CliIo): Promise<number> {
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
    io.stderr(`slotgate demo: cannot start: ${errorMessage(error)}${code === "EADDRINUSE" ? " (pick other ports with --port / --stats-port, or 0 for free ones)" : ""}\n`);
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
