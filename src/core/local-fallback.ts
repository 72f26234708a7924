/**
 * The `local` outage policy: while the shared store is unreachable, each node enforces
 * `max × localShare` of every limit on its own, with the same semantics (queue, priorities,
 * timeouts) because it runs the same state machine through a private in-process store (the
 * memory store, which the entry point hands the guard).
 *
 * A scaled max is rounded down but kept at 1 or more for a limit of 1 or more, so small limits
 * keep admitting something; the fleet may then exceed such a limit by up to its number of nodes
 * while the store is down. Leases granted here stay local until released, also after the store
 * is back.
 *
 * A guard makes its own fallback, unless its factory hands it one to share (`guardFactory`'s
 * `localFallback`): a Worker's guard lives for one request (a Durable Object stub cannot outlive
 * it), while its fallback limits must be the isolate's, so the Worker makes one per isolate, with
 * `perRequestGuards`.
 */
import type { GroupSpec, ScopeSpec } from "./spec.js";
import type { LeaseOwner, Lease } from "./lease.js";
import type { ChainRequest, GroupStore, SlotStore, StoreAcquireResult } from "./store.js";

/**
 * One limit's in-process share: `max × share` rounded down, but at least 1 for a limit of at least 1
 * (a small limit keeps admitting something); 0 stays 0.
 */
export function localMax(max: number, share: number): number {
  return max === 0 ? 0 : Math.max(1, Math.floor(max * share));
}

export interface LocalFallbackOptions {
  /**
   * Shared by guards that each live for one request (a Worker's): no queue, as a waiter would be
   * woken by another request's release, and leases that do not renew, as no timer of one request
   * may run on in the next; their TTL then only bounds a leak to the life of the process (they
   * are released explicitly). @default false
   */
  perRequestGuards?: boolean;
}

/** The TTL of a lease granted for a per-request guard: released explicitly, its TTL only bounds a leak. */
const PER_REQUEST_LEASE_TTL_MS = 24 * 3600 * 1000;

export class LocalFallback {
  readonly #share: number;
  readonly #handle: GroupStore;
  readonly #perRequestGuards: boolean;

  constructor(store: SlotStore, spec: GroupSpec, share: number, options: LocalFallbackOptions = {}) {
    this.#share = share;
    this.#perRequestGuards = options.perRequestGuards ?? false;
    this.#handle = store.open("local-fallback", this.#scale(spec));
  }

  /** Whether leases granted here renew while held (not for per-request guards). */
  get renews(): boolean {
    return !this.#perRequestGuards;
  }

  acquire(request: ChainRequest, signal: AbortSignal | undefined): Promise<StoreAcquireResult> {
    const r = this.#perRequestGuards ? { ...request, queueTimeoutMs: 0, leaseTtlMs: PER_REQUEST_LEASE_TTL_MS } : request;
    return this.#handle.acquire(r, signal);
  }

  async configure(spec: GroupSpec): Promise<void> {
    // A private, unversioned group: the last push wins.
    await this.#handle.configure(this.#scale(spec), null);
  }

  setServerState(backend: string, server: string, up: boolean): Promise<void> {
    return this.#handle.setServerState(backend, server, up);
  }

  /** Leases granted here renew and release here, while the guard still tracks them. */
  ownerFor(guard: LeaseOwner): LeaseOwner {
    return {
      release: (id) => this.#handle.release(id),
      renew: (id, ttl) => this.#handle.renew(id, ttl),
      forget: (lease: Lease) => guard.forget(lease),
      report: (event, lease, error) => guard.report(event, lease, error),
      renewals: guard.renewals,
    };
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  #scale(spec: GroupSpec): GroupSpec {
    const scale = (max: number | null) => (max === null ? max : localMax(max, this.#share));
    const limits: Record<string, ScopeSpec> = {};
    for (const [name, l] of Object.entries(spec.limits)) limits[name] = { ...l, max: scale(l.max) };
    const backends: GroupSpec["backends"] = {};
    for (const [name, b] of Object.entries(spec.backends)) {
      backends[name] = { ...b, max: scale(b.max), servers: b.servers.map((s) => ({ ...s, max: scale(s.max) })) };
    }
    // The queue's discipline and flow weights apply to the local queue as they do to the store's.
    return spec.queue === undefined ? { limits, backends } : { limits, backends, queue: spec.queue };
  }
}
