/**
 * The guard: the API users call (SPEC §4). It validates options once, resolves each acquire into
 * a chain request, hands it to the store, wraps grants in self-renewing {@link Lease}s, and applies
 * the outage policy of SPEC §2 rule 11 when the store cannot be reached.
 */
import * as v from "valibot";
import { toChainRequest, type AcquireOptions, type RequestDefaults } from "./acquire-options.js";
import { SlotgateConfigError, SlotgateError, SlotgateRejectedError, isSlotgateError, type RejectReason } from "./errors.js";
import { Lease, type LeaseOwner } from "./lease.js";
import {
  backendsSchema,
  buildGroupSpec,
  limitsSchema,
  ownEntry,
  queueSchema,
  type BackendsOption,
  type GroupSpec,
  type LimitsOption,
  type QueueOption,
} from "./spec.js";
import { MAX_SPEC_VERSION } from "./spec-version.js";
import { histogramQuantile, type GroupStatsSnapshot } from "./stats.js";
import type { ChainRequest, GroupStore, RenewResult, SlotStore, SpecStatus } from "./store.js";
import { accept, boolean, finite, int, isPlainObject, looseObject, nameSchema, object, oneOf, optional, parse, report, refine } from "./validate.js";
import { LocalFallback } from "./local-fallback.js";
import { RenewalSchedule } from "./renewals.js";

export type StoreErrorPolicy = "fail-closed" | "fail-open" | "local";
export const STORE_ERROR_POLICIES: readonly StoreErrorPolicy[] = ["fail-closed", "fail-open", "local"];

export interface GuardOptions {
  /** Where the slots live. @default createMemoryStore() (this process only) */
  store?: SlotStore;
  /** Independent namespace of limits; every node of a fleet uses the same. @default "default" */
  group?: string;
  limits?: LimitsOption;
  backends?: BackendsOption;
  /**
   * The queue's discipline under overload (`fifo`, `codel`, `lifo`; its `targetMs` and
   * `intervalMs`) and the weights of fair queuing by flow (`flowWeights`). Part of the spec: a
   * change needs a new version. Omitted: fifo, every flow weighs 1.
   */
  queue?: QueueOption;
  /**
   * The version of these limits, a positive integer (SPEC §2 rule 13): the store keeps the spec
   * of the highest version it was given. A guard with a lower version runs under the stored spec
   * (acquires naming a scope that spec removed answer `unavailable`); the same version with
   * different limits is refused (`SLOTGATE_SPEC_CONFLICT`). Raise it with every change of limits.
   * Omitted: unversioned, the last unversioned guard to open the group sets its limits.
   */
  version?: number;
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
  /**
   * The store's spec has no scope (limit, backend or server) that this guard's spec names: a
   * newer version removed or renamed it. Acquires naming it answer `unavailable`. Emitted once per
   * scope (a keyed limit's name, never a key value).
   */
  | { type: "scope-unavailable"; scope: string }
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
  /** This guard's spec and what it knows of the store's (SPEC §2 rule 13). */
  spec: GuardSpecStats;
}

export interface GuardSpecStats {
  /** This guard's version; null: unversioned. */
  version: number | null;
  /** The store runs another spec (a newer version, found on the push or by a scope it does not know). */
  superseded: boolean;
  /** Acquires answered `unavailable` because the store's spec does not have a scope they named. */
  unavailable: number;
}

