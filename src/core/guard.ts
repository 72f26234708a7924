/**
 * The guard: the API users call (SPEC §4). It validates options once, resolves each acquire into
 * a chain request, hands it to the store, wraps grants in self-renewing {@link Lease}s, and applies
 * the outage policy of SPEC §2 rule 11 when the store cannot be reached.
 */
import { toChainRequest, type AcquireOptions, type RequestDefaults } from "./acquire-options.js";
import { SlotgateConfigError, SlotgateError, SlotgateRejectedError, isSlotgateError, type RejectReason } from "./errors.js";
import { Lease, type LeaseOwner } from "./lease.js";
import { buildGroupSpec, type BackendsOption, type GroupSpec, type LimitsOption } from "./spec.js";
import { histogramQuantile, type GroupStatsSnapshot } from "./stats.js";
import type { ChainRequest, GroupStore, RenewResult, SlotStore } from "./store.js";
import { Issues, checkInt, checkKnownKeys, checkName, checkNumber, checkOneOf, isPlainObject } from "./validate.js";
import { LocalFallback } from "./local-fallback.js";
import { RenewalSchedule } from "./renewals.js";
import { createMemoryStore } from "../stores/memory/memory-store.js";

export type StoreErrorPolicy = "fail-closed" | "fail-open" | "local";
export const STORE_ERROR_POLICIES: readonly StoreErrorPolicy[] = ["fail-closed", "fail-open", "local"];

export interface GuardOptions {
  /** Where the slots live. @default createMemoryStore() (this process only) */
  store?: SlotStore;
  /** Independent namespace of limits; every node of a fleet uses the same. @default "default" */
  group?: string;
  limits?: LimitsOption;
  backends?: BackendsOption;
  defaults?: Partial<RequestDefaults>;
  /** What acquire does while the store is unreachable. @default "fail-closed" */
  onStoreError?: StoreErrorPolicy;
  /** With `local`: this node's share of every max while the store is down, in (0, 1]. Required then. */
  localShare?: number;
  /** `retryAfterMs` reported with rejections. @default 1000 */
  retryAfterMs?: number;
  /** Receives every fallback decision and lease fault, for logs. Must not throw. */
  onEvent?: (event: GuardEvent) => void;
}

export type GuardEvent =
  | { type: "fallback"; policy: StoreErrorPolicy; error: unknown }
  | { type: "renew-failed" | "release-failed" | "lease-lost"; leaseId: string; error?: unknown }
  /** The store had lost the lease with its state (SPEC §2 rule 12); its renewal re-created it. */
  | { type: "lease-reregistered"; leaseId: string; error?: undefined };

export type AcquireResult = { ok: true; lease: Lease } | { ok: false; reason: RejectReason; retryAfterMs: number };

export interface FallbackCounters {
  /** Acquires rejected with `unavailable` because the store was down. */
  fail_closed: number;
  /** Acquires admitted without the store. */
  fail_open: number;
  /** Acquires decided by the in-process fallback limits. */
  local: number;
  /** Renew and release calls that failed on a store fault. */
  store_errors: number;
}

export interface GuardStats extends GroupStatsSnapshot {
  group: string;
  store: string;
  queueWaitQuantiles: { p50: number; p90: number; p99: number };
  /** This node's outage-policy decisions (not cluster-wide: they happen when the store is unreachable). */
  fallback: FallbackCounters;
  /** Leases this guard holds right now. */
  localHolders: number;
}

export interface Guard {
  readonly group: string;
  acquire(options?: AcquireOptions): Promise<AcquireResult>;
  /** Acquires, runs `fn`, releases. Throws {@link SlotgateRejectedError} when no slot is granted. */
  run<T>(options: AcquireOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  stats(): Promise<GuardStats>;
  /** Changes limits at run time (raising one dispatches the queue). Replaces limits/backends given. */
  configure(change: { limits?: LimitsOption; backends?: BackendsOption }): Promise<void>;
  setServerState(backend: string, server: string, state: "up" | "down"): Promise<void>;
  /** Ends waiting acquires (`aborted`), releases every held lease, closes the store handle. */
  close(): Promise<void>;
}

const GUARD_KEYS = ["store", "group", "limits", "backends", "defaults", "onStoreError", "localShare", "retryAfterMs", "onEvent"];

export function createGuard(options: GuardOptions = {}): Guard {
  return new GuardImpl(options);
}

class GuardImpl implements Guard, LeaseOwner {
  readonly group: string;
  #spec: GroupSpec;
  #limitsOption: LimitsOption | undefined;
  #backendsOption: BackendsOption | undefined;
  readonly #store: SlotStore;
  readonly #handle: GroupStore;
  readonly #defaults: RequestDefaults;
  readonly #policy: StoreErrorPolicy;
  readonly #retryAfterMs: number;
  readonly #onEvent: ((event: GuardEvent) => void) | undefined;
  readonly #local: LocalFallback | undefined;
  readonly #held = new Set<Lease>();
  readonly renewals = new RenewalSchedule();
  readonly #fallback: FallbackCounters = { fail_closed: 0, fail_open: 0, local: 0, store_errors: 0 };
  #closed = false;
  #failOpenSeq = 0;

