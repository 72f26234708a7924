/**
 * Counters of one scope, and the backend/server structures that balancing reads. Plain mutable
 * records: the state machine owns them and is the only writer.
 */
import type { BackendSpec, Balance } from "../spec.js";
import { emptyCounters, type QueueCounters, type ScopeCounters, type ScopeStats } from "../stats.js";
import { OrderHeap, type NewestFirstHeap } from "./heap.js";
import type { Ticket, WaitPoint } from "./tickets.js";

export class ScopeState implements WaitPoint {
  readonly name: string;
  /** Infinity: unlimited. */
  max: number;
  maxqueue: number;
  inUse = 0;
  queued = 0;
  peakInUse = 0;
  peakQueued = 0;
  readonly counters: ScopeCounters & QueueCounters = emptyCounters();
  /** A keyed scope (`tenant:acme`) mirrors every change into its limit's aggregate row. */
  readonly parent: ScopeState | undefined;
  /** On an aggregate row: live keys. */
  keys = 0;
  /**
   * Removed from the spec by a reconfigure: unknown to new acquires, never has room (tickets
   * needing it wait until they time out), and its holders can still release.
   */
  retired = false;
  readonly kind: "named" | "keyed" | "aggregate" | "backend" | "server";
  /** Tickets waiting for this scope to have room. */
  readonly waiting = new OrderHeap<Ticket>();
  newest: NewestFirstHeap<Ticket> | undefined = undefined;
  /** Store-clock time of the last grant from the queue on this scope, or of its queue's last start if later (rule E); undefined until either. */
  lastHandoffAt: number | undefined = undefined;
  /** Mean time between those moments and the grants that follow, an EWMA with weight 1/8 (rule E); undefined until the first such interval. */
  handoffMs: number | undefined = undefined;
  /** On a server's scope: its server, and the backend whose tickets may take it once it has room. */
  server: ServerState | undefined;
  pool: BackendState | undefined;

  constructor(name: string, kind: ScopeState["kind"], max: number | null, maxqueue: number | null, parent?: ScopeState) {
    this.name = name;
    this.kind = kind;
    this.max = max ?? Infinity;
    this.maxqueue = maxqueue ?? Infinity;
    this.parent = parent;
  }

  get hasRoom(): boolean {
    return this.inUse < this.max && !this.retired;
  }

  get clear(): boolean {
    return this.hasRoom;
  }

  get queueFull(): boolean {
    return this.queued >= this.maxqueue;
  }

  take(): void {
    this.inUse++;
    this.counters.granted++;
    if (this.inUse > this.peakInUse) this.peakInUse = this.inUse;
    this.parent?.take();
  }

  /** Gives a slot back; `how` names the counter. Returns true when the scope went from full to having room. */
  give(how: "released" | "expired"): boolean {
    const wasFull = !this.hasRoom;
    this.inUse--;
    this.counters[how]++;
    this.parent?.give(how);
    return wasFull && this.hasRoom;
  }

  /** Re-counts a holder restored from storage after a restart (no counter moves). */
  restoreHold(): void {
    this.inUse++;
    if (this.inUse > this.peakInUse) this.peakInUse = this.inUse;
    this.parent?.restoreHold();
  }

  /**
   * One more ticket queued here (`now`: on this scope itself, not through a key's aggregate row).
   * When the queue was empty, the next hand-off interval starts now (rule E): time with nothing
   * waiting says nothing about the hand-off rate.
   */
  enqueue(now?: number): void {
    if (now !== undefined && this.queued === 0) this.lastHandoffAt = now;
    this.queued++;
    if (this.queued > this.peakQueued) this.peakQueued = this.queued;
    this.parent?.enqueue();
  }

  /** A grant from the queue took a slot here: one more hand-off interval into the EWMA (rule E, bit for bit as in Lua). */
  handoff(now: number): void {
    const last = this.lastHandoffAt;
    if (last !== undefined) {
      const d = now - last;
      const h = this.handoffMs;
      this.handoffMs = h === undefined ? d : h + (d - h) / 8;
    }
    this.lastHandoffAt = now;
  }

  dequeue(how?: "queue_timeouts" | "aborted" | "codel_dropped"): void {
    this.queued--;
    if (how) this.counters[how]++;
    this.parent?.dequeue(how);
  }

  count(counter: "rejected_full" | "rejected_queue_full" | "rejected_early"): void {
    this.counters[counter]++;
    this.parent?.count(counter);
  }

  get idle(): boolean {
    return this.inUse === 0 && this.queued === 0;
  }

  toStats(): ScopeStats {
    const stats: ScopeStats = {
      in_use: this.inUse,
      max: Number.isFinite(this.max) ? this.max : null,
      maxqueue: Number.isFinite(this.maxqueue) ? this.maxqueue : null,
      queued: this.queued,
      peak_in_use: this.peakInUse,
      peak_queued: this.peakQueued,
      ...this.counters,
    };
    if (this.kind === "aggregate") stats.keys = this.keys;
    return stats;
  }
}

export class ServerState implements WaitPoint {
  readonly name: string;
  readonly scope: ScopeState;
  weight: number;
  up: boolean;
  /** The `down` flag of the spec last applied, so a reconfigure only overrides a runtime change when the spec itself changed. */
  specDown: boolean;
  /** Smooth weighted round-robin: current weight (nginx's algorithm, deterministic, cluster-wide). */
  currentWeight = 0;
  /** Tickets pinned to this server, waiting for it to come up. */
  readonly waiting = new OrderHeap<Ticket>();
  newest: NewestFirstHeap<Ticket> | undefined = undefined;

  constructor(name: string, scope: ScopeState, weight: number, down: boolean) {
    this.name = name;
    this.scope = scope;
    this.weight = weight;
    this.up = !down;
    this.specDown = down;
  }

  /** Up and with room: a backend may choose it. */
  get eligible(): boolean {
    return this.up && this.scope.hasRoom;
  }

  get clear(): boolean {
    return this.eligible;
  }
}

/** A backend, and as a wait point its servers: tickets that let the store choose wait here while none is eligible. */
export class BackendState implements WaitPoint {
  readonly name: string;
  readonly scope: ScopeState;
  balance: Balance;
  servers: ServerState[] = [];
  /** Index of the last server chosen: round-robin tie-break for leastconn. */
  lastPick = -1;
  readonly waiting = new OrderHeap<Ticket>();
  newest: NewestFirstHeap<Ticket> | undefined = undefined;

  constructor(name: string, spec: BackendSpec, scope: ScopeState) {
    this.name = name;
    this.balance = spec.balance;
    this.scope = scope;
  }

  server(name: string): ServerState | undefined {
    return this.servers.find((s) => s.name === name);
  }

  get clear(): boolean {
    for (const s of this.servers) if (s.eligible) return true;
    return false;
  }
}
