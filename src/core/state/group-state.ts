/**
 * The slot semantics of SPEC §2 as one deterministic state machine. It holds no timers and does
 * no I/O: every call takes the store's clock as `now`, first settles every deadline ≤ now (lease
 * expiries, queue timeouts), then does its work. What happened to *other* requests as a result
 * (tickets granted or timed out, leases ended) is collected as effects that the caller drains
 * and delivers. The memory store and the Durable Object run this very code; the Redis Lua
 * scripts mirror it rule for rule.
 *
 * Fair queuing by flow, the queue disciplines and early rejection (docs/semantics.md, rules F,
 * D and E) have their bookkeeping in fairness.ts, discipline.ts and early-rejection.ts; this file
 * applies them where a ticket enters, leaves or is granted, where deadlines settle (CoDel's
 * drops) and where dispatch picks the next ticket (newest-first while a lifo queue stands).
 *
 * Invariant kept between calls: the queue is stable, no queued ticket fits. Every change that
 * adds room (release, expiry, limit raised, server up) dispatches at once, so a new acquire can
 * never take a slot a ticket was waiting for (no barging, rule 6). Each ticket waits on one thing
 * that blocks it (tickets.ts), so a dispatch looks only at tickets that can have started to fit.
 */
import { SlotgateError } from "../errors.js";
import type { BackendSpec, GroupSpec } from "../spec.js";
import { backendScope, flowWeight, ownEntry, serverScope } from "../spec.js";
import { bucketIndex, emptyHistogram, type FlowStats, type GroupStatsSnapshot, type ScopeStats, type WaitHistogram } from "../stats.js";
import type { ChainRequest, LeaseGrant, StoreAcquireResult } from "../store.js";
import { chooseServer, commitChoice } from "./balance.js";
import { ArrivalList } from "./arrivals.js";
import { DeadlineHeap, NewestFirstHeap, OrderHeap, TicketDeadlineHeap, type HeapEntry, type NewestEntry, type OrderEntry } from "./heap.js";
import { compareOrder } from "./order.js";
import { StandingDetector } from "./discipline.js";
import { estimatedWaitMs, scopeOfPoint } from "./early-rejection.js";
import { FairQueue } from "./fairness.js";
import { BackendState, ScopeState, ServerState } from "./scopes.js";
import { blockerOf, type Ticket, type WaitPoint } from "./tickets.js";

export interface LeaseRecord extends HeapEntry {
  id: string;
  fence: number;
  /** Every scope holding a slot for this lease, the chosen server's included. */
  chain: ScopeState[];
  backend?: BackendState;
  server?: ServerState;
  /** Expiry on the store clock (the heap's key). */
  deadline: number;
  ttlMs: number;
  grantedAt: number;
}

/** A wait point in a dispatch, ordered by the first ticket waiting there. */
interface Head extends OrderEntry, NewestEntry {
  point: WaitPoint;
}

export type AcquireDecision =
  | { status: "granted"; lease: LeaseGrant }
  | { status: "queued"; ticketId: string; deadline: number }
  /** `queue-timeout` here is an early rejection (rule E), with the estimate's `retryAfterMs`. */
  | { status: "rejected"; reason: "full" | "queue-full" | "queue-timeout"; retryAfterMs?: number };

/** A rejected decision as the store's answer: the reason, and the estimate when there is one. */
export function rejectedResult(decision: Extract<AcquireDecision, { status: "rejected" }>): Extract<StoreAcquireResult, { ok: false }> {
  return decision.retryAfterMs === undefined
    ? { ok: false, reason: decision.reason }
    : { ok: false, reason: decision.reason, retryAfterMs: decision.retryAfterMs };
}

export interface Effects {
  /** Tickets granted as a side effect of this call (not the caller's own immediate grant). */
  granted: { ticketId: string; lease: LeaseGrant }[];
  timedOut: string[];
  /** Leases that ended in this call, released or reclaimed. */
  ended: { leaseId: string; expired: boolean }[];
}

export interface GroupStateOptions {
  /** Lease ids: random by default, because a lease id is what a holder presents to release. */
  newId?: () => string;
  /**
   * Report ended leases in effects (a store that persists leases needs them). Off, a release
   * that dispatches nothing produces no effects at all, which keeps the hot path allocation-free.
   * @default true
   */
  recordEnded?: boolean;
}

