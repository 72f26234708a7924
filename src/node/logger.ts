/**
 * Structured logs of the edge node: pino, one JSON line per event, to stdout by default.
 * Secrets never reach a log line: store URLs are logged through {@link redactUrl}, pino's
 * `redact` blanks every field named like a credential, whatever object it sits in, error messages
 * go through {@link errorFields} (URL credentials and keyed-limit values blanked), and request
 * paths through {@link logPath} (no query string unless `log.query`, keyed values digested).
 */
import { pino } from "pino";
import { redactUrl, safeText } from "../core/redact.js";
import { splitTarget, type LimitKey } from "../edge/config/match.js";
import type { EdgeConfig } from "../edge/config/schema.js";
import { keyedLimitName } from "../edge/config/to-guard.js";
import { flowDigest, keyDigest } from "./stats/keys.js";

export { redactUrl, safeText };

export type Logger = pino.Logger;
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const REDACT = [
  "token",
  "password",
  "authorization",
  "*.token",
  "*.password",
  "*.authorization",
  "*.*.token",
  "*.*.password",
  "headers.authorization",
  'headers["proxy-authorization"]',
  "headers.cookie",
];

export interface LoggerOptions {
  /** @default "info" */
  level?: LogLevel;
  /** Where lines go. @default process.stdout */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const opts: pino.LoggerOptions = {
    level: options.level ?? "info",
    base: { pid: process.pid },
    redact: { paths: REDACT, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** A logger that drops everything (the default of the library API). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/** An error as a small loggable object (no stack for expected faults). */
export function errorFields(error: unknown, withStack = false): Record<string, unknown> {
  if (error instanceof Error) {
    const out: Record<string, unknown> = { message: errorMessage(error), name: error.name };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") out.code = code;
    if (withStack && error.stack) out.stack = safeText(error.stack, 4000);
    return out;
  }
  return { message: errorMessage(error) };
}

/** The message of an error (or thrown value) as text safe for a log line or a terminal: see {@link safeText}. */
export function errorMessage(error: unknown): string {
  return safeText(error instanceof Error ? error.message : String(error));
}

/** A value safe to put in a log line: cut to `max` characters. */
export function clip(value: string | undefined, max = 256): string | undefined {
  if (value === undefined) return undefined;
  return value.length > max ? `${value.slice(0, max)}…` : value;
}

/**
 * A request target (`req.url`) as the edge node logs it: the path without its query string (query
 * strings carry API keys and tokens) unless the config says `log: { query: true }`, and cut.
 * Values a keyed limit of the frontend reads (the path under `key: { path }`, a parameter under
 * `key: { query }`), or its `fair_by` reads, are replaced by their stats digest (stats/keys.ts) even then, so a log line
 * correlates with the stats page without holding the value. An absolute-form target
 * (`http://user:pass@host/p`) loses its scheme and authority.
 */
export function logPath(target: string | undefined, config: Pick<EdgeConfig, "group" | "log" | "frontends">, frontend: string): string | undefined {
  if (target === undefined) return undefined;
  const { path, query } = splitTarget(target);
  const f = Object.hasOwn(config.frontends, frontend) ? config.frontends[frontend]! : undefined;
  // Each key source the frontend reads, with the digest its value is shown by; keyed limits first.
  const sources: Array<{ key: LimitKey; digest: (value: string) => string }> = (f?.limits ?? []).map((l) => ({
    key: l.key,
    digest: (value: string) => keyDigest(config.group, keyedLimitName(frontend, l.name), value),
  }));
  if (f?.fairBy) sources.push({ key: f.fairBy, digest: (value: string) => flowDigest(config.group, value) });
  const pathSource = sources.find((s) => s.key.kind === "path");
  let shown = pathSource ? pathSource.digest(path) : path;
  if (config.log.query && query !== "") {
    const byParam = new Map<string, (value: string) => string>();
    for (const s of sources) if (s.key.kind === "query" && !byParam.has(s.key.name)) byParam.set(s.key.name, s.digest);
    shown += `?${query
      .split("&")
      .map((pair) => maskPair(pair, byParam))
      .join("&")}`;
  }
  return clip(shown);
}

/** One `name=value` of a query: the value digested when the name is a parameter a key source reads. */
function maskPair(pair: string, byParam: ReadonlyMap<string, (value: string) => string>): string {
  if (byParam.size === 0) return pair;
  const [entry] = new URLSearchParams(pair);
  const digest = entry === undefined ? undefined : byParam.get(entry[0]);
  if (entry === undefined || digest === undefined) return pair;
  const eq = pair.indexOf("=");
  return `${eq < 0 ? pair : pair.slice(0, eq)}=${digest(entry[1])}`;
}
