/**
 * The embedded store: one {@link GroupState} per group in this process, driven by one timer per
 * group set at the state's next deadline. Guards that open the same group on the same store
 * share its limits, so several guards in one process behave like several nodes of a fleet.
 */
import { SlotgateError } from "../../core/errors.js";
import type { GroupSpec } from "../../core/spec.js";
import { canonicalSpecJson, decideSpec, specConflictError } from "../../core/spec-version.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import { GroupState, rejectedResult } from "../../core/state/group-state.js";
import type { ChainRequest, GroupStore, OpenOptions, RenewResult, SlotStore, SpecStatus, StoreAcquireResult } from "../../core/store.js";
import { refTimer, unrefTimer as unref } from "../../core/timers.js";

export interface MemoryStoreOptions {
  /** The store's clock in ms. @default Date.now */
  clock?: () => number;
}

export function createMemoryStore(options: MemoryStoreOptions = {}): SlotStore {
  const clock = options.clock ?? (() => Date.now());
  const groups = new Map<string, MemoryGroup>();
  return {
    kind: "memory",
    open(group: string, spec: GroupSpec, options: OpenOptions = {}): GroupStore {
      let g = groups.get(group);
      if (!g) {
        g = new MemoryGroup(group, spec, clock);
        groups.set(group, g);
      }
      g.handles++;
      return new MemoryGroupHandle(g, spec, options.version ?? null, () => {
        if (--g.handles === 0) {
          g.shutdown();
          groups.delete(group);
        }
      });
    },
    async readStats(group: string) {
      // Read-only: a group nobody has open has no state here (it lives as long as its handles).
      const g = groups.get(group);
      if (!g) return undefined;
      const stats = g.state.stats(g.now());
      g.flush();
      return stats;
    },
  };
}

type Waiter = (result: StoreAcquireResult) => void;

class MemoryGroup {
  readonly name: string;
  readonly state: GroupState;
  readonly waiters = new Map<string, Waiter>();
  handles = 0;
  /** The spec the state runs, as canonical JSON, its object and its version (SPEC §2 rule 13). */
  specJson: string | undefined;
  spec: GroupSpec | undefined;
  version: number | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  readonly #clock: () => number;

  constructor(name: string, spec: GroupSpec, clock: () => number) {
    this.name = name;
    // Ids never leave this process, so a counter serves as well as a random UUID, for less.
    let seq = 0;
    // The state starts with the first opener's limits; its push (below) records them with their version.
    this.state = new GroupState(spec, { recordEnded: false, newId: () => `m${(++seq).toString(36)}` });
    this.#clock = clock;
  }

  /** Applies a pushed spec under the version rule; throws SLOTGATE_SPEC_CONFLICT when it is refused. */
  push(spec: GroupSpec, version: number | null): SpecStatus {
    const json = canonicalSpecJson(spec);
    const stored = this.specJson === undefined ? undefined : { version: this.version, json: this.specJson };
    switch (decideSpec(stored, version, json)) {
      case "conflict":
        throw specConflictError(this.name, version!, this.spec, spec);
      case "keep":
        return { installed: false, storedVersion: this.version };
      case "install":
        if (json !== this.specJson) {
          this.state.configure(spec, this.now());
          this.flush();
        }
        this.spec = spec;
        this.specJson = json;
        this.version = version;
        return { installed: true, storedVersion: version };
    }
  }

  now(): number {
    return this.#clock();
  }

  /** Delivers what the last operation did to other requests, then re-arms the timer. */
  flush(): void {
    if (this.state.hasEffects()) {
      const { granted, timedOut } = this.state.drainEffects();
      for (const { ticketId, lease } of granted) {
        const waiter = this.waiters.get(ticketId);
        if (waiter) {
          this.waiters.delete(ticketId);
          waiter({ ok: true, lease });
        } else {
          // The waiter is gone (it aborted in the same instant): give the slot back, never leak it.
          this.state.release(lease.id, this.now());
        }
      }
      for (const ticketId of timedOut) {
        const waiter = this.waiters.get(ticketId);
        this.waiters.delete(ticketId);
        waiter?.({ ok: false, reason: "queue-timeout" });
      }
      if (this.state.hasEffects()) return this.flush();
    }
    this.#arm();
  }

