/**
 * slotgate's error hierarchy. Every error carries a stable `code`; messages may be reworded,
 * codes never are. Outcomes (a full queue, a timeout) are values, not errors: these classes are
 * for faults (bad options, an unreachable store, a lease used after close) and for
 * {@link SlotgateRejectedError}, thrown only by `guard.run()`, which has no other way to say no.
 *
 * `instanceof` works across duplicate copies of the package (a Worker bundle next to the Node
 * build, say) because each class checks a `Symbol.for` brand instead of its prototype chain.
 */
import { redactCredentials } from "./redact.js";

export type SlotgateErrorCode =
  | "SLOTGATE_INVALID_OPTION"
  | "SLOTGATE_INVALID_CONFIG"
  | "SLOTGATE_UNKNOWN_SCOPE"
  | "SLOTGATE_STORE_UNAVAILABLE"
  | "SLOTGATE_STORE_PROTOCOL"
  | "SLOTGATE_REJECTED"
  | "SLOTGATE_CLOSED"
  | "SLOTGATE_LEASE_LOST"
  | "SLOTGATE_NOT_AVAILABLE"
  /** The store keeps a different spec under the same version (SPEC §2 rule 13); the message names what differs. */
  | "SLOTGATE_SPEC_CONFLICT";

const BRAND = Symbol.for("slotgate.error");

export class SlotgateError extends Error {
  readonly code: SlotgateErrorCode;
  /** Whether trying the same call again later may succeed (store faults, not bad input). */
  readonly retryable: boolean;

  constructor(code: SlotgateErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options?.retryable ?? false;
    this.name = "SlotgateError";
    Object.defineProperty(this, BRAND, { value: code });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && BRAND in value;
  }
}

/** A constructor option or config value is wrong. `path` names it, e.g. `backends.api.servers.a.max`. */
export class SlotgateConfigError extends SlotgateError {
  readonly path: string;
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], code: SlotgateErrorCode = "SLOTGATE_INVALID_OPTION") {
    super(code, issues.map(formatIssue).join("\n"));
    this.name = "SlotgateConfigError";
    this.issues = issues;
    this.path = issues[0]?.path ?? "";
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof SlotgateError && "issues" in value;
  }
}

export interface ConfigIssue {
  path: string;
  expected: string;
  received: unknown;
  /**
   * What is wrong, as a sentence, where "expected …" would not say it (a regular expression
   * construct the engine refuses). Printed instead of `expected`.
   */
  message?: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const what = issue.message ?? `expected ${issue.expected}`;
  return `${issue.path}: ${what}, got ${describeValue(issue.received)}`;
}

/**
 * Renders a received value for an error message; long or hostile strings are cut, never echoed
 * whole, and URL credentials are blanked first (cutting first could leave half a password behind
 * without the "@" that marks it).
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (typeof value === "string") {
    const safe = redactCredentials(value);
    const shown = safe.length > 60 ? `${safe.slice(0, 60)}…(${safe.length} chars)` : safe;
    return JSON.stringify(shown);
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  return "an object";
}

/** Thrown by `guard.run()` when no slot was granted. `reason` is the same value `acquire()` returns. */
export class SlotgateRejectedError extends SlotgateError {
  readonly reason: RejectReason;
  readonly retryAfterMs: number;

  constructor(reason: RejectReason, retryAfterMs: number) {
    super("SLOTGATE_REJECTED", `slot not granted: ${reason}`);
    this.name = "SlotgateRejectedError";
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof SlotgateError && value.code === "SLOTGATE_REJECTED";
  }
}

export type RejectReason = "full" | "queue-full" | "queue-timeout" | "aborted" | "unavailable";

/**
 * Numeric status codes that stores (Lua scripts, the Durable Object) return for faults. This is
 * the one place they become errors, so a caller sees the same error whatever the store.
 */
export const StoreStatus = {
  UnknownScope: -1,
  UnknownBackend: -2,
  UnknownServer: -3,
  BadRequest: -4,
  Unauthorized: -5,
  /** The slot API knows the token, but it does not grant this operation on this group. */
  Forbidden: -6,
  /** A queued ticket the caller waits for is not known (any more): the object restarted, or it was collected already. */
  TicketGone: -7,
} as const;
export type StoreStatus = (typeof StoreStatus)[keyof typeof StoreStatus];

export function storeStatusError(status: number, detail: string): SlotgateError {
  switch (status) {
    case StoreStatus.UnknownScope:
      return new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown scope: ${detail}`);
    case StoreStatus.UnknownBackend:
      return new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown backend: ${detail}`);
    case StoreStatus.UnknownServer:
      return new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown server: ${detail}`);
    case StoreStatus.BadRequest:
      return new SlotgateError("SLOTGATE_STORE_PROTOCOL", `store rejected the request: ${detail}`);
    case StoreStatus.Unauthorized:
      return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `store refused the credentials: ${detail}`);
    case StoreStatus.Forbidden:
      // Not retryable: the same token will be refused again until the Worker's tokens change.
      return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `store refused the operation for this token: ${detail}`);
    case StoreStatus.TicketGone:
      // As when the call of a queued acquire breaks: the ticket is gone, asking again may help.
      return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `the store lost a queued ticket: ${detail}`, { retryable: true });
    default:
      return new SlotgateError("SLOTGATE_STORE_PROTOCOL", `store returned unknown status ${status}: ${detail}`);
  }
}

export function isSlotgateError(value: unknown, code?: SlotgateErrorCode): value is SlotgateError {
  return value instanceof SlotgateError && (code === undefined || value.code === code);
}
