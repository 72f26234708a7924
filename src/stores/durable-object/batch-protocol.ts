/**
 * The wire contract of a batch: several calls of one client to one `SlotGroup` object in one RPC
 * (`SlotGroup.batch`) or one HTTP request (the slot API's `batch` route).
 *
 * - The object applies the ops in array order, each exactly as the call of the same name would
 *   (same checks, same reply), one after the other inside one synchronous step: nothing else
 *   interleaves, and their writes commit together. So a batch is what sending its ops one by one
 *   on one stub would do, minus the round trips.
 * - Each op gets its own {@link Reply} at its own index: a bad or refused op answers a status
 *   reply there and leaves the others alone.
 * - An acquire that queues cannot answer inside the batch: its entry is {@link QUEUED}, and its
 *   outcome (granted, `queue-timeout`, `aborted`) is collected with `wait(waiterId)`, which
 *   answers exactly what the acquire call would have (a pending call while the ticket waits). An
 *   outcome that arrives before its `wait` is kept for {@link PARKED_OUTCOME_MS}; a grant nobody
 *   collects by then is released (SPEC §2 rule 7).
 */
import type { GroupSpec } from "../../core/spec.js";
import type { ChainRequest } from "../../core/store.js";
import { isPlainObject } from "../../core/validate.js";
import type { LeaseOwner, Reply, SlotGroupRpc } from "./protocol.js";

/** At most this many ops in one batch; a client sends a longer run of calls as several batches. */
export const MAX_BATCH_OPS = 128;

/** How long the object keeps the outcome of a batch's queued ticket that nobody has waited for yet. */
export const PARKED_OUTCOME_MS = 60_000;

/** One call inside a batch: the RPC method's name and its arguments, by name. */
export type BatchOp =
  | { op: "acquire"; request: ChainRequest; waiterId: string; owner?: LeaseOwner }
  | { op: "cancel"; waiterId: string; token?: string }
  | { op: "release"; leaseId: string; secretHash?: string }
  | { op: "renew"; leaseId: string; ttlMs: number; secretHash?: string }
  | { op: "configure"; spec: GroupSpec; version?: number | null }
  | { op: "setServerState"; backend: string; server: string; up: boolean }
  | { op: "stats" };

export type BatchOpName = BatchOp["op"];

/** The entry of an acquire that queued inside a batch: its outcome comes from `wait`. */
export interface QueuedTicket {
  queued: true;
}

export const QUEUED: QueuedTicket = { queued: true };

/** Whether a reply's value is the {@link QUEUED} marker. */
export function isQueued(value: unknown): value is QueuedTicket {
  return isPlainObject(value) && value.queued === true;
}

/** Sends one op as the RPC method of its name, with the owner fields it carries (none: a trusted caller). */
export function callAlone(stub: SlotGroupRpc, op: BatchOp): Promise<Reply<unknown>> {
  switch (op.op) {
    case "acquire":
      return op.owner === undefined ? stub.acquire(op.request, op.waiterId) : stub.acquire(op.request, op.waiterId, op.owner);
    case "cancel":
      return op.token === undefined ? stub.cancel(op.waiterId) : stub.cancel(op.waiterId, op.token);
    case "release":
      return op.secretHash === undefined ? stub.release(op.leaseId) : stub.release(op.leaseId, op.secretHash);
    case "renew":
      return op.secretHash === undefined ? stub.renew(op.leaseId, op.ttlMs) : stub.renew(op.leaseId, op.ttlMs, op.secretHash);
    case "configure":
      return stub.configure(op.spec, op.version);
    case "setServerState":
      return stub.setServerState(op.backend, op.server, op.up);
    case "stats":
      return stub.stats();
  }
}