/** What must survive a restart of a store that keeps this state in memory (the Durable Object). */
export interface GroupStateSnapshot {
  fence: number;
  seq: number;
  leases: { id: string; fence: number; chain: string[]; backend?: string; server?: string; expiresAt: number; ttlMs: number; grantedAt: number }[];
}

export class GroupState {
  #spec: GroupSpec;
  readonly #scopes = new Map<string, ScopeState>();
  readonly #backends = new Map<string, BackendState>();
  readonly #leases = new Map<string, LeaseRecord>();
  readonly #tickets = new Map<string, Ticket>();
  readonly #leaseDeadlines = new DeadlineHeap<LeaseRecord>();
  readonly #ticketDeadlines = new TicketDeadlineHeap<Ticket>();
  /** Rule F: virtual time and the flows in the queue. */
  readonly #fair = new FairQueue();
  /** Rule D: the standing-queue detector (idle under fifo). */
  readonly #detector = new StandingDetector();
  /**
   * Under codel and lifo: queued tickets oldest first (by seq). The detector samples the wait of
   * the oldest; codel drops in this order.
   */
  #arrivals: ArrivalList<Ticket> | undefined;
  /** Under lifo: every wait point also keeps its tickets newest-first (WaitPoint.newest). */
  #lifo = false;
  #fence = 0;
  #seq = 0;
  #histogram: WaitHistogram = emptyHistogram();
  #effects: Effects = { granted: [], timedOut: [], ended: [] };
  readonly #newId: () => string;
  readonly #recordEnded: boolean;

  constructor(spec: GroupSpec, options: GroupStateOptions = {}) {
    this.#newId = options.newId ?? (() => crypto.randomUUID());
    this.#recordEnded = options.recordEnded ?? true;
    this.#spec = { limits: {}, backends: {} };
    this.#applySpec(spec);
  }

  // ── public operations ──────────────────────────────────────────────────────────────────────

  acquire(req: ChainRequest, now: number, ticketId?: string): AcquireDecision {
    this.#advance(now);
    const { fixed, backend, pinned } = this.#resolve(req);
    const server = this.#fit(fixed, backend, pinned);
    if (server !== false) {
      const lease = this.#grant(fixed, backend, server, pinned === undefined, req.leaseTtlMs, now, 0);
      return { status: "granted", lease };
    }
    if (req.queueTimeoutMs <= 0) {
      this.#countRejection(fixed, backend, pinned);
      this.#collect(fixed);
      return { status: "rejected", reason: "full" };
    }
    if (fixed.some((s) => s.queueFull)) {
      for (const s of fixed) if (s.queueFull) s.count("rejected_queue_full");
      this.#collect(fixed);
      return { status: "rejected", reason: "queue-full" };
    }
    const waitsOn = blockerOf(fixed, backend, pinned)!;
    if (req.early === true) {
      const rejected = this.#rejectEarly(waitsOn, req.queueTimeoutMs);
      if (rejected) {
        this.#collect(fixed);
        return rejected;
      }
    }
    // Rule F: the flow it queues under (without one, maybe the default flow) and its tag.
    const flow = this.#fair.flowOf(req.flow);
    const ticket: Ticket = {
      id: ticketId ?? this.#newId(),
      cls: req.priorityClass,
      tag: this.#fair.enter(flow, req.flow === undefined ? 1 : flowWeight(this.#spec.queue, req.flow)),
      at: now + req.priorityOffsetMs,
      seq: ++this.#seq,
      flow,
      fixed,
      backend,
      pinned,
      enqueuedAt: now,
      deadline: now + req.queueTimeoutMs,
      leaseTtlMs: req.leaseTtlMs,
      heapIndex: -1,
      orderIndex: -1,
      newestIndex: -1,
      older: undefined,
      newer: undefined,
      waitsOn,
    };
    this.#enqueue(ticket, now);
    return { status: "queued", ticketId: ticket.id, deadline: ticket.deadline };
  }

  /** Idempotent: false when the lease is unknown (released, expired, or never granted). */
  release(leaseId: string, now: number): boolean {
    this.#advance(now);
    const lease = this.#leases.get(leaseId);
    if (!lease) return false;
    const opened = this.#endLease(lease, false);
    if (opened) this.#dispatch(now, pointsOf(opened));
    return true;
  }

  renew(leaseId: string, ttlMs: number, now: number): number | undefined {
    this.#advance(now);
    const lease = this.#leases.get(leaseId);
    if (!lease) return undefined;
    lease.deadline = now + ttlMs;
    lease.ttlMs = ttlMs;
    this.#leaseDeadlines.update(lease);
    return lease.deadline;
  }

