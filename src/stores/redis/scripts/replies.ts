/**
 * The status codes the Redis scripts reply with, in one table: each code means one thing in every
 * script. `../lua/includes/replies.lua` mirrors it as Lua constants of the same names (checked when
 * the scripts are loaded). Every reply is a list whose first element is one of these codes, except
 * the sweep's (`{nextIn}`) and the claim's (`{nextIn, code, outcome, ...}`: one code per ticket).
 */
import { storeStatusError, StoreStatus, type SlotgateError } from "../../../core/errors.js";

export const REPLY = {
  /** release, renew, cancel, claim: the lease or ticket is not there (ended, timed out, never known). */
  NOT_FOUND: 0,
  /** acquire: granted at once. */
  GRANTED: 1,
  /** acquire: rejected at once, with its reason (`full`, `queue-full`). */
  REJECTED: 2,
  /** acquire: queued as a ticket; claim: the ticket still waits. */
  QUEUED: 3,
  /** release: the lease ended. */
  RELEASED: 4,
  /** renew: the lease lives on until its new expiry. */
  RENEWED: 5,
  /** renew: the group's state had lost the lease, and it was re-created (rule 12). */
  REREGISTERED: 6,
  /** renew: the lease went with the group's state and could not be re-created (rule 12). */
  LEASE_LOST: 7,
  /** cancel: the ticket left the queue. */
  CANCELLED: 8,
  /** cancel, claim: the ticket had an outcome (granted, or timed out), handed over now. */
  OUTCOME: 9,
  /** configure: the spec was installed. */
  INSTALLED: 10,
  /** configure: the stored spec stays (a higher version, or a versioned one under an unversioned push). */
  KEPT: 11,
  /** configure: refused, the same version with another spec. */
  SPEC_CONFLICT: 12,
  /** server-state, stats: done. */
  DONE: 13,
  /** acquire: rejected at once because its estimated wait exceeds its queue timeout (rule E), with the estimate's retryAfterMs. */
  REJECTED_EARLY: 14,
  /** acquire: a scope the spec does not have (or not as a named or keyed scope). */
  UNKNOWN_SCOPE: StoreStatus.UnknownScope,
  /** acquire, server-state: a backend the spec does not have. */
  UNKNOWN_BACKEND: StoreStatus.UnknownBackend,
  /** acquire, server-state: a server its backend does not have. */
  UNKNOWN_SERVER: StoreStatus.UnknownServer,
  /** acquire (lease id in use), cancel (bad counter): a request the script refuses. */
  BAD_REQUEST: StoreStatus.BadRequest,
  /** any script but sweep: the group has no spec (never configured, or its data was lost); the store pushes it again. */
  NOT_CONFIGURED: -100,
} as const;

export type ReplyCode = (typeof REPLY)[keyof typeof REPLY];

/**
 * The error a reply stands for when its code is not one the caller expects: the error codes are
 * those of `StoreStatus`, shared by every store, so they become the same errors as everywhere
 * (`SLOTGATE_UNKNOWN_SCOPE`, ...); any other code is a protocol error.
 */
export function replyError(code: number, detail: string): SlotgateError {
  return storeStatusError(code, detail);
}
