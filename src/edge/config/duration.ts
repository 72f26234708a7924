/**
 * Durations in the config file, HAProxy style: `30s`, `500ms`, `2m`, `1h`, `1d`, decimals such as
 * `1.5s`, or a bare number of milliseconds (`500` or `"500"`; HAProxy's default unit is ms too).
 *
 * The result is always a whole number of milliseconds: `1.5s` is 1500, but `0.5ms` or `1.0001s`
 * are errors rather than silently rounded. Units are case-sensitive (`30S` is an error, as in
 * HAProxy) and a value carries exactly one unit (no `1m30s`). A sign is accepted only where the
 * caller allows negative durations (a priority offset).
 */
import { parse, report, rule, type Schema } from "../../core/validate.js";

export const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;

/** One day: the longest timeout, TTL or delay the config accepts (the core's MAX_TTL_MS). */
export const MAX_DURATION_MS = 24 * 3_600_000;

export const DURATION_SYNTAX = "a duration such as 30s, 500ms, 2m, 1h, 1.5s or a whole number of milliseconds";

const DURATION_RE = /^([+-]?)(\d{1,15})(?:\.(\d{1,9}))?(ms|s|m|h|d)?$/;

export interface DurationRange {
  /** @default 0 */
  min?: number;
  /** @default MAX_DURATION_MS */
  max?: number;
}

/**
 * Parses a duration to whole milliseconds. Returns `undefined` when `value` is not a duration
 * at all (wrong syntax, not a whole number of ms, not a safe integer); ranges are the caller's.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value !== "string" || value.length > 40) return undefined;
  const m = DURATION_RE.exec(value.trim());
  if (!m) return undefined;
  const [, sign = "", whole = "0", fraction = "", unit = "ms"] = m;
  const factor = BigInt(DURATION_UNITS[unit as DurationUnit]);
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(whole + fraction) * factor;
  if (scaled % scale !== 0n) return undefined;
  const ms = scaled / scale;
  if (ms > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return sign === "-" ? -Number(ms) : Number(ms);
}

/** A duration in `range`, in whole milliseconds: {@link parseDuration} as a schema. */
export function duration(range: DurationRange = {}): Schema<number> {
  const { min = 0, max = MAX_DURATION_MS } = range;
  return rule((value, addIssue) => {
    const ms = parseDuration(value);
    if (ms === undefined) return report(addIssue, min < 0 ? `${DURATION_SYNTAX}, optionally signed` : DURATION_SYNTAX, value);
    if (ms < min || ms > max) return report(addIssue, `a duration from ${formatDuration(min)} to ${formatDuration(max)}`, value);
    return ms;
  });
}

/** {@link parseDuration} for programmatic use: throws a `SlotgateConfigError` naming `path`. */
export function toMilliseconds(value: unknown, path = "duration", range: DurationRange = {}): number {
  return parse(duration(range), value, path, "SLOTGATE_INVALID_CONFIG");
}

/** The shortest exact spelling of `ms`: 30000 → `30s`, 1500 → `1500ms`, 0 → `0ms`. */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? "-" : "";
  const abs = Math.abs(ms);
  if (abs !== 0) {
    for (const unit of ["d", "h", "m", "s"] as const) {
      const factor = DURATION_UNITS[unit];
      if (abs % factor === 0) return `${sign}${abs / factor}${unit}`;
    }
  }
  return `${sign}${abs}ms`;
}
