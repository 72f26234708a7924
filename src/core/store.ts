/**
 * The contract between the guard and a store. It describes behaviour only: how a store keeps its
 * state (Lua KEYS/ARGV, SQL rows, RPC shapes) is private to it. Every store obeys the rules of
 * SPEC §2; the conformance suite in `test/conformance/` holds them to it.
 *
 * Faults (the store cannot be reached, answered nonsense) reject the promise with a
 * {@link SlotgateError}; outcomes (granted, full, timed out) resolve it.
 */
import type { GroupSpec } from "./spec.js";
import type { GroupStatsSnapshot } from "./stats.js";

/** One acquire, resolved and validated by the guard: every scope named here exists in the spec. */
export interface ChainRequest {
  /** Named and keyed scopes, canonical and without duplicates; backend/server scopes excluded. */
  scopes: string[];
  /** The store picks a server of this backend by its `balance`. */
  backend?: string;
  /** With `backend`: take this server, no balancing (persistence). */
  server?: string;
  priorityClass: number;
  priorityOffsetMs: number;
  /** 0: never queue. */
  queueTimeoutMs: number;
  leaseTtlMs: number;
}

/** A granted slot as the store reports it. Times are on the store's clock. */
export interface LeaseGrant {
  id: string;
  /** Strictly greater than every earlier fence of the group. */
  fence: number;
  backend?: string;
  server?: string;
  /** Store-clock expiry; the holder renews before it. */
  expiresAt: number;
  ttlMs: number;
  /** Time the request spent queued, on the store's clock. */
  waitedMs: number;
}

export type StoreAcquireResult =
  | { ok: true; lease: LeaseGrant }
  | { ok: false; reason: "full" | "queue-full" | "queue-timeout" | "aborted" };

/**
 * `reregistered`: the store had lost the lease with its state (SPEC §2 rule 12) and re-created it.
 * `stateLost`: the lease went with the store's state and could not be re-created.
 */
export type RenewResult = { ok: true; expiresAt: number; reregistered?: boolean } | { ok: false; stateLost?: boolean };

export interface GroupStore {
  /**
   * Grants at once, rejects at once, or queues and resolves when the ticket is granted, times
   * out, or `signal` aborts (then the ticket leaves the queue at once). A grant that races a
   * timeout or an abort is released by the store, never leaked.
   */
  acquire(request: ChainRequest, signal?: AbortSignal): Promise<StoreAcquireResult>;
  /**
   * Idempotent: resolves false when the lease was already gone (released or expired). Must keep
   * working after close(), so that a grant racing close() is given back rather than leaked.
   */
  release(leaseId: string): Promise<boolean>;
  /** Extends the lease to now + ttlMs on the store's clock, or reports it lost. */
  renew(leaseId: string, ttlMs: number): Promise<RenewResult>;
  /** Replaces the limits (raising one dispatches the queue). Counters and holders are kept. */
  configure(spec: GroupSpec): Promise<void>;
  /** A server marked down is never chosen; marking it up dispatches the queue. */
  setServerState(backend: string, server: string, up: boolean): Promise<void>;
  stats(): Promise<GroupStatsSnapshot>;
  /** Stops this handle's timers and subscriptions; waiting acquires end with `aborted`. */
  close(): Promise<void>;
}

export interface SlotStore {
  /** A short name for logs and stats: `memory`, `redis`, `durable-object`. */
  readonly kind: string;
  /** Opens (or joins) a group. The spec is pushed to the store; all members of a fleet send the same. */
  open(group: string, spec: GroupSpec): GroupStore;
}