export interface Guard {
  readonly group: string;
  acquire(options?: AcquireOptions): Promise<AcquireResult>;
  /** Acquires, runs `fn`, releases. Throws {@link SlotgateRejectedError} when no slot is granted. */
  run<T>(options: AcquireOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  stats(): Promise<GuardStats>;
  /**
   * Pushes this guard's spec to the store now (otherwise the first call does) and resolves with
   * what the store did with it: installed, or kept a newer spec. Rejects with
   * `SLOTGATE_SPEC_CONFLICT` (same version, different limits; the message names what differs) or
   * a store fault. An edge node calls it at start, so that a conflict stops it there.
   */
  open(): Promise<SpecStatus>;
  /**
   * Changes limits at run time (raising one dispatches the queue). Replaces limits/backends given.
   * With a versioned guard, give a higher `version` (the same version with other limits is
   * refused); omitted, the guard's version stays.
   */
  configure(change: { limits?: LimitsOption; backends?: BackendsOption; queue?: QueueOption; version?: number }): Promise<SpecStatus>;
  setServerState(backend: string, server: string, state: "up" | "down"): Promise<void>;
  /** Ends waiting acquires (`aborted`), releases every held lease, closes the store handle. */
  close(): Promise<void>;
}

const specVersion = int({ min: 1, max: MAX_SPEC_VERSION, expected: "a positive integer" });
const STORE_EXPECTED = "a store (createMemoryStore(), createRedisStore(…), …)";
const isStore = (x: unknown) => typeof x === "object" && x !== null && typeof (x as SlotStore).open === "function";
const LOCAL_SHARE_EXPECTED = "a number in (0, 1]";
// Checked in this order (the spec last), listed in the declaration's order.
const guardOptions = object(
  {
    group: optional(nameSchema, "default"),
    store: optional(accept<SlotStore>(isStore, STORE_EXPECTED), undefined),
    onStoreError: optional(oneOf(STORE_ERROR_POLICIES), "fail-closed" as const),
    localShare: optional(
      finite(LOCAL_SHARE_EXPECTED, (n) => n > 0 && n <= 1),
      undefined,
    ),
    // `null` reads as absent here, as `options.defaults ?? {}` always did.
    defaults: v.pipe(
      v.nullish(
        looseObject(
          { queueTimeoutMs: optional(int({ min: 0 }), 0), leaseTtlMs: optional(int({ min: 1 }), 30_000), queueTimeoutEarly: optional(boolean(), false) },
          "an object { queueTimeoutMs?, leaseTtlMs?, queueTimeoutEarly? }",
        ),
      ),
      v.transform((d) => d ?? { queueTimeoutMs: 0, leaseTtlMs: 30_000, queueTimeoutEarly: false }),
    ),
    retryAfterMs: optional(int({ min: 0 }), 1000),
    onEvent: optional(
      accept<(event: GuardEvent) => void>((x) => typeof x === "function", "a function"),
      undefined,
    ),
    version: optional(specVersion, null),
    limits: optional(limitsSchema, {}),
    backends: optional(backendsSchema, {}),
    queue: optional(queueSchema, undefined),
  },
  "an object",
  ["store", "group", "limits", "backends", "queue", "version", "defaults", "onStoreError", "localShare", "retryAfterMs", "onEvent"],
);
/** `localShare` is each node's share of every maxconn under the `local` policy: required there. */
const checkedGuardOptions = refine(guardOptions, (o, addIssue) => {
  if (o.onStoreError !== "local" || o.localShare !== undefined) return o;
  return report(addIssue, `${LOCAL_SHARE_EXPECTED} when onStoreError is "local"`, undefined, { path: ["localShare"] });
});
/** Scopes reported through `scope-unavailable`, at most (each once). */
const MAX_UNAVAILABLE_REPORTED = 256;

/**
 * The in-process store a guard runs on when none is given, and that the `local` outage policy runs
 * on. The core names no store; the entry point (src/index.ts) wires the memory store in.
 */
export type InProcessStore = () => SlotStore;

/** What the guards of one factory share beyond their options. */
export interface SharedByGuards {
  /**
   * The `local` outage policy's fallback, used instead of one per guard (which would last as long
   * as its guard). For a runtime whose guards live for one request, as a Worker's do: it makes one
   * per isolate. The guards neither reconfigure nor close it.
   */
  localFallback?: LocalFallback;
}

/** The `createGuard` of an entry point, with its in-process store. */
export function guardFactory(inProcess: InProcessStore, shared: SharedByGuards = {}): (options?: GuardOptions) => Guard {
  return (options: GuardOptions = {}) => new GuardImpl(options, inProcess, shared.localFallback);
}

/**
 * A group's numbers straight from a store, without opening the group: no spec is pushed, so
 * nothing the fleet runs changes (SPEC §2 rule 13). For read-only tools such as `slotgate stats`.
 * The node-local parts (fallback counters, holders, spec) are those of no guard: zero and null.
 * Undefined when the store has no state for the group.
 */
export async function readGroupStats(store: SlotStore, group: string): Promise<GuardStats | undefined> {
  parse(
    object({
      group: nameSchema,
      store: accept((x) => typeof x === "object" && x !== null && typeof (x as SlotStore).readStats === "function", STORE_EXPECTED),
    }),
    { group, store },
  );
  const snapshot = await store.readStats(group);
  if (snapshot === undefined) return undefined;
  return withQuantiles(group, store.kind, snapshot, { fail_closed: 0, fail_open: 0, local: 0, store_errors: 0 }, 0, {
    version: null,
    superseded: false,
    unavailable: 0,
  });
}

function withQuantiles(
  group: string,
  kind: string,
  snapshot: GroupStatsSnapshot,
  fallback: FallbackCounters,
  localHolders: number,
  spec: GuardSpecStats,
): GuardStats {
  const h = snapshot.queueWait;
  return {
    group,
    store: kind,
    ...snapshot,
    queueWaitQuantiles: { p50: histogramQuantile(h, 0.5), p90: histogramQuantile(h, 0.9), p99: histogramQuantile(h, 0.99) },
    fallback,
    localHolders,
    spec,
  };
}

class GuardImpl implements Guard, LeaseOwner {
  readonly group: string;
  #spec: GroupSpec;
  #limitsOption: LimitsOption | undefined;
  #backendsOption: BackendsOption | undefined;
  #queueOption: QueueOption | undefined;
  readonly #store: SlotStore;
  readonly #handle: GroupStore;
  readonly #defaults: RequestDefaults;
  readonly #policy: StoreErrorPolicy;
  readonly #retryAfterMs: number;
  readonly #onEvent: ((event: GuardEvent) => void) | undefined;
  readonly #local: LocalFallback | undefined;
  /** The fallback is this guard's own, not one shared by its factory's guards: it configures and closes it. */
  readonly #ownsLocal: boolean;
  readonly #held = new Set<Lease>();
  readonly renewals = new RenewalSchedule();
  readonly #fallback: FallbackCounters = { fail_closed: 0, fail_open: 0, local: 0, store_errors: 0 };
  #closed = false;
  #failOpenSeq = 0;
  #version: number | null;
  #superseded = false;
  #unavailable = 0;
  readonly #reportedUnavailable = new Set<string>();