  #arm(): void {
    const next = this.state.nextDeadline();
    if (next === undefined) {
      this.#disarm();
      return;
    }
    if (next >= this.#timerAt && this.#timer !== undefined) {
      // A waiter may have joined since the timer was set for a lease expiry alone.
      if (this.waiters.size > 0) refTimer(this.#timer);
      return;
    }
    this.#disarm();
    this.#timerAt = next;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.state.tick(this.now());
        this.flush();
      },
      Math.max(0, next - this.now()),
    );
    // Lease expiry alone must not keep a process alive; a queued waiter should.
    if (this.waiters.size === 0) unref(this.#timer);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  shutdown(): void {
    this.#disarm();
    for (const [ticketId, waiter] of this.waiters) {
      this.state.cancel(ticketId, this.now());
      waiter({ ok: false, reason: "aborted" });
    }
    this.waiters.clear();
  }
}

class MemoryGroupHandle implements GroupStore {
  readonly #g: MemoryGroup;
  readonly #onClose: () => void;
  #closed = false;
  /** Tickets opened through this handle, so close() can end exactly those. */
  readonly #mine = new Set<string>();
  #spec: GroupSpec;
  #version: number | null;
  /** What the push of this handle's spec found; undefined until it went through (a conflict is retried by every call). */
  #status: SpecStatus | undefined;

  constructor(g: MemoryGroup, spec: GroupSpec, version: number | null, onClose: () => void) {
    this.#g = g;
    this.#spec = spec;
    this.#version = version;
    this.#onClose = onClose;
    try {
      this.#status = g.push(spec, version);
    } catch {
      // Refused: every call of this handle reports it (see #open).
    }
  }

  #open(): MemoryGroup {
    if (this.#closed) throw new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
    this.#status ??= this.#g.push(this.#spec, this.#version);
    return this.#g;
  }

  async ready(): Promise<SpecStatus> {
    this.#open();
    return this.#status!;
  }

  acquire(request: ChainRequest, signal?: AbortSignal): Promise<StoreAcquireResult> {
    let g: MemoryGroup;
    try {
      g = this.#open();
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "aborted" });
    const decision = g.state.acquire(request, g.now());
    if (decision.status !== "queued") {
      g.flush();
      return Promise.resolve(decision.status === "granted" ? { ok: true, lease: decision.lease } : rejectedResult(decision));
    }
    const { ticketId } = decision;
    return new Promise<StoreAcquireResult>((resolve) => {
      const onAbort = () => {
        if (!g.waiters.delete(ticketId)) return;
        this.#mine.delete(ticketId);
        g.state.cancel(ticketId, g.now());
        g.flush();
        resolve({ ok: false, reason: "aborted" });
      };
      g.waiters.set(ticketId, (result) => {
        signal?.removeEventListener("abort", onAbort);
        this.#mine.delete(ticketId);
        resolve(result);
      });
      this.#mine.add(ticketId);
      signal?.addEventListener("abort", onAbort, { once: true });
      g.flush();
    });
  }

  // Release stays usable after close(): a grant that raced close() must still be given back.
  async release(leaseId: string): Promise<boolean> {
    const g = this.#g;
    const released = g.state.release(leaseId, g.now());
    g.flush();
    return released;
  }

  async renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    const g = this.#open();
    const expiresAt = g.state.renew(leaseId, ttlMs, g.now());
    g.flush();
    return expiresAt === undefined ? { ok: false } : { ok: true, expiresAt };
  }

  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    if (this.#closed) throw new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
    const status = this.#g.push(spec, version);
    this.#spec = spec;
    this.#version = version;
    this.#status = status;
    return status;
  }

  async setServerState(backend: string, server: string, up: boolean): Promise<void> {
    const g = this.#open();
    g.state.setServerState(backend, server, up, g.now());
    g.flush();
  }

  async stats(): Promise<GroupStatsSnapshot> {
    const g = this.#open();
    const stats = g.state.stats(g.now());
    g.flush();
    return stats;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const g = this.#g;
    for (const ticketId of this.#mine) {
      const waiter = g.waiters.get(ticketId);
      g.waiters.delete(ticketId);
      g.state.cancel(ticketId, g.now());
      waiter?.({ ok: false, reason: "aborted" });
    }
    this.#mine.clear();
    g.flush();
    this.#onClose();
  }
}