  constructor(options: GuardOptions) {
    if (!isPlainObject(options as unknown)) throw new SlotgateConfigError([{ path: "options", expected: "an object", received: options }]);
    const issues = new Issues();
    checkKnownKeys(issues, "", options as Record<string, unknown>, GUARD_KEYS);
    const group = options.group === undefined ? "default" : checkName(issues, "group", options.group);
    const store = options.store ?? createMemoryStore();
    if (typeof store !== "object" || store === null || typeof (store as SlotStore).open !== "function") issues.add("store", "a store (createMemoryStore(), createRedisStore(…), …)", store);
    const policy = options.onStoreError === undefined ? "fail-closed" : checkOneOf(issues, "onStoreError", options.onStoreError, STORE_ERROR_POLICIES);
    let localShare: number | undefined;
    if (options.localShare !== undefined) localShare = checkNumber(issues, "localShare", options.localShare, "a number in (0, 1]", (n) => n > 0 && n <= 1);
    else if (policy === "local") issues.add("localShare", "a number in (0, 1] when onStoreError is \"local\"", undefined);
    const d: Partial<RequestDefaults> = options.defaults ?? {};
    if (!isPlainObject(d as unknown)) issues.add("defaults", "an object { queueTimeoutMs?, leaseTtlMs? }", d);
    const queueTimeoutMs = d.queueTimeoutMs === undefined ? 0 : checkInt(issues, "defaults.queueTimeoutMs", d.queueTimeoutMs, { min: 0 });
    const leaseTtlMs = d.leaseTtlMs === undefined ? 30_000 : checkInt(issues, "defaults.leaseTtlMs", d.leaseTtlMs, { min: 1 });
    const retryAfterMs = options.retryAfterMs === undefined ? 1000 : checkInt(issues, "retryAfterMs", options.retryAfterMs, { min: 0 });
    if (options.onEvent !== undefined && typeof options.onEvent !== "function") issues.add("onEvent", "a function", options.onEvent);
    let spec: GroupSpec | undefined;
    try {
      spec = buildGroupSpec(options.limits, options.backends);
    } catch (error) {
      if (error instanceof SlotgateConfigError) issues.list.push(...error.issues);
      else throw error;
    }
    if (!issues.empty || !spec) throw new SlotgateConfigError(issues.list);

    this.group = group!;
    this.#spec = spec;
    this.#limitsOption = options.limits;
    this.#backendsOption = options.backends;
    this.#store = store;
    this.#defaults = { queueTimeoutMs: queueTimeoutMs!, leaseTtlMs: leaseTtlMs! };
    this.#policy = policy!;
    this.#retryAfterMs = retryAfterMs!;
    this.#onEvent = options.onEvent;
    this.#handle = store.open(this.group, spec);
    if (policy === "local") this.#local = new LocalFallback(spec, localShare!);
  }