  constructor(options: GuardOptions, inProcess: InProcessStore, sharedLocal: LocalFallback | undefined) {
    if (!isPlainObject(options as unknown)) throw new SlotgateConfigError([{ path: "options", expected: "an object", received: options }]);
    const {
      store: given,
      group,
      limits,
      backends,
      queue,
      version,
      defaults,
      onStoreError: policy,
      localShare,
      retryAfterMs,
      onEvent,
    } = parse(checkedGuardOptions, options);
    const store = given ?? inProcess();
    if (!isStore(store)) throw new SlotgateConfigError([{ path: "store", expected: STORE_EXPECTED, received: store }]);
    const spec: GroupSpec = queue === undefined ? { limits, backends } : { limits, backends, queue };
    this.group = group;
    this.#spec = spec;
    this.#limitsOption = options.limits;
    this.#backendsOption = options.backends;
    this.#queueOption = options.queue;
    this.#store = store;
    this.#defaults = defaults;
    this.#policy = policy;
    this.#retryAfterMs = retryAfterMs;
    this.#onEvent = onEvent;
    this.#version = version;
    this.#handle = store.open(this.group, spec, version === null ? {} : { version });
    this.#ownsLocal = policy === "local" && sharedLocal === undefined;
    if (policy === "local") this.#local = sharedLocal ?? new LocalFallback(inProcess(), spec, localShare!);
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
      if (!result.ok) return this.#reject(result.reason, result.retryAfterMs);
      return this.#grant(new Lease(result.lease, this, autoRenew));
    } catch (error) {
      // This guard's spec has every scope of the request (toChainRequest checked), the store's
      // does not: the store runs another spec, a newer version that removed or renamed it.
      if (isSlotgateError(error, "SLOTGATE_UNKNOWN_SCOPE")) return this.#scopeUnavailable(error);
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
    return withQuantiles(this.group, this.#store.kind, snapshot, { ...this.#fallback }, this.#held.size, {
      version: this.#version,
      superseded: this.#superseded,
      unavailable: this.#unavailable,
    });
  }

