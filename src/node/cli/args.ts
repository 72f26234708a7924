/**
 * The command line's options, parsed with `node:util`'s `parseArgs`: each command declares its
 * options, and anything else is a usage error (exit 2).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseDuration } from "../../edge/config/duration.js";
import { LOG_LEVELS, type LogLevel } from "../logger.js";

export class UsageError extends Error {}

export interface Parsed {
  command: string | undefined;
  /** Positional arguments after the command. */
  rest: string[];
  values: Map<string, string>;
  flags: Set<string>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;
const HELP_OPTION: Options = { help: { type: "boolean", short: "h" } };
const CONFIG: Options = { config: { type: "string", short: "c" } };

/** The options of each command. */
const OPTIONS: Record<string, Options> = {
  serve: { ...HELP_OPTION, ...CONFIG, grace: { type: "string" }, "log-level": { type: "string" } },
  check: { ...HELP_OPTION, ...CONFIG },
  stats: { ...HELP_OPTION, ...CONFIG, json: { type: "boolean" } },
  demo: {
    ...HELP_OPTION,
    port: { type: "string" },
    "stats-port": { type: "string" },
    duration: { type: "string" },
    clients: { type: "string" },
    "log-level": { type: "string" },
    "no-load": { type: "boolean" },
  },
};
/** Before a command, only these. */
const TOP: Options = { ...HELP_OPTION, version: { type: "boolean", short: "v" } };

/** `slotgate [--help|--version]`, `slotgate help [topic]`, or `slotgate <command> [options]`. */
export function parseCommandLine(argv: readonly string[]): Parsed {
  const first = argv[0];
  const command = first !== undefined && !first.startsWith("-") ? first : undefined;
  const args = command === undefined ? [...argv] : argv.slice(1);
  const options = command === undefined ? TOP : (OPTIONS[command] ?? (command === "help" ? {} : HELP_OPTION));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: command === "help" });
  } catch (error) {
    const message = (error as Error).message.split("\n")[0]!.slice(0, 200);
    throw new UsageError(command === undefined ? `${message} (options go after the command)` : message);
  }
  if (command === "help" && parsed.positionals.length > 1) throw new UsageError(`unexpected argument: ${parsed.positionals[1]!.slice(0, 80)}`);
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === "string") values.set(name, value);
    else if (value === true) flags.add(name);
  }
  return { command, rest: parsed.positionals, values, flags };
}

export function configPath(parsed: Parsed): string {
  const file = parsed.values.get("config");
  if (file === undefined) throw new UsageError("-c FILE is required");
  return file;
}

export function logLevel(parsed: Parsed, fallback: LogLevel): LogLevel {
  const level = parsed.values.get("log-level") ?? fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got ${level.slice(0, 40)}`);
  return level as LogLevel;
}

export function durationOption(parsed: Parsed, name: string, fallback: number): number {
  const raw = parsed.values.get(name);
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < 0 || ms > 24 * 3_600_000)
    throw new UsageError(`--${name}: expected a duration such as 10s, 500ms or 2m, got ${raw.slice(0, 40)}`);
  return ms;
}

export function intOption(parsed: Parsed, name: string, fallback: number, min: number, max: number): number {
  const raw = parsed.values.get(name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max)
    throw new UsageError(`--${name}: expected an integer from ${min} to ${max}, got ${raw.slice(0, 40)}`);
  return Number(raw);
}

/** Loads the config, or prints its problems and returns undefined. */
