/**
 * Sizes in the config file: `64k`, `1m`, `512` (bytes). Units are binary (k = 1024), as in
 * HAProxy's `tune.bufsize` and NGINX's `client_body_buffer_size`. Whole numbers only: a size is a
 * count of bytes, and `1.5k` would hide a rounding.
 */
import { report, rule, type Schema } from "../../core/validate.js";

const UNITS = { "": 1, b: 1, k: 1024, kb: 1024, m: 1024 * 1024, mb: 1024 * 1024 } as const;
const SIZE = /^(\d{1,10})\s?(b|k|kb|m|mb)?$/i;

export const SIZE_SYNTAX = "a size such as 64k, 1m or a whole number of bytes";

/** The size in bytes, or undefined when `value` is not a size. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? "").toLowerCase() as keyof typeof UNITS;
  const bytes = Number(m[1]) * UNITS[unit];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size within [min, max] bytes: {@link parseSize} as a schema. */
export function size(range: { min: number; max: number }): Schema<number> {
  return rule((value, addIssue) => {
    const bytes = parseSize(value);
    if (bytes !== undefined && bytes >= range.min && bytes <= range.max) return bytes;
    return report(addIssue, `${SIZE_SYNTAX}, from ${range.min} bytes to ${range.max / (1024 * 1024)}m`, value);
  });
}