  async open(): Promise<SpecStatus> {
    if (this.#closed) throw new SlotgateError("SLOTGATE_CLOSED", "the guard is closed");
    return this.#noteStatus(await this.#handle.ready());
  }

  async configure(change: { limits?: LimitsOption; backends?: BackendsOption; queue?: QueueOption; version?: number }): Promise<SpecStatus> {
    const limits = change.limits ?? this.#limitsOption;
    const backends = change.backends ?? this.#backendsOption;
    const queue = change.queue ?? this.#queueOption;
    const spec = buildGroupSpec(limits, backends, queue);
    let version = this.#version;
    if (change.version !== undefined) {
      version = parse(specVersion, change.version, "version");
    }
    const status = await this.#handle.configure(spec, version);
    this.#spec = spec;
    this.#version = version;
    this.#limitsOption = limits;
    this.#backendsOption = backends;
    this.#queueOption = queue;
    if (this.#ownsLocal) this.#local?.configure(spec);
    this.#superseded = false;
    return this.#noteStatus(status);
  }

  async setServerState(backend: string, server: string, state: "up" | "down"): Promise<void> {
    if (state !== "up" && state !== "down") throw new SlotgateConfigError([{ path: "state", expected: '"up" or "down"', received: state }]);
    await this.#handle.setServerState(backend, server, state === "up");
    if (this.#ownsLocal) await this.#local?.setServerState(backend, server, state === "up");
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Releases first (they may grant our own waiters: #grant gives those back since we are
    // closed), then the handle, which ends every acquire still waiting with `aborted`.
    await Promise.all([...this.#held].map((lease) => lease.release()));
    this.renewals.stop();
    await this.#handle.close();
    if (this.#ownsLocal) await this.#local?.close();
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

  /** `storeRetryAfterMs`: the store's own estimate (an early rejection's), reported instead of the constant. */
  #reject(reason: RejectReason, storeRetryAfterMs?: number): AcquireResult {
    return { ok: false, reason, retryAfterMs: storeRetryAfterMs ?? this.#retryAfterMs };
  }

  #noteStatus(status: SpecStatus): SpecStatus {
    if (!status.installed) this.#superseded = true;
    return status;
  }

  /** An acquire the store could not place in its spec: `unavailable`, counted, reported once per scope. */
  #scopeUnavailable(error: SlotgateError): AcquireResult {
    this.#unavailable++;
    this.#superseded = true;
    const scope = this.#reportedScope(error.message);
    if (!this.#reportedUnavailable.has(scope) && this.#reportedUnavailable.size < MAX_UNAVAILABLE_REPORTED) {
      this.#reportedUnavailable.add(scope);
      this.#emit({ type: "scope-unavailable", scope });
    }
    return this.#reject("unavailable");
  }

  /** The scope a store's unknown-scope error names, as the guard's spec names it: a keyed scope by its limit. */
  #reportedScope(message: string): string {
    const m = /^unknown (scope|backend|server): (.*)$/s.exec(message);
    if (!m) return "(unknown)";
    const name = m[2]!;
    if (m[1] === "backend") return `backend:${name}`;
    if (m[1] === "server") return `server:${name}`;
    for (let i = name.indexOf(":"); i > 0; i = name.indexOf(":", i + 1)) {
      const limit = name.slice(0, i);
      if (ownEntry(this.#spec.limits, limit)?.keyed) return limit;
    }
    return name;
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
        return this.#grant(
          new Lease(
            request.backend === undefined ? grant : { ...grant, backend: request.backend, ...(request.server ? { server: request.server } : {}) },
            this,
            false,
            "fail-open",
          ),
        );
      }
      case "local": {
        this.#fallback.local++;
        const local = this.#local!;
        const result = await local.acquire(request, signal);
        if (!result.ok) return this.#reject(result.reason);
        return this.#grant(new Lease(result.lease, local.ownerFor(this), autoRenew && local.renews, "local"));
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
