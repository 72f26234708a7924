/**
 * The answers a proxy gives itself, for every runtime: a rejection (`deny_status`, `Retry-After`,
 * `x-slotgate-reason`), an upstream failure (502/503/504 with `x-slotgate-error`), a lease lost
 * mid-request, and how a fault of the guard maps to a status. The Node edge node and the Worker build their responses from these.
 */
import { isSlotgateError, type RejectReason } from "../core/errors.js";

/** A rejection the client sees (`aborted` is the client's own leaving: nobody is answered). */
export type DenyReason = Exclude<RejectReason, "aborted">;

/** Used when the guard gives no retry hint (the node's own maxconn, a closing guard). */
export const DEFAULT_RETRY_AFTER_MS = 1000;

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Seconds for `Retry-After`: the ceiling of the guard's retry hint, at least 1. */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/** No slot: `deny_status` (503 or 429) with `Retry-After` and the reason. */
export function denyAnswer(status: number, reason: DenyReason, retryAfterMs: number): Answer {
  const phrase = status === 429 ? "Too Many Requests" : "Service Unavailable";
  return {
    status,
    headers: { "retry-after": String(retryAfterSeconds(retryAfterMs)), "x-slotgate-reason": reason },
    body: `${status} ${phrase}: no slot (${reason})\n`,
  };
}

/** Why a forwarded request got no usable answer from its server. */
export type UpstreamErrorKind = "connect-failed" | "connect-timeout" | "server-timeout" | "bad-response";

const UPSTREAM: Record<UpstreamErrorKind, { status: number; text: string }> = {
  "connect-failed": { status: 503, text: "503 Service Unavailable: the server cannot be reached" },
  "connect-timeout": { status: 503, text: "503 Service Unavailable: the server did not accept the connection in time" },
  "server-timeout": { status: 504, text: "504 Gateway Timeout: the server did not answer in time" },
  "bad-response": { status: 502, text: "502 Bad Gateway: the server's answer was not usable" },
};

/** 503 when the request never reached a server (as HAProxy), 504 for a silent one, 502 for a broken answer. */
export function upstreamErrorAnswer(kind: UpstreamErrorKind): Answer {
  const u = UPSTREAM[kind];
  return { status: u.status, headers: { "x-slotgate-error": kind }, body: `${u.text}\n` };
}

/**
 * The lease was lost before the response started (its renewals failed past its TTL, or the store
 * lost it with its state: SPEC §2 rules 9 and 12): the slot may be someone else's now, so the
 * request stops here. After the response started, the only signal left is a cut connection.
 */
export function leaseLostAnswer(): Answer {
  return { status: 503, headers: { "x-slotgate-error": "lease-lost" }, body: "503 Service Unavailable: the slot was lost\n" };
}

/**
 * What a fault thrown by `guard.acquire` means for the client: the guard is closing (answered as
 * `unavailable`), the request carried a value the guard refuses (400), or a fault of ours (500,
 * logged; `unknown-scope` when the store does not know a scope of the request).
 */
export type GuardFault = "closed" | "bad-request" | "unknown-scope" | "internal";

export function classifyGuardFault(error: unknown): GuardFault {
  if (isSlotgateError(error, "SLOTGATE_CLOSED")) return "closed";
  if (isSlotgateError(error, "SLOTGATE_INVALID_OPTION") || isSlotgateError(error, "SLOTGATE_INVALID_CONFIG")) return "bad-request";
  if (isSlotgateError(error, "SLOTGATE_UNKNOWN_SCOPE")) return "unknown-scope";
  return "internal";
}

/** `::ffff:10.0.0.1` → `10.0.0.1` (what a dual-stack socket reports for an IPv4 client). */
export function clientAddress(remote: string | undefined): string | undefined {
  if (remote === undefined) return undefined;
  return remote.startsWith("::ffff:") && remote.includes(".") ? remote.slice(7) : remote;
}