  /** Removes a queued ticket (abort, or a waiter that gave up). False if it is no longer queued. */
  cancel(ticketId: string, now: number, how: "aborted" | "queue_timeouts" = "aborted"): boolean {
    this.#advance(now);
    const ticket = this.#tickets.get(ticketId);
    if (!ticket) return false;
    this.#dequeue(ticket, how);
    // Removing a ticket frees no slot, so no other ticket can start to fit: no dispatch needed.
    return true;
  }

  /** Settles every deadline ≤ now. The caller's timer calls this at {@link nextDeadline}. */
  tick(now: number): void {
    this.#advance(now);
  }

  /** The earliest of: a lease expiry, a queue timeout, the next CoDel drop (rule D). */
  nextDeadline(): number | undefined {
    const lease = this.#leaseDeadlines.peek()?.deadline;
    const ticket = this.#ticketDeadlines.peek()?.deadline;
    const drop = this.#nextDrop()?.at;
    let next = lease;
    if (ticket !== undefined && (next === undefined || ticket < next)) next = ticket;
    if (drop !== undefined && (next === undefined || drop < next)) next = drop;
    return next;
  }

  configure(spec: GroupSpec, now: number): void {
    this.#advance(now);
    this.#applySpec(spec);
    // A new discipline or target can make CoDel drops due at this very instant (rule D): settle
    // them before the dispatch, as the Redis configure script does.
    this.#advance(now);
    this.#dispatch(now, this.#allPoints());
  }

