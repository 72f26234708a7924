/**
 * Small checkers that collect every problem of an options object at once, each with the path of
 * the offending value, what was expected and what was received. Used by the guard's options and
 * by the edge node's config file, so both speak the same way:
 * `backends.api.servers.a.max: expected a positive integer, got -1`.
 */
import type { ConfigIssue } from "./errors.js";

export class Issues {
  readonly list: ConfigIssue[] = [];

  add(path: string, expected: string, received: unknown, message?: string): void {
    this.list.push(message === undefined ? { path, expected, received } : { path, expected, received, message });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  // Keys that would read ambiguously in a dotted path are quoted.
  const plain = /^[A-Za-z_][\w-]*$/.test(key);
  if (path === "") return plain ? key : JSON.stringify(key);
  return plain ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export interface IntRange {
  min?: number;
  max?: number;
  expected?: string;
}

/** Returns the integer, or undefined after recording an issue. `undefined` input is the caller's business. */
export function checkInt(issues: Issues, path: string, value: unknown, range: IntRange = {}): number | undefined {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  issues.add(path, range.expected ?? describeRange(min, max), value);
  return undefined;
}

function describeRange(min: number, max: number): string {
  if (min === 1 && max === Number.MAX_SAFE_INTEGER) return "a positive integer";
  if (min === 0 && max === Number.MAX_SAFE_INTEGER) return "a non-negative integer";
  if (max === Number.MAX_SAFE_INTEGER) return `an integer ≥ ${min}`;
  return `an integer from ${min} to ${max}`;
}

export function checkNumber(issues: Issues, path: string, value: unknown, expected: string, ok: (n: number) => boolean): number | undefined {
  if (typeof value === "number" && Number.isFinite(value) && ok(value)) return value;
  issues.add(path, expected, value);
  return undefined;
}

export function checkOneOf<T extends string>(issues: Issues, path: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  issues.add(path, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`, value);
  return undefined;
}

export function checkObject(issues: Issues, path: string, value: unknown): Record<string, unknown> | undefined {
  if (isPlainObject(value)) return value;
  issues.add(path, "an object", value);
  return undefined;
}

/** Reports keys of `obj` that are not in `known`, so a typo (`maxcon`) is an error, not a silent default. */
export function checkKnownKeys(issues: Issues, path: string, obj: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) issues.add(join(path, key), `one of the keys ${known.join(", ")}`, key);
  }
}

/** Names of limits, backends and servers: printable, no whitespace, bounded. */
export const NAME_PATTERN = /^[A-Za-z0-9_.~-][A-Za-z0-9_.~:@-]{0,127}$/;

export function checkName(issues: Issues, path: string, value: unknown): string | undefined {
  if (typeof value === "string" && NAME_PATTERN.test(value) && value !== "__proto__") return value;
  issues.add(path, "a name of 1–128 characters from [A-Za-z0-9_.~:@-], not __proto__", value);
  return undefined;
}
