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
 */
import type { GroupSpec, ScopeSpec } from "./spec.js";
import type { LeaseOwner, Lease } from "./lease.js";
import type { ChainRequest, GroupStore, SlotStore, StoreAcquireResult } from "./store.js";

/**
 * One limit's in-process share: `max × share` rounded down, but at least 1 for a limit of at least 1
 * (a small limit keeps admitting something); 0 stays 0. The Worker's isolate limits use it too.
 */
export function localMax(max: number, share: number): number {
  return max === 0 ? 0 : Math.max(1, Math.floor(max * share));
}

export class LocalFallback {
  readonly #share: number;
  readonly #handle: GroupStore;

  constructor(store: SlotStore, spec: GroupSpec, share: number) {
    this.#share = share;
    this.#handle = store.open("local-fallback", this.#scale(spec));
  }

  acquire(request: ChainRequest, signal: AbortSignal | undefined): Promise<StoreAcquireResult> {
    return this.#handle.acquire(request, signal);
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
    return { limits, backends };
  }
}
