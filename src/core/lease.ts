/**
 * A granted slot in the caller's hands: renewed automatically while held, released once.
 * `signal` aborts when the lease is lost (a renew found it gone, or the store stayed unreachable
 * past its expiry): from then on the slot may be someone else's, and work guarded by it should stop.
 */
import { SlotgateError } from "./errors.js";
import type { RenewalEntry, RenewalSchedule } from "./renewals.js";
import type { LeaseGrant, RenewResult } from "./store.js";

export type LeaseFallback = "fail-open" | "local";

/** What a lease needs from whoever granted it: the store handle, or the local fallback. */
export interface LeaseOwner {
  release(leaseId: string): Promise<boolean>;
  renew(leaseId: string, ttlMs: number): Promise<RenewResult>;
  /** Called once when the lease is done (released or lost), so the guard stops tracking it. */
  forget(lease: Lease): void;
  report(event: "renew-failed" | "release-failed" | "lease-lost" | "lease-reregistered", lease: Lease, error?: unknown): void;
  /** Where automatic renewals are timed (one timer for all of a guard's leases). */
  readonly renewals: RenewalSchedule;
}

export class Lease implements AsyncDisposable {
  readonly id: string;
  /** Fencing token: strictly greater than every earlier grant's in the group. 0 for a fail-open lease. */
  readonly fence: number;
  readonly backend: string | undefined;
  /** The server the store chose (or the one requested), if the acquire named a backend. */
  readonly server: string | undefined;
  /** How long the request waited in the queue, on the store's clock. */
  readonly waitedMs: number;
  /** Set when the slot came from the outage policy rather than the store. */
  readonly fallback: LeaseFallback | undefined;
  readonly ttlMs: number;

  readonly #owner: LeaseOwner;
  /** Created on first use of `signal`: an AbortController per grant costs more than the rest of an acquire. */
  #controller: AbortController | undefined;
  #lostReason: SlotgateError | undefined;
  /** Present while automatic renewal is on: this lease's place in the guard's renewal schedule. */
  #renewal: RenewalEntry | undefined;
  /** Local-clock time by which the store will have reclaimed the lease unless renewed. */
  #deadline: number;
  #done = false;
  #releasing: Promise<void> | undefined;

  constructor(grant: LeaseGrant, owner: LeaseOwner, autoRenew: boolean, fallback?: LeaseFallback) {
    this.id = grant.id;
    this.fence = grant.fence;
    this.backend = grant.backend;
    this.server = grant.server;
    this.waitedMs = grant.waitedMs;
    this.ttlMs = grant.ttlMs;
    this.fallback = fallback;
    this.#owner = owner;
    this.#deadline = Date.now() + grant.ttlMs;
    if (autoRenew && fallback !== "fail-open") {
      this.#renewal = { deadline: 0, heapIndex: -1, run: () => void this.#autoRenew() };
      this.#schedule();
    }
  }

  /** Aborted (reason: a SlotgateError with code SLOTGATE_LEASE_LOST) when the lease is lost. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#lostReason !== undefined && !this.#controller.signal.aborted) this.#controller.abort(this.#lostReason);
    return this.#controller.signal;
  }

  /** False once released or lost. */
  get held(): boolean {
    return !this.#done;
  }

  /** Releases the slot; idempotent. Never rejects: a store fault is reported, and the TTL reclaims the slot. */
  release(): Promise<void> {
    if (this.#releasing) return this.#releasing;
    this.#stopRenewing();
    if (this.#done) return (this.#releasing = Promise.resolve());
    this.#done = true;
    this.#owner.forget(this);
    this.#releasing =
      this.fallback === "fail-open"
        ? Promise.resolve()
        : this.#owner.release(this.id).then(
            () => undefined,
            (error: unknown) => this.#owner.report("release-failed", this, error),
          );
    return this.#releasing;
  }

  /** Renews now; resolves false if the lease was lost. */
  async renew(ttlMs: number = this.ttlMs): Promise<boolean> {
    if (this.#done) return false;
    if (this.fallback === "fail-open") return true;
    const startedAt = Date.now();
    const result = await this.#owner.renew(this.id, ttlMs);
    if (this.#done) return false;
    if (!result.ok) {
      this.#lose(
        new SlotgateError(
          "SLOTGATE_LEASE_LOST",
          result.stateLost
            ? `lease ${this.id} was lost with the store's state (data loss or failover) and could not be re-registered`
            : `lease ${this.id} was reclaimed by the store`,
        ),
      );
      return false;
    }
    this.#deadline = startedAt + ttlMs;
    if (result.reregistered) this.#owner.report("lease-reregistered", this);
    return true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  #schedule(): void {
    // A third of the TTL: two renewals may fail before the store reclaims the slot.
    this.#owner.renewals.schedule(this.#renewal!, Date.now() + Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  async #autoRenew(): Promise<void> {
    if (this.#done) return;
    try {
      if (await this.renew()) this.#schedule();
    } catch (error) {
      if (this.#done) return;
      this.#owner.report("renew-failed", this, error);
      if (Date.now() >= this.#deadline) {
        this.#lose(new SlotgateError("SLOTGATE_LEASE_LOST", `lease ${this.id} expired while the store was unreachable`, { cause: error }));
      } else {
        this.#schedule();
      }
    }
  }

  /** Called by the guard on close: no more renewals, and the lease counts as lost to its holder. */
  abandon(reason: SlotgateError): void {
    this.#lose(reason);
  }

  #lose(reason: SlotgateError): void {
    if (this.#done) return;
    this.#done = true;
    this.#stopRenewing();
    this.#owner.forget(this);
    this.#owner.report("lease-lost", this, reason);
    this.#lostReason = reason;
    this.#controller?.abort(reason);
  }

  #stopRenewing(): void {
    if (this.#renewal !== undefined) this.#owner.renewals.cancel(this.#renewal);
  }
}
