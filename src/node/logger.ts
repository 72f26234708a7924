/**
 * Structured logs of the edge node: pino, one JSON line per event, to stdout by default.
 * Secrets never reach a log line: store URLs are logged through {@link redactUrl}, and pino's
 * `redact` blanks every field named like a credential, whatever object it sits in.
 */
import { pino } from "pino";

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

/** The URL with its password (and a token-like query) replaced: `redis://user:***@host:6379/0`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const key of [...u.searchParams.keys()]) {
      if (/token|secret|password|key/i.test(key)) u.searchParams.set(key, "***");
    }
    return u.toString();
  } catch {
    // Not a URL: cut anything after a scheme's userinfo marker rather than risk echoing a secret.
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
}

/** An error as a small loggable object (no stack for expected faults). */
export function errorFields(error: unknown, withStack = false): Record<string, unknown> {
  if (error instanceof Error) {
    const out: Record<string, unknown> = { message: error.message.slice(0, 500), name: error.name };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") out.code = code;
    if (withStack && error.stack) out.stack = error.stack;
    return out;
  }
  return { message: String(error).slice(0, 500) };
}