  setServerState(backend: string, server: string, up: boolean, now: number): void {
    this.#advance(now);
    const b = this.#backendOrThrow(backend);
    const s = b.server(server);
    if (!s) throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown server: ${backend}/${server}`);
    s.up = up;
    // Up, the server can take the tickets pinned to it and those its backend chooses a server for.
    if (up) this.#dispatch(now, [s, b]);
  }

  drainEffects(): Effects {
    const e = this.#effects;
    this.#effects = { granted: [], timedOut: [], ended: [] };
    return e;
  }

  hasEffects(): boolean {
    const e = this.#effects;
    return e.granted.length > 0 || e.timedOut.length > 0 || e.ended.length > 0;
  }

  get ticketCount(): number {
    return this.#tickets.size;
  }

  get holderCount(): number {
    return this.#leases.size;
  }

  lease(leaseId: string): Readonly<LeaseRecord> | undefined {
    return this.#leases.get(leaseId);
  }

  /** A queued ticket (its order key: class, tag, at, seq), for tests and tools. */
  ticket(ticketId: string): Readonly<Ticket> | undefined {
    return this.#tickets.get(ticketId);
  }

  /** Rule F's virtual time. */
  get virtualTime(): number {
    return this.#fair.virtualTime;
  }

  stats(now: number): GroupStatsSnapshot {
    this.#advance(now);
    const scopes: Record<string, ScopeStats> = {};
    for (const [name, scope] of this.#scopes) scopes[name] = scope.toStats();
    for (const b of this.#backends.values()) {
      for (const s of b.servers) scopes[s.scope.name] = { ...s.scope.toStats(), up: s.up };
    }
    const h = this.#histogram;
    const snapshot: GroupStatsSnapshot = {
      now,
      fence: this.#fence,
      scopes,
      queueWait: { bounds: h.bounds, counts: [...h.counts], count: h.count, sumMs: h.sumMs },
      holders: this.#leases.size,
      tickets: this.#tickets.size,
    };
    const queue = this.#spec.queue;
    if (queue) snapshot.queue = { discipline: queue.discipline, standing: this.#detector.standing(now) };
    if (this.#fair.flows.size > 0) {
      // Flow names are client input: "__proto__" must be an entry like any other (defined, not
      // assigned), in a plain object (structured clone, as RPC uses, refuses one without a prototype).
      const flows: Record<string, FlowStats> = {};
      for (const [name, f] of this.#fair.flows) {
        Object.defineProperty(flows, name, { value: { waiting: f.waiting, granted: f.granted }, enumerable: true, writable: true, configurable: true });
      }
      snapshot.flows = flows;
    }
    return snapshot;
  }

  snapshot(): GroupStateSnapshot {
    return {
      fence: this.#fence,
      seq: this.#seq,
      leases: [...this.#leases.values()].map((l) => ({
        id: l.id,
        fence: l.fence,
        chain: l.chain.map((s) => s.name),
        ...(l.backend ? { backend: l.backend.name } : {}),
        ...(l.server ? { server: l.server.name } : {}),
        expiresAt: l.deadline,
        ttlMs: l.ttlMs,
        grantedAt: l.grantedAt,
      })),
    };
  }

  /** Restores holders and the fence after a restart. Leases whose scopes no longer exist are dropped. */
  restore(snapshot: GroupStateSnapshot, now: number): void {
    this.#fence = Math.max(this.#fence, snapshot.fence);
    this.#seq = Math.max(this.#seq, snapshot.seq);
    for (const l of snapshot.leases) {
      const chain: ScopeState[] = [];
      let ok = true;
      for (const name of l.chain) {
        const scope = this.#scopes.get(name) ?? this.#tryKeyed(name);
        if (!scope) ok = false;
        else chain.push(scope);
      }
      if (!ok || this.#leases.has(l.id)) continue;
      const backend = l.backend === undefined ? undefined : this.#backends.get(l.backend);
      const server = l.server === undefined ? undefined : backend?.server(l.server);
      for (const s of chain) s.restoreHold();
      const record: LeaseRecord = {
        id: l.id,
        fence: l.fence,
        chain,
        backend,
        server,
        deadline: l.expiresAt,
        ttlMs: l.ttlMs,
        grantedAt: l.grantedAt,
        heapIndex: -1,
      };
      this.#leases.set(l.id, record);
      this.#leaseDeadlines.push(record);
    }
    this.#advance(now);
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────

  #applySpec(spec: GroupSpec): void {
    this.#retireRemoved(spec);
    this.#spec = spec;
    this.#applyDiscipline(spec);
    for (const [name, limit] of Object.entries(spec.limits)) {
      const existing = this.#scopes.get(name);
      if (existing) {
        existing.max = limit.max ?? Infinity;
        existing.maxqueue = limit.maxqueue ?? Infinity;
      } else {
        this.#scopes.set(name, new ScopeState(name, limit.keyed ? "aggregate" : "named", limit.max, limit.maxqueue));
      }
      if (limit.keyed) {
        // Every live key of a keyed limit follows its perKey max.
        for (const scope of this.#scopes.values()) {
          if (scope.parent?.name === name) {
            scope.max = limit.max ?? Infinity;
            scope.maxqueue = limit.maxqueue ?? Infinity;
          }
        }
      }
    }
    for (const [name, b] of Object.entries(spec.backends)) this.#applyBackend(name, b);
  }

  /** Scopes, backends and servers the new spec no longer has leave the map (see ScopeState.retired). */
  #retireRemoved(spec: GroupSpec): void {
    const retire = (scope: ScopeState) => {
      scope.retired = true;
      if (this.#scopes.get(scope.name) === scope) this.#scopes.delete(scope.name);
    };
    for (const scope of [...this.#scopes.values()]) {
      const limitName = scope.kind === "keyed" ? scope.parent!.name : scope.name;
      if ((scope.kind === "named" || scope.kind === "aggregate" || scope.kind === "keyed") && !Object.hasOwn(spec.limits, limitName)) retire(scope);
      // A limit that changed between named and keyed is a new scope under the same name.
      else if (scope.kind === "named" && spec.limits[limitName]!.keyed) retire(scope);
      else if (scope.kind === "aggregate" && !spec.limits[limitName]!.keyed) retire(scope);
    }
    for (const [name, backend] of [...this.#backends]) {
      if (!Object.hasOwn(spec.backends, name)) {
        retire(backend.scope);
        for (const s of backend.servers) retire(s.scope);
        this.#backends.delete(name);
      }
    }
  }

  #applyBackend(name: string, spec: BackendSpec): void {
    const scopeName = backendScope(name);
    let backend = this.#backends.get(name);
    if (!backend) {
      const scope = new ScopeState(scopeName, "backend", spec.max, spec.maxqueue);
      this.#scopes.set(scopeName, scope);
      backend = new BackendState(name, spec, scope);
      this.#backends.set(name, backend);
    }
    backend.balance = spec.balance;
    backend.scope.max = spec.max ?? Infinity;
    backend.scope.maxqueue = spec.maxqueue ?? Infinity;
    const servers: ServerState[] = [];
    for (const s of spec.servers) {
      let server = backend.server(s.name);
      if (!server) {
        server = new ServerState(s.name, new ScopeState(serverScope(name, s.name), "server", s.max, s.maxqueue), s.weight, s.down);
        server.scope.server = server;
        server.scope.pool = backend;
      } else if (server.specDown !== s.down) {
        server.up = !s.down;
        server.specDown = s.down;
      }
      server.weight = s.weight;
      server.scope.max = s.max ?? Infinity;
      server.scope.maxqueue = s.maxqueue ?? Infinity;
      servers.push(server);
    }
    for (const old of backend.servers) if (!servers.includes(old)) old.scope.retired = true;
    backend.servers = servers;
    backend.lastPick = Math.min(backend.lastPick, servers.length - 1);
  }

  /**
   * The discipline's own indexes follow the spec: the arrival list under codel and lifo, the
   * newest-first heaps under lifo, built from the tickets queued when the discipline changes,
   * dropped when it changes away. fifo keeps neither, so its path costs what it did before.
   */
  #applyDiscipline(spec: GroupSpec): void {
    this.#detector.configure(spec.queue);
    const discipline = this.#detector.discipline;
    if (discipline !== "fifo" && !this.#arrivals) {
      this.#arrivals = new ArrivalList<Ticket>();
      // The map holds the tickets in the order they were queued: by seq.
      for (const t of this.#tickets.values()) this.#arrivals.push(t);
    } else if (discipline === "fifo" && this.#arrivals) {
      for (const t of this.#tickets.values()) t.older = t.newer = undefined;
      this.#arrivals = undefined;
    }
    const lifo = discipline === "lifo";
    if (lifo === this.#lifo) return;
    this.#lifo = lifo;
    for (const point of this.#allPoints()) point.newest = undefined;
    // A ticket may wait on a retired scope, which no longer is among the points.
    for (const t of this.#tickets.values()) t.waitsOn.newest = undefined;
    for (const t of this.#tickets.values()) {
      t.newestIndex = -1;
      if (lifo) (t.waitsOn.newest ??= new NewestFirstHeap<Ticket>()).push(t);
    }
  }

  #backendOrThrow(name: string): BackendState {
    const b = this.#backends.get(name);
    if (!b) throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown backend: ${name}`);
    return b;
  }

  /** Keyed scopes exist only while used; `<limit>:<value>` where the shortest keyed prefix wins. */
  #tryKeyed(name: string): ScopeState | undefined {
    for (let i = name.indexOf(":"); i > 0; i = name.indexOf(":", i + 1)) {
      const limitName = name.slice(0, i);
      const limit = ownEntry(this.#spec.limits, limitName);
      if (!limit?.keyed) continue;
      const parent = this.#scopes.get(limitName)!;
      const scope = new ScopeState(name, "keyed", limit.max, limit.maxqueue, parent);
      this.#scopes.set(name, scope);
      parent.keys++;
      return scope;
    }
    return undefined;
  }

  #resolve(req: ChainRequest): { fixed: ScopeState[]; backend?: BackendState; pinned?: ServerState } {
    const fixed: ScopeState[] = [];
    for (const name of req.scopes) {
      let scope = this.#scopes.get(name);
      if (scope && (scope.kind === "aggregate" || scope.kind === "backend")) {
        throw new SlotgateError(
          "SLOTGATE_UNKNOWN_SCOPE",
          scope.kind === "aggregate"
            ? `scope ${name} is a keyed limit: name a key, e.g. ${name}:<value>`
            : `scope ${name}: name backends with the backend option`,
        );
      }
      scope ??= this.#tryKeyed(name);
      if (!scope) {
        this.#collect(fixed);
        throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown scope: ${name.length > 80 ? `${name.slice(0, 80)}…` : name}`);
      }
      fixed.push(scope);
    }
    if (req.backend === undefined) return { fixed };
    const backend = this.#backends.get(req.backend);
    if (!backend) {
      this.#collect(fixed);
      throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown backend: ${req.backend}`);
    }
    fixed.push(backend.scope);
    if (req.server === undefined) return { fixed, backend };
    const pinned = backend.server(req.server);
    if (!pinned) {
      this.#collect(fixed);
      throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown server: ${req.backend}/${req.server}`);
    }
    fixed.push(pinned.scope);
    return { fixed, backend, pinned };
  }

  /** The server to take (undefined when none is involved), or false when the chain does not fit. */
  #fit(fixed: ScopeState[], backend: BackendState | undefined, pinned: ServerState | undefined): ServerState | undefined | false {
    for (const s of fixed) if (!s.hasRoom) return false;
    if (pinned) return pinned.up ? pinned : false;
    if (!backend) return undefined;
    return chooseServer(backend) ?? false;
  }

  #grant(
    fixed: ScopeState[],
    backend: BackendState | undefined,
    server: ServerState | undefined,
    balanced: boolean,
    ttlMs: number,
    now: number,
    waitedMs: number,
  ): LeaseGrant {
    const chain = fixed.slice();
    if (server && backend && balanced) {
      commitChoice(backend, server);
      chain.push(server.scope);
    }
    for (const s of chain) s.take();
    const record: LeaseRecord = {
      id: this.#newId(),
      fence: ++this.#fence,
      chain,
      backend,
      server,
      deadline: now + ttlMs,
      ttlMs,
      grantedAt: now,
      heapIndex: -1,
    };
    this.#leases.set(record.id, record);
    this.#leaseDeadlines.push(record);
    const h = this.#histogram;
    h.counts[bucketIndex(waitedMs)]!++;
    h.count++;
    h.sumMs += waitedMs;
    return toGrant(record, waitedMs);
  }

  /** Returns the scopes that went from full to having room, or undefined when none did (the common case: no allocation). */
  #endLease(lease: LeaseRecord, expired: boolean): Set<ScopeState> | undefined {
    this.#leases.delete(lease.id);
    this.#leaseDeadlines.remove(lease);
    let opened: Set<ScopeState> | undefined;
    for (const s of lease.chain) if (s.give(expired ? "expired" : "released")) (opened ??= new Set()).add(s);
    this.#collect(lease.chain);
    if (this.#recordEnded) this.#effects.ended.push({ leaseId: lease.id, expired });
    return opened;
  }

  #enqueue(ticket: Ticket, now: number): void {
    for (const s of ticket.fixed) s.enqueue(now);
    this.#wait(ticket.waitsOn, ticket);
    this.#tickets.set(ticket.id, ticket);
    this.#ticketDeadlines.push(ticket);
    this.#arrivals?.push(ticket);
  }

  /** A ticket leaves the queue without a grant: cancelled, timed out, or dropped by CoDel. */
  #dequeue(ticket: Ticket, how?: "queue_timeouts" | "aborted" | "codel_dropped"): void {
    this.#tickets.delete(ticket.id);
    this.#ticketDeadlines.remove(ticket);
    this.#arrivals?.remove(ticket);
    this.#unwait(ticket.waitsOn, ticket);
    for (const s of ticket.fixed) s.dequeue(how);
    this.#collect(ticket.fixed);
    this.#fair.leave(ticket.flow, false);
    if (this.#tickets.size === 0) this.#emptied();
  }

  /** Files a ticket at its wait point (and in the point's newest-first view under lifo). */
  #wait(point: WaitPoint, t: Ticket): void {
    point.waiting.push(t);
    if (this.#lifo) (point.newest ??= new NewestFirstHeap<Ticket>()).push(t);
  }

  #unwait(point: WaitPoint, t: Ticket): void {
    point.waiting.remove(t);
    point.newest?.remove(t);
  }

  /** The group's queue became empty: virtual time and the detector start again (rules F and D). */
  #emptied(): void {
    this.#fair.emptied();
    this.#detector.emptied();
  }

  /**
   * Rule E: the rejection of an acquire that would wait on `point`, when the scope's hand-off rate
   * says it would not be served within its queue timeout; undefined to queue it.
   */
  #rejectEarly(point: WaitPoint, queueTimeoutMs: number): AcquireDecision | undefined {
    const scope = scopeOfPoint(point);
    // Behind a queue only: with none, the hand-off rate says nothing about this ticket's wait.
    if (scope.queued === 0) return undefined;
    const estimate = estimatedWaitMs(scope);
    if (estimate === undefined || estimate <= queueTimeoutMs) return undefined;
    scope.count("rejected_early");
    return { status: "rejected", reason: "queue-timeout", retryAfterMs: Math.ceil(estimate) };
  }

  /** Every wait point the group has, for a change that may clear any of them (a new spec). */
  #allPoints(): WaitPoint[] {
    const points: WaitPoint[] = [...this.#scopes.values()];
    for (const b of this.#backends.values()) {
      points.push(b);
      for (const s of b.servers) points.push(s, s.scope);
    }
    return points;
  }

  /**
   * Grants queued tickets in order (rule 5) after `points` may have cleared; no ticket waiting
   * elsewhere can have started to fit (its point is still blocked). The tickets waiting on the
   * points that are clear are looked at in queue order across all of them, as one merged queue:
   * a ticket that fits is granted; one that does not moves to what blocks it now, which stays
   * blocked for the rest of the pass (grants only fill scopes). A point that a grant blocked
   * again drops out with every ticket behind it: they need it, so there is no overtaking on a
   * shared full scope, and no head-of-line blocking across unrelated ones. Each ticket looked at
   * costs O(log n), whatever the length of the queue.
   */
  #dispatch(now: number, points: readonly WaitPoint[]): void {
    if (this.#tickets.size === 0) return;
    const live = points.filter((p) => p.waiting.size > 0 && p.clear);
    if (live.length === 0) return;
    // Adaptive LIFO (rule D): a standing queue is served newest-first within each class. Decided
    // once per pass, at its start.
    if (this.#lifo && this.#detector.standing(now)) return this.#dispatchNewestFirst(now, live);
    if (live.length === 1) {
      // One point (the common case: a release that frees one full scope): its own queue, in order.
      const p = live[0]!;
      for (let t = p.waiting.peek(); t !== undefined && p.clear; t = p.waiting.peek()) this.#tryTicket(now, p, t);
      return;
    }
    const heads = new OrderHeap<Head>();
    for (const point of live) this.#pushHead(heads, { cls: 0, tag: 0, at: 0, seq: 0, orderIndex: -1, newestIndex: -1, point }, false);
    for (let h = heads.peek(); h !== undefined; h = heads.peek()) {
      heads.remove(h);
      const t = h.point.waiting.peek();
      if (t === undefined || !h.point.clear) continue;
      if (compareOrder(t, h) === 0) this.#tryTicket(now, h.point, t);
      this.#pushHead(heads, h, false);
    }
  }

  /** {@link #dispatch} over the points' newest-first views: the same merge, in the reversed order. */
  #dispatchNewestFirst(now: number, live: readonly WaitPoint[]): void {
    const heads = new NewestFirstHeap<Head>();
    for (const point of live) this.#pushHead(heads, { cls: 0, tag: 0, at: 0, seq: 0, orderIndex: -1, newestIndex: -1, point }, true);
    for (let h = heads.peek(); h !== undefined; h = heads.peek()) {
      heads.remove(h);
      const t = h.point.newest?.peek();
      if (t === undefined || !h.point.clear) continue;
      if (compareOrder(t, h) === 0) this.#tryTicket(now, h.point, t);
      this.#pushHead(heads, h, true);
    }
  }

  /** (Re)files a point under the ticket now first at it (newest-first: in its newest-first view), if any. */
  #pushHead(heads: { push(h: Head): void }, h: Head, newest: boolean): void {
    const t = newest ? h.point.newest?.peek() : h.point.waiting.peek();
    if (t === undefined) return;
    h.cls = t.cls;
    h.tag = t.tag;
    h.at = t.at;
    h.seq = t.seq;
    heads.push(h);
  }

  /** Grants the ticket first at `point`, or moves it to what blocks it now. */
  #tryTicket(now: number, point: WaitPoint, t: Ticket): void {
    this.#unwait(point, t);
    const server = this.#fit(t.fixed, t.backend, t.pinned);
    if (server === false) {
      t.waitsOn = blockerOf(t.fixed, t.backend, t.pinned)!;
      this.#wait(t.waitsOn, t);
      return;
    }
    // The detector's sample (rule D): the wait of the oldest ticket in the queue, this one included.
    const oldestEnqueuedAt = this.#arrivals?.peek()?.enqueuedAt ?? t.enqueuedAt;
    this.#tickets.delete(t.id);
    this.#ticketDeadlines.remove(t);
    this.#arrivals?.remove(t);
    for (const s of t.fixed) s.dequeue();
    const waited = now - t.enqueuedAt;
    const lease = this.#grant(t.fixed, t.backend, server, t.pinned === undefined, t.leaseTtlMs, now, waited);
    this.#servedFromQueue(t, t.pinned === undefined ? server : undefined, now, now - oldestEnqueuedAt);
    this.#effects.granted.push({ ticketId: t.id, lease });
  }

  /**
   * What a grant from the queue (never an immediate one) tells rules F, D and E. `chosen`: the
   * server the backend chose for it, whose scope is in the lease's chain besides the ticket's own.
   */
  #servedFromQueue(t: Ticket, chosen: ServerState | undefined, now: number, oldestWaited: number): void {
    this.#fair.leave(t.flow, true);
    this.#fair.served(t.tag);
    this.#detector.served(oldestWaited, now);
    for (const s of t.fixed) s.handoff(now);
    chosen?.scope.handoff(now);
    if (this.#tickets.size === 0) this.#emptied();
  }

  /**
   * Settles deadlines ≤ now in time order, as if each had been handled at its own moment: a slot
   * freed by an expiry at t goes to the queue before a ticket whose deadline is after t times
   * out, even when the call comes late. At the same instant a queue timeout goes first (the
   * ticket has waited its full time), and leases expire together before the queue is dispatched.
   * Grants made here carry `now` as their grant time.
   */
  #advance(now: number): void {
    for (;;) {
      const ticket = this.#ticketDeadlines.peek();
      const lease = this.#leaseDeadlines.peek();
      const ticketDue = ticket !== undefined && ticket.deadline <= now;
      const leaseDue = lease !== undefined && lease.deadline <= now;
      // CoDel drops (rule D) come after the timeouts and expiries of the same instant.
      const drop = this.#arrivals ? this.#nextDrop() : undefined;
      if (drop !== undefined && drop.at <= now && !(ticketDue && ticket.deadline <= drop.at) && !(leaseDue && lease.deadline <= drop.at)) {
        this.#dequeue(drop.ticket, "codel_dropped");
        this.#effects.timedOut.push(drop.ticket.id);
      } else if (ticketDue && (!leaseDue || ticket.deadline <= lease.deadline)) {
        this.#dequeue(ticket, "queue_timeouts");
        this.#effects.timedOut.push(ticket.id);
      } else if (leaseDue) {
        // Leases that expire at the same instant expire together, then the queue is dispatched
        // once: the order they were granted in must not decide which ticket gets a slot.
        let opened: Set<ScopeState> | undefined;
        for (let l: LeaseRecord | undefined = lease; l !== undefined && l.deadline === lease.deadline; l = this.#leaseDeadlines.peek()) {
          const o = this.#endLease(l, true);
          if (o) for (const s of o) (opened ??= new Set()).add(s);
        }
        if (opened) this.#dispatch(now, pointsOf(opened));
      } else {
        return;
      }
    }
  }

  /** Under codel, the oldest ticket (by seq) and when it is to be dropped, if a drop is due at all. */
  #nextDrop(): { ticket: Ticket; at: number } | undefined {
    const oldest = this.#arrivals?.peek();
    if (oldest === undefined) return undefined;
    const at = this.#detector.dropAt(oldest.enqueuedAt);
    return at === undefined ? undefined : { ticket: oldest, at };
  }

  #countRejection(fixed: ScopeState[], backend: BackendState | undefined, pinned: ServerState | undefined): void {
    let counted = false;
    for (const s of fixed) {
      if (!s.hasRoom) {
        s.count("rejected_full");
        counted = true;
      }
    }
    if (!counted) (pinned?.scope ?? backend?.scope)?.count("rejected_full");
  }

  /** Drops keyed scopes that nobody holds or waits on, so hostile keys cannot grow the state. */
  #collect(scopes: ScopeState[]): void {
    for (const s of scopes) {
      if (s.kind === "keyed" && s.idle && this.#scopes.get(s.name) === s) {
        this.#scopes.delete(s.name);
        s.parent!.keys--;
      }
    }
  }
}

/**
 * The wait points that scopes going from full to having room may clear: each scope, and for a
 * server's scope also the server (tickets pinned to it) and its backend (tickets it may be chosen for).
 */
function pointsOf(opened: Set<ScopeState>): WaitPoint[] {
  const points: WaitPoint[] = [];
  for (const s of opened) {
    points.push(s);
    if (s.server) points.push(s.server);
    if (s.pool && !points.includes(s.pool)) points.push(s.pool);
  }
  return points;
}

function toGrant(l: LeaseRecord, waitedMs: number): LeaseGrant {
  const grant: LeaseGrant = { id: l.id, fence: l.fence, expiresAt: l.deadline, ttlMs: l.ttlMs, waitedMs };
  if (l.backend) grant.backend = l.backend.name;
  if (l.server) grant.server = l.server.name;
  return grant;
}