  async acquire(options: AcquireOptions = {}): Promise<AcquireResult> {
    if (this.#closed) throw new SlotgateError("SLOTGATE_CLOSED", "the guard is closed");
    const request = toChainRequest(options, this.#spec, this.#defaults);
    const signal = options.signal;
    if (signal?.aborted) return this.#reject("aborted");
    const autoRenew = options.autoRenew ?? true;
    // No AbortController of our own per acquire: it is the single largest cost on the hot path
    // (and GC pressure). The caller's signal goes straight to the store; close() ends waiters by
    // closing the store handle, which aborts every acquire still waiting on it.
    try {
      const result = await this.#handle.acquire(request, signal);
      if (!result.ok) return this.#reject(result.reason);
      return this.#grant(new Lease(result.lease, this, autoRenew));
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      return this.#fallbackAcquire(request, signal, autoRenew, error);
    }
  }

  async run<T>(options: AcquireOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T> {
    const result = await this.acquire(options);
    if (!result.ok) throw new SlotgateRejectedError(result.reason, result.retryAfterMs);
    try {
      return await fn(result.lease);
    } finally {
      await result.lease.release();
    }
  }

  async stats(): Promise<GuardStats> {
    const snapshot = await this.#handle.stats();
    const h = snapshot.queueWait;
    return {
      group: this.group,
      store: this.#store.kind,
      ...snapshot,
      queueWaitQuantiles: { p50: histogramQuantile(h, 0.5), p90: histogramQuantile(h, 0.9), p99: histogramQuantile(h, 0.99) },
      fallback: { ...this.#fallback },
      localHolders: this.#held.size,
    };
  }

  async configure(change: { limits?: LimitsOption; backends?: BackendsOption }): Promise<void> {
    const limits = change.limits ?? this.#limitsOption;
    const backends = change.backends ?? this.#backendsOption;
    const spec = buildGroupSpec(limits, backends);
    await this.#handle.configure(spec);
    this.#spec = spec;
    this.#limitsOption = limits;
    this.#backendsOption = backends;
    this.#local?.configure(spec);
  }

  async setServerState(backend: string, server: string, state: "up" | "down"): Promise<void> {
    if (state !== "up" && state !== "down") throw new SlotgateConfigError([{ path: "state", expected: '"up" or "down"', received: state }]);
    await this.#handle.setServerState(backend, server, state === "up");
    await this.#local?.setServerState(backend, server, state === "up");
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Releases first (they may grant our own waiters: #grant gives those back since we are
    // closed), then the handle, which ends every acquire still waiting with `aborted`.
    await Promise.all([...this.#held].map((lease) => lease.release()));
    this.renewals.stop();
    await this.#handle.close();
    await this.#local?.close();
  }

  // ── LeaseOwner: what leases granted by the store call back into ─────────────────────────────

  release(leaseId: string): Promise<boolean> {
    return this.#handle.release(leaseId);
  }

  renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    return this.#handle.renew(leaseId, ttlMs);
  }

  forget(lease: Lease): void {
    this.#held.delete(lease);
  }

  report(event: "renew-failed" | "release-failed" | "lease-lost" | "lease-reregistered", lease: Lease, error?: unknown): void {
    if (event === "lease-reregistered") return this.#emit({ type: event, leaseId: lease.id });
    if (event !== "lease-lost") this.#fallback.store_errors++;
    this.#emit({ type: event, leaseId: lease.id, error });
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────

  #grant(lease: Lease): AcquireResult {
    if (this.#closed) {
      void lease.release();
      return this.#reject("aborted");
    }
    this.#held.add(lease);
    return { ok: true, lease };
  }

  #reject(reason: RejectReason): AcquireResult {
    return { ok: false, reason, retryAfterMs: this.#retryAfterMs };
  }

  async #fallbackAcquire(request: ChainRequest, signal: AbortSignal | undefined, autoRenew: boolean, error: unknown): Promise<AcquireResult> {
    this.#emit({ type: "fallback", policy: this.#policy, error });
    switch (this.#policy) {
      case "fail-closed":
        this.#fallback.fail_closed++;
        return this.#reject("unavailable");
      case "fail-open": {
        this.#fallback.fail_open++;
        const grant = { id: `fail-open-${++this.#failOpenSeq}`, fence: 0, expiresAt: 0, ttlMs: request.leaseTtlMs, waitedMs: 0 };
        return this.#grant(new Lease(request.backend === undefined ? grant : { ...grant, backend: request.backend, ...(request.server ? { server: request.server } : {}) }, this, false, "fail-open"));
      }
      case "local": {
        this.#fallback.local++;
        const local = this.#local!;
        const result = await local.acquire(request, signal);
        if (!result.ok) return this.#reject(result.reason);
        return this.#grant(new Lease(result.lease, local.ownerFor(this), autoRenew, "local"));
      }
    }
  }

  #emit(event: GuardEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A logging hook must never break slot accounting.
    }
  }
}

/**
 * Store faults trigger the outage policy; bad input, unknown scopes and bugs propagate to the
 * caller. Stores wrap their client's errors in SLOTGATE_STORE_UNAVAILABLE, so nothing else counts.
 */
function isStoreFault(error: unknown): boolean {
  return isSlotgateError(error, "SLOTGATE_STORE_UNAVAILABLE");
}
