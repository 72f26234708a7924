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
  /** The fairness flow (rule F): 1–1024 characters, as a keyed limit's value. */
  flow?: string;
  /** Early rejection (rule E); only present when true. */
  early?: boolean;
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
  /** `retryAfterMs`: the store's own estimate of when to retry (an early rejection's, rule E); the guard reports it instead of its constant. */
  | { ok: false; reason: "full" | "queue-full" | "queue-timeout" | "aborted"; retryAfterMs?: number };

/**
 * `reregistered`: the store had lost the lease with its state (SPEC §2 rule 12) and re-created it.
 * `stateLost`: the lease went with the store's state and could not be re-created.
 */
export type RenewResult = { ok: true; expiresAt: number; reregistered?: boolean } | { ok: false; stateLost?: boolean };

/**
 * What the store did with a handle's spec (SPEC §2 rule 13). A push the store refuses (the same
 * version with a different spec) is no status: it rejects with `SLOTGATE_SPEC_CONFLICT`.
 */
export interface SpecStatus {
  /**
   * True: the group runs this spec now. False: the store keeps a spec of a higher version (or a
   * versioned one, for an unversioned push) and decides this handle's calls under it; a scope that
   * spec does not have is unknown to the store.
   */
  installed: boolean;
  /** The version of the spec the store keeps: null when it is unversioned (or the store cannot say). */
  storedVersion: number | null;
}

export interface OpenOptions {
  /** The spec's version, a positive integer (SPEC §2 rule 13). Omitted: unversioned (the last unversioned push wins). */
  version?: number;
}

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
  /**
   * Pushes the spec now, unless this handle's spec is already settled, and reports what the store
   * did with it. Every other call waits for the same push. Rejects with `SLOTGATE_SPEC_CONFLICT`
   * when the store keeps a different spec under the same version (every call does then, until the
   * stored spec changes), or with a store fault.
   */
  ready(): Promise<SpecStatus>;
  /**
   * Replaces the limits (raising one dispatches the queue) when the version rule lets it (rule
   * 13); `version` null: unversioned. Counters and holders are kept.
   */
  configure(spec: GroupSpec, version: number | null): Promise<SpecStatus>;
  /** A server marked down is never chosen; marking it up dispatches the queue. */
  setServerState(backend: string, server: string, up: boolean): Promise<void>;
  stats(): Promise<GroupStatsSnapshot>;
  /** Stops this handle's timers and subscriptions; waiting acquires end with `aborted`. */
  close(): Promise<void>;
}

export interface SlotStore {
  /** A short name for logs and stats: `memory`, `redis`, `durable-object`. */
  readonly kind: string;
  /**
   * Opens (or joins) a group. The spec is pushed to the store with its version (on the handle's
   * first call, or {@link GroupStore.ready}); the store keeps it or a newer one (rule 13).
   */
  open(group: string, spec: GroupSpec, options?: OpenOptions): GroupStore;
  /**
   * The group's numbers, read without opening the group: never writes a spec (read-only paths
   * such as `slotgate stats` use it). Undefined when the store has no state for the group.
   */
  readStats(group: string): Promise<GroupStatsSnapshot | undefined>;
}
