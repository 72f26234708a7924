/**
 * Seeded random workloads on one GroupState, checked by invariant against an independent model.
 *
 * The model below knows nothing of the implementation's data structures: it learns what happened
 * only from returned decisions and drained effects, keeps its own holders, queue and limits, and
 * checks after every operation the rules of SPEC §2 (atomic chains, server choice, queue order,
 * no barging, queue timeouts, expiry, fencing) and the numbers of SPEC §3.
 *
 * Timing model (documented in group-state.ts): every call first settles every deadline ≤ now —
 * deadlines in time order (a queue timeout first at the same instant), dispatching after each expiry — and then does its own work. Time is
 * advanced either like a store timer would (tick at each next deadline) or by a jump, so that the
 * next operation settles the backlog lazily.
 *
 * Replay one seed: SLOTGATE_SEED=<n> npx vitest run test/invariants
 */
import { describe, expect, it } from "vitest";
import type { GroupSpec } from "../../src/core/spec.js";
import { GroupState, type AcquireDecision, type Effects } from "../../src/core/state/group-state.js";
import type { ScopeStats } from "../../src/core/stats.js";
import type { ChainRequest, LeaseGrant } from "../../src/core/store.js";
import { Random, replayHint, testSeeds } from "../support/random.js";
import {
  BACKENDS,
  BALANCE_OF,
  bks,
  chainKey,
  describeConfig,
  fixedOf,
  KEYED,
  KEYS,
  keyed,
  mutateConfig,
  NAMED,
  pickLeaseId,
  pickTicketId,
  randomAdvanceMs,
  randomConfig,
  randomOpKind,
  randomRequest,
  randomTtl,
  SERVERS,
  srv,
  toSpec,
  type Chain,
  type Config,
  type Lim,
} from "./workload.js";

const SEEDS = testSeeds([1, 2, 3, 42, 1337, 20250101, 987654321, 4242424242]);
const OPS = 10_000;

type Counter = "granted" | "released" | "expired" | "queue_timeouts" | "aborted" | "rejected_full" | "rejected_queue_full";
const COUNTERS: readonly Counter[] = ["granted", "released", "expired", "queue_timeouts", "aborted", "rejected_full", "rejected_queue_full"];
type Counters = Record<Counter, number>;
const zeroCounters = (): Counters => ({ granted: 0, released: 0, expired: 0, queue_timeouts: 0, aborted: 0, rejected_full: 0, rejected_queue_full: 0 });

// ── the model ────────────────────────────────────────────────────────────────────────────────

interface MTicket {
  id: string;
  cls: number;
  at: number;
  seq: number;
  chain: Chain;
  key: string;
  fixed: string[];
  deadline: number;
  enqueuedAt: number;
  ttl: number;
}

interface MLease {
  id: string;
  fence: number;
  /** Every scope holding a slot for this lease, the chosen server's included. */
  scopes: string[];
  expiresAt: number;
}

/** Queue order of SPEC §2 rule 4: class, then arrival + offset, then arrival order. */
function orderedBefore(a: MTicket, b: MTicket): boolean {
  if (a.cls !== b.cls) return a.cls < b.cls;
  if (a.at !== b.at) return a.at < b.at;
  return a.seq < b.seq;
}

function show(value: unknown): string {
  const s = JSON.stringify(value, (_k, v: unknown) => (typeof v === "string" && v.length > 40 ? `${v.slice(0, 12)}…(${v.length} chars)` : v));
  return s === undefined ? String(value) : s;
}

interface Coverage {
  immediateGrants: number;
  queuedGrants: number;
  queued: number;
  timeouts: number;
  expiries: number;
  releases: number;
  cancels: number;
  renewals: number;
  rejectedFull: number;
  rejectedQueueFull: number;
  pinnedGrants: number;
  balancedGrants: Record<string, number>;
  leastconnTies: number;
  hostileKeyGrants: number;
  lazySettles: number;
  imprecise: number;
  configures: number;
  serverFlips: number;
  maxQueue: number;
  maxLeases: number;
}

class Run {
  readonly r: Random;
  readonly seed: number;
  cfg: Config;
  readonly state: GroupState;
  now = 1_000_000;
  op = 0;
  desc = "start";
  readonly trace: string[] = [];

  // model state
  readonly holders = new Map<string, number>();
  readonly queuedOn = new Map<string, number>();
  readonly leases = new Map<string, MLease>();
  readonly tickets = new Map<string, MTicket>();
  /** How each ticket that ever queued ended: exactly once. */
  readonly ticketEnd = new Map<string, "granted" | "timed out" | "cancelled">();
  readonly endedLeases = new Set<string>();
  readonly endedLeaseList: string[] = [];
  readonly endedTicketList: string[] = [];
  readonly up = new Map<string, boolean>();
  readonly lastPick = new Map<string, number>();
  readonly counters = new Map<string, Counters>();
  lastFence = 0;
  seq = 0;
  grantCount = 0;
  waitSum = 0;
  /** Scopes that received a grant during the current operation. */
  readonly touched = new Set<string>();
  idSeq = 0;
  explicitTicketSeq = 0;
  readonly cov: Coverage = {
    immediateGrants: 0,
    queuedGrants: 0,
    queued: 0,
    timeouts: 0,
    expiries: 0,
    releases: 0,
    cancels: 0,
    renewals: 0,
    rejectedFull: 0,
    rejectedQueueFull: 0,
    pinnedGrants: 0,
    balancedGrants: {},
    leastconnTies: 0,
    hostileKeyGrants: 0,
    lazySettles: 0,
    imprecise: 0,
    configures: 0,
    serverFlips: 0,
    maxQueue: 0,
    maxLeases: 0,
  };

  constructor(seed: number) {
    this.seed = seed;
    this.r = new Random(seed);
    this.cfg = randomConfig(this.r);
    this.state = new GroupState(toSpec(this.cfg), { newId: () => `id${++this.idSeq}` });
    for (const b of BACKENDS) for (const s of SERVERS) this.up.set(srv(b.name, s), !this.cfg.backends[b.name]!.servers[s]!.down);
  }

  fail(msg: string): never {
    throw new Error(
      `seed=${this.seed} op=${this.op} now=${this.now}: ${msg}\n  during: ${this.desc}\n  ${replayHint(this.seed)}\n  last operations:\n    ${this.trace.slice(-15).join("\n    ")}`,
    );
  }

  begin(desc: string): void {
    this.desc = desc;
    this.trace.push(`#${this.op} t=${this.now} ${desc}`);
    if (this.trace.length > 60) this.trace.splice(0, this.trace.length - 30);
    this.touched.clear();
  }

  // ── limits and counts as the model sees them ──

  limitOf(scope: string): Lim {
    const named = this.cfg.named[scope];
    if (named) return named;
    if (scope.startsWith(`${KEYED}:`)) return this.cfg.tenant;
    if (scope.startsWith("backend:")) {
      const b = this.cfg.backends[scope.slice(8)];
      if (b) return b;
    }
    if (scope.startsWith("server:")) {
      const rest = scope.slice(7);
      const slash = rest.indexOf("/");
      const s = this.cfg.backends[rest.slice(0, slash)]?.servers[rest.slice(slash + 1)];
      if (s) return s;
    }
    return this.fail(`model: unknown scope ${show(scope)}`);
  }

  max(scope: string): number {
    return this.limitOf(scope).max ?? Infinity;
  }

  maxqueue(scope: string): number {
    return this.limitOf(scope).maxqueue ?? Infinity;
  }

  h(scope: string): number {
    return this.holders.get(scope) ?? 0;
  }

  q(scope: string): number {
    return this.queuedOn.get(scope) ?? 0;
  }

  hasRoom(scope: string): boolean {
    return this.h(scope) < this.max(scope);
  }

  isUp(backend: string, server: string): boolean {
    const up = this.up.get(srv(backend, server));
    if (up === undefined) return this.fail(`model: unknown server ${backend}/${server}`);
    return up;
  }

  eligible(backend: string): string[] {
    return SERVERS.filter((s) => this.isUp(backend, s) && this.hasRoom(srv(backend, s)));
  }

  fits(c: Chain): boolean {
    for (const s of fixedOf(c)) if (!this.hasRoom(s)) return false;
    if (c.backend === undefined) return true;
    if (c.pinned !== undefined) return this.isUp(c.backend, c.pinned);
    return this.eligible(c.backend).length > 0;
  }

  count(scope: string, counter: Counter): void {
    const bump = (name: string) => {
      let c = this.counters.get(name);
      if (!c) this.counters.set(name, (c = zeroCounters()));
      c[counter]++;
    };
    bump(scope);
    if (scope.startsWith(`${KEYED}:`)) bump(KEYED);
  }

  add(map: Map<string, number>, scope: string, delta: number): void {
    const v = (map.get(scope) ?? 0) + delta;
    if (v < 0) this.fail(`model: negative count on ${show(scope)}`);
    map.set(scope, v);
  }

  /** A keyed scope that nobody holds or waits on disappears, counters and all (SPEC §7: hostile keys cannot grow the state). */
  collectIdleKeys(): void {
    for (const name of [...this.counters.keys(), ...this.holders.keys(), ...this.queuedOn.keys()]) {
      if (name.startsWith(`${KEYED}:`) && this.h(name) === 0 && this.q(name) === 0) {
        this.counters.delete(name);
        this.holders.delete(name);
        this.queuedOn.delete(name);
      }
    }
  }

  modelNextDeadline(): number | undefined {
    let next: number | undefined;
    for (const t of this.tickets.values()) if (next === undefined || t.deadline < next) next = t.deadline;
    for (const l of this.leases.values()) if (next === undefined || l.expiresAt < next) next = l.expiresAt;
    return next;
  }

  // ── effects ──

  /** The part every call does first: timeouts of tickets with deadline ≤ now, then expiry of leases with expiresAt ≤ now. */
  settle(eff: Effects): boolean {
    for (const id of eff.timedOut) {
      const t = this.tickets.get(id);
      if (!t) this.fail(`effects.timedOut reports ticket ${show(id)}, which is not queued (${this.ticketEnd.get(id) ?? "never queued"})`);
      if (t.deadline > this.now) this.fail(`ticket ${show(id)} timed out before its deadline ${t.deadline}`);
      this.removeTicket(t, "timed out");
      for (const s of t.fixed) this.count(s, "queue_timeouts");
      this.cov.timeouts++;
    }
    // Deadlines are settled in time order: a lease that expired before a ticket's deadline may
    // have granted that ticket in the same call, so it is not timed out even though now ≥ deadline.
    const grantedNow = new Set(eff.granted.map((g) => g.ticketId));
    for (const t of this.tickets.values()) {
      if (t.deadline <= this.now && !grantedNow.has(t.id)) this.fail(`ticket ${show(t.id)} is past its deadline ${t.deadline} but was not timed out`);
    }
    let expiredAny = false;
    for (const e of eff.ended) {
      if (!e.expired) continue;
      const l = this.leases.get(e.leaseId);
      if (!l)
        this.fail(
          `effects.ended reports lease ${show(e.leaseId)} expired, but it is not live (${this.endedLeases.has(e.leaseId) ? "already ended" : "never granted"})`,
        );
      if (l.expiresAt > this.now) this.fail(`lease ${l.id} reclaimed before its expiry ${l.expiresAt}`);
      this.removeLease(l, "expired");
      expiredAny = true;
      this.cov.expiries++;
    }
    for (const l of this.leases.values()) {
      if (l.expiresAt <= this.now) this.fail(`lease ${l.id} is past its expiry ${l.expiresAt} but was not reclaimed`);
    }
    if (eff.timedOut.length > 0 || expiredAny) this.cov.lazySettles++;
    this.collectIdleKeys();
    return expiredAny;
  }

  /** Leases ended by the operation itself (release): exactly `expected`, or nothing. */
  checkReleased(eff: Effects, expected: string | undefined): void {
    const released = eff.ended.filter((e) => !e.expired).map((e) => e.leaseId);
    if (show(released) !== show(expected === undefined ? [] : [expected])) {
      this.fail(`effects.ended (not expired) is ${show(released)}, expected ${show(expected === undefined ? [] : [expected])}`);
    }
  }

  removeTicket(t: MTicket, how: "granted" | "timed out" | "cancelled"): void {
    this.tickets.delete(t.id);
    for (const s of t.fixed) this.add(this.queuedOn, s, -1);
    this.ticketEnd.set(t.id, how);
    this.endedTicketList.push(t.id);
  }

  removeLease(l: MLease, how: "released" | "expired"): void {
    this.leases.delete(l.id);
    for (const s of l.scopes) {
      this.add(this.holders, s, -1);
      this.count(s, how);
    }
    this.endedLeases.add(l.id);
    this.endedLeaseList.push(l.id);
  }

  /**
   * Tickets granted from the queue, in the order the state granted them. `precise`: the model's
   * counts are exactly those at grant time (false when a dispatch before the operation's own
   * change and one after it are mixed in one effects list; then only the sound checks run).
   */
  processQueuedGrants(granted: Effects["granted"], precise: boolean): void {
    if (!precise && granted.length > 0) this.cov.imprecise++;
    for (const g of granted) {
      const t = this.tickets.get(g.ticketId);
      if (!t) this.fail(`effects.granted reports ticket ${show(g.ticketId)}, which is not queued (${this.ticketEnd.get(g.ticketId) ?? "never queued"})`);
      for (const u of this.tickets.values()) {
        if (u === t || !orderedBefore(u, t)) continue;
        // Rule 4/5: tickets with the same chain are granted in queue order.
        if (u.key === t.key)
          this.fail(`ticket ${show(t.id)} granted while ticket ${show(u.id)}, ordered before it with the identical chain ${show(u.chain)}, still waits`);
        // Rule 5: a ticket is only granted when no ticket ordered before it could have been.
        if (precise && this.fits(u.chain)) {
          this.fail(`ticket ${show(t.id)} ${show(t.chain)} granted while ticket ${show(u.id)} ${show(u.chain)}, ordered before it, fits`);
        }
      }
      this.removeTicket(t, "granted");
      this.applyGrant(t.chain, g.lease, t.ttl, t.enqueuedAt, precise, `queued ticket ${show(t.id)}`);
      this.cov.queuedGrants++;
    }
  }

  applyGrant(chain: Chain, lease: LeaseGrant, ttl: number, enqueuedAt: number, precise: boolean, who: string): void {
    if (!(lease.fence > this.lastFence)) this.fail(`${who}: fence ${lease.fence} is not greater than the previous fence ${this.lastFence}`);
    if (this.leases.has(lease.id) || this.endedLeases.has(lease.id)) this.fail(`${who}: lease id ${lease.id} reused`);
    if (lease.ttlMs !== ttl || lease.expiresAt !== this.now + ttl)
      this.fail(`${who}: lease ttl/expiry ${lease.ttlMs}/${lease.expiresAt}, expected ${ttl}/${this.now + ttl}`);
    if (lease.waitedMs !== this.now - enqueuedAt) this.fail(`${who}: waitedMs ${lease.waitedMs}, expected ${this.now - enqueuedAt}`);
    const scopes = fixedOf(chain);
    if (chain.backend === undefined) {
      if (lease.backend !== undefined || lease.server !== undefined)
        this.fail(`${who}: lease names backend/server ${lease.backend}/${lease.server} for a chain without backend`);
    } else {
      const b = chain.backend;
      const server = lease.server;
      if (lease.backend !== b) this.fail(`${who}: lease.backend ${lease.backend}, expected ${b}`);
      if (server === undefined || !(SERVERS as readonly string[]).includes(server)) this.fail(`${who}: lease.server ${show(server)} is not a server of ${b}`);
      if (chain.pinned !== undefined && server !== chain.pinned) this.fail(`${who}: pinned to ${chain.pinned} but got ${server}`);
      if (!this.isUp(b, server)) this.fail(`${who}: granted on server ${b}/${server}, which is down`);
      if (chain.pinned === undefined) {
        const sc = srv(b, server);
        const elig = this.eligible(b);
        if (!this.hasRoom(sc)) this.fail(`${who}: chose ${b}/${server}, which has no room (${this.h(sc)}/${this.max(sc)})`);
        if (precise) {
          const balance = BALANCE_OF.get(b);
          if (balance === "first" && server !== elig[0])
            this.fail(`${who}: balance first chose ${server}, the lowest-declared eligible is ${elig[0]} (eligible ${show(elig)})`);
          if (balance === "leastconn") {
            const min = Math.min(...elig.map((s) => this.h(srv(b, s))));
            if (this.h(sc) !== min)
              this.fail(
                `${who}: leastconn chose ${server} with ${this.h(sc)} holders, eligible minimum is ${min} (${show(elig.map((s) => [s, this.h(srv(b, s))]))})`,
              );
            // Ties in round-robin order: the first tied server after the last one picked.
            const last = this.lastPick.get(b) ?? -1;
            const n = SERVERS.length;
            let expected: string | undefined;
            for (let k = 1; k <= n && expected === undefined; k++) {
              const s = SERVERS[(last + k + n) % n]!;
              if (elig.includes(s) && this.h(srv(b, s)) === min) expected = s;
            }
            if (elig.filter((s) => this.h(srv(b, s)) === min).length > 1) this.cov.leastconnTies++;
            if (server !== expected)
              this.fail(`${who}: leastconn tie broken to ${server}, round-robin order after ${SERVERS[last] ?? "none"} gives ${expected}`);
          }
        }
        this.lastPick.set(b, SERVERS.indexOf(server as (typeof SERVERS)[number]));
        this.cov.balancedGrants[b] = (this.cov.balancedGrants[b] ?? 0) + 1;
        scopes.push(sc);
      } else {
        this.cov.pinnedGrants++;
      }
    }
    // Rule 1: a grant takes a slot only in scopes that have room.
    for (const s of scopes) {
      if (!this.hasRoom(s)) this.fail(`${who}: granted on ${show(s)}, which is at or over its max (${this.h(s)}/${this.max(s)})`);
    }
    for (const s of scopes) {
      this.add(this.holders, s, 1);
      this.count(s, "granted");
      this.touched.add(s);
      if (s.startsWith(`${KEYED}:`) && (s.length > 20 || /[{:\n]/.test(s.slice(KEYED.length + 1)))) this.cov.hostileKeyGrants++;
    }
    this.leases.set(lease.id, { id: lease.id, fence: lease.fence, scopes, expiresAt: lease.expiresAt });
    this.lastFence = lease.fence;
    this.grantCount++;
    this.waitSum += lease.waitedMs;
    this.cov.maxLeases = Math.max(this.cov.maxLeases, this.leases.size);
  }

  // ── checks after every operation ──

  checkInvariants(withStats: boolean): void {
    // Stability: no queued ticket fits (what makes dispatch complete and forbids barging).
    for (const t of this.tickets.values()) {
      if (this.fits(t.chain)) this.fail(`queued ticket ${show(t.id)} ${show(t.chain)} fits but was left waiting`);
    }
    // A scope that received a grant in this operation ends at or under its max.
    for (const s of this.touched) {
      if (this.h(s) > this.max(s)) this.fail(`scope ${show(s)} received a grant and now holds ${this.h(s)} > max ${this.max(s)}`);
    }
    const next = this.state.nextDeadline();
    const expected = this.modelNextDeadline();
    if (next !== expected) this.fail(`nextDeadline() is ${next}, the model's next deadline is ${expected}`);
    if (this.state.holderCount !== this.leases.size) this.fail(`holderCount ${this.state.holderCount}, model ${this.leases.size}`);
    if (this.state.ticketCount !== this.tickets.size) this.fail(`ticketCount ${this.state.ticketCount}, model ${this.tickets.size}`);
    this.cov.maxQueue = Math.max(this.cov.maxQueue, this.tickets.size);
    if (withStats) this.checkStats();
  }

  checkStats(): void {
    const st = this.state.stats(this.now);
    if (this.state.hasEffects()) this.fail(`stats() at an already settled time produced effects: ${show(this.state.drainEffects())}`);
    if (st.holders !== this.leases.size) this.fail(`stats.holders ${st.holders}, model ${this.leases.size}`);
    if (st.tickets !== this.tickets.size) this.fail(`stats.tickets ${st.tickets}, model ${this.tickets.size}`);
    if (st.fence !== this.lastFence) this.fail(`stats.fence ${st.fence}, model ${this.lastFence}`);
    if (st.queueWait.count !== this.grantCount || st.queueWait.sumMs !== this.waitSum) {
      this.fail(`stats.queueWait count/sum ${st.queueWait.count}/${st.queueWait.sumMs}, model ${this.grantCount}/${this.waitSum}`);
    }
    const expectedRows = new Set<string>([...NAMED, KEYED]);
    for (const b of BACKENDS) {
      expectedRows.add(bks(b.name));
      for (const s of SERVERS) expectedRows.add(srv(b.name, s));
    }
    const activeKeys: string[] = [];
    for (const k of KEYS) {
      const name = keyed(k);
      if (this.h(name) > 0 || this.q(name) > 0) {
        activeKeys.push(name);
        expectedRows.add(name);
      }
    }
    for (const name of Object.keys(st.scopes)) {
      if (!expectedRows.has(name)) this.fail(`stats has a row ${show(name)} the model does not expect (idle keyed scope left behind?)`);
    }
    const row = (name: string): ScopeStats => st.scopes[name] ?? this.fail(`stats has no row ${show(name)}`);
    const compare = (name: string, got: ScopeStats, inUse: number, queued: number, lim: Lim, counters: Counters) => {
      if (got.in_use !== inUse) this.fail(`stats ${show(name)} in_use ${got.in_use}, model ${inUse}`);
      if (got.queued !== queued) this.fail(`stats ${show(name)} queued ${got.queued}, model ${queued}`);
      if (got.max !== lim.max) this.fail(`stats ${show(name)} max ${got.max}, configured ${lim.max}`);
      if (got.maxqueue !== lim.maxqueue) this.fail(`stats ${show(name)} maxqueue ${got.maxqueue}, configured ${lim.maxqueue}`);
      for (const c of COUNTERS) {
        if (got[c] !== counters[c]) this.fail(`stats ${show(name)} counter ${c} is ${got[c]}, model ${counters[c]}`);
      }
    };
    for (const name of expectedRows) {
      if (name === KEYED) continue;
      compare(name, row(name), this.h(name), this.q(name), this.limitOf(name), this.counters.get(name) ?? zeroCounters());
      if (name.startsWith("server:")) {
        const rest = name.slice(7).split("/");
        const up = this.isUp(rest[0]!, rest[1]!);
        if (row(name).up !== up) this.fail(`stats ${name} up=${row(name).up}, model ${up}`);
      }
    }
    const agg = row(KEYED);
    let inUse = 0;
    let queued = 0;
    for (const k of activeKeys) {
      inUse += this.h(k);
      queued += this.q(k);
    }
    compare(KEYED, agg, inUse, queued, this.cfg.tenant, this.counters.get(KEYED) ?? zeroCounters());
    if (agg.keys !== activeKeys.length) this.fail(`stats ${KEYED}.keys ${agg.keys}, model ${activeKeys.length} active keys`);
  }

  // ── random inputs ──

  randomRequest(): { chain: Chain; req: ChainRequest } {
    return randomRequest(this.r);
  }

  pickLeaseId(): string {
    return pickLeaseId(this.r, this.leases.keys(), this.endedLeaseList);
  }

  pickTicketId(): string {
    return pickTicketId(this.r, this.tickets.keys(), this.endedTicketList);
  }

  // ── operations ──

  opAcquire(): void {
    const { chain, req } = this.randomRequest();
    const explicit = this.r.chance(0.1) ? `ticket:{${++this.explicitTicketSeq}}\n` : undefined;
    this.begin(`acquire ${show(req)}${explicit === undefined ? "" : ` ticketId=${show(explicit)}`}`);
    const d: AcquireDecision = this.state.acquire(req, this.now, explicit);
    const eff = this.state.drainEffects();
    // Grants that follow a lazily settled expiry interleave with timeouts in time order; the model
    // sees only the end state, so those get the sound checks only (stability is still checked).
    const expiredAny = this.settle(eff);
    this.checkReleased(eff, undefined);
    this.processQueuedGrants(eff.granted, !expiredAny);
    const seq = ++this.seq;
    const fixed = fixedOf(chain);
    if (this.fits(chain)) {
      // Atomic chain + no barging: with a stable queue, a chain that fits is granted at once.
      if (d.status !== "granted") this.fail(`the chain fits but the decision is ${show(d)}`);
      this.applyGrant(chain, d.lease, req.leaseTtlMs, this.now, true, "new acquire");
      this.cov.immediateGrants++;
    } else if (req.queueTimeoutMs <= 0) {
      if (d.status !== "rejected" || d.reason !== "full") this.fail(`chain does not fit and queueing is not allowed, expected rejected/full, got ${show(d)}`);
      const full = fixed.filter((s) => !this.hasRoom(s));
      for (const s of full) this.count(s, "rejected_full");
      if (full.length === 0) this.count(chain.pinned !== undefined ? srv(chain.backend!, chain.pinned) : bks(chain.backend!), "rejected_full");
      this.cov.rejectedFull++;
    } else if (fixed.some((s) => this.q(s) >= this.maxqueue(s))) {
      if (d.status !== "rejected" || d.reason !== "queue-full") this.fail(`a maxqueue on the chain is reached, expected rejected/queue-full, got ${show(d)}`);
      for (const s of fixed) if (this.q(s) >= this.maxqueue(s)) this.count(s, "rejected_queue_full");
      this.cov.rejectedQueueFull++;
    } else {
      if (d.status !== "queued") this.fail(`chain does not fit, queueing allowed and no maxqueue reached: expected queued, got ${show(d)}`);
      if (d.deadline !== this.now + req.queueTimeoutMs) this.fail(`ticket deadline ${d.deadline}, expected ${this.now + req.queueTimeoutMs}`);
      if (explicit !== undefined && d.ticketId !== explicit) this.fail(`ticket id ${show(d.ticketId)}, requested ${show(explicit)}`);
      if (this.tickets.has(d.ticketId) || this.ticketEnd.has(d.ticketId)) this.fail(`ticket id ${show(d.ticketId)} reused`);
      const t: MTicket = {
        id: d.ticketId,
        cls: req.priorityClass,
        at: this.now + req.priorityOffsetMs,
        seq,
        chain,
        key: chainKey(chain),
        fixed,
        deadline: d.deadline,
        enqueuedAt: this.now,
        ttl: req.leaseTtlMs,
      };
      this.tickets.set(t.id, t);
      for (const s of fixed) this.add(this.queuedOn, s, 1);
      this.cov.queued++;
    }
    this.collectIdleKeys();
  }

  opRelease(id = this.pickLeaseId()): void {
    this.begin(`release ${show(id)}`);
    const ok = this.state.release(id, this.now);
    const eff = this.state.drainEffects();
    const expiredAny = this.settle(eff);
    const live = this.leases.get(id);
    this.checkReleased(eff, live?.id);
    if (ok !== (live !== undefined)) this.fail(`release returned ${ok}, but the lease is ${live ? "live" : "not live"}`);
    if (live) {
      this.removeLease(live, "released");
      this.cov.releases++;
    }
    // An expiry in the same call may have dispatched before the release did: then the grants of both passes are mixed.
    this.processQueuedGrants(eff.granted, !expiredAny);
    this.collectIdleKeys();
  }

  opCancel(): void {
    const id = this.pickTicketId();
    this.begin(`cancel ${show(id)}`);
    const ok = this.state.cancel(id, this.now);
    const eff = this.state.drainEffects();
    // Grants that follow a lazily settled expiry interleave with timeouts in time order; the model
    // sees only the end state, so those get the sound checks only (stability is still checked).
    const expiredAny = this.settle(eff);
    this.checkReleased(eff, undefined);
    this.processQueuedGrants(eff.granted, !expiredAny);
    const t = this.tickets.get(id);
    if (ok !== (t !== undefined))
      this.fail(`cancel returned ${ok}, but the ticket is ${t ? "queued" : `not queued (${this.ticketEnd.get(id) ?? "never queued"})`}`);
    if (t) {
      this.removeTicket(t, "cancelled");
      for (const s of t.fixed) this.count(s, "aborted");
      this.cov.cancels++;
    }
    this.collectIdleKeys();
  }

  opRenew(): void {
    const id = this.pickLeaseId();
    const ttl = randomTtl(this.r);
    this.begin(`renew ${show(id)} ttl=${ttl}`);
    const res = this.state.renew(id, ttl, this.now);
    const eff = this.state.drainEffects();
    // Grants that follow a lazily settled expiry interleave with timeouts in time order; the model
    // sees only the end state, so those get the sound checks only (stability is still checked).
    const expiredAny = this.settle(eff);
    this.checkReleased(eff, undefined);
    this.processQueuedGrants(eff.granted, !expiredAny);
    const l = this.leases.get(id);
    if (l) {
      if (res !== this.now + ttl) this.fail(`renew of a live lease returned ${res}, expected ${this.now + ttl}`);
      l.expiresAt = this.now + ttl;
      this.cov.renewals++;
    } else if (res !== undefined) {
      this.fail(`renew of a lease that is not live returned ${res}`);
    }
    this.collectIdleKeys();
  }

  opTick(kind: "tick" | "stats"): void {
    this.begin(kind);
    if (kind === "tick") this.state.tick(this.now);
    else this.state.stats(this.now);
    const eff = this.state.drainEffects();
    // Grants that follow a lazily settled expiry interleave with timeouts in time order; the model
    // sees only the end state, so those get the sound checks only (stability is still checked).
    const expiredAny = this.settle(eff);
    this.checkReleased(eff, undefined);
    this.processQueuedGrants(eff.granted, !expiredAny);
    this.collectIdleKeys();
  }

  opServer(): void {
    const b = this.r.pick(BACKENDS).name;
    const s = this.r.pick(SERVERS);
    const up = this.isUp(b, s) ? this.r.chance(0.3) : this.r.chance(0.8);
    this.begin(`server ${b}/${s} ${up ? "up" : "down"}`);
    this.state.setServerState(b, s, up, this.now);
    const eff = this.state.drainEffects();
    const expiredAny = this.settle(eff);
    this.checkReleased(eff, undefined);
    if (!up) {
      // Marking down dispatches nothing: every grant came from settling deadlines first.
      this.processQueuedGrants(eff.granted, !expiredAny);
      this.up.set(srv(b, s), false);
    } else {
      this.up.set(srv(b, s), true);
      this.processQueuedGrants(eff.granted, !expiredAny);
    }
    this.collectIdleKeys();
    this.cov.serverFlips++;
  }

  opConfigure(): void {
    // Settle first so the configure's own dispatch is judged against the new limits only.
    this.opTick("tick");
    this.checkInvariants(true);
    const next = mutateConfig(this.r, this.cfg);
    this.begin(`configure ${describeConfig(next)}`);
    this.state.configure(toSpec(next), this.now);
    const eff = this.state.drainEffects();
    this.settle(eff);
    this.checkReleased(eff, undefined);
    // A server's runtime up/down state is overridden only when the spec's own `down` flag changed.
    for (const b of BACKENDS) {
      for (const s of SERVERS) {
        const before = this.cfg.backends[b.name]!.servers[s]!.down;
        const after = next.backends[b.name]!.servers[s]!.down;
        if (before !== after) this.up.set(srv(b.name, s), !after);
      }
    }
    this.cfg = next;
    this.processQueuedGrants(eff.granted, true);
    this.collectIdleKeys();
    this.cov.configures++;
  }

  /** Time passes: either like a store timer (a tick at every deadline on the way) or as one jump. */
  opAdvance(): void {
    const r = this.r;
    const dt = randomAdvanceMs(r);
    const target = this.now + dt;
    const timer = r.chance(0.6);
    if (timer) {
      for (let guard = 0; ; guard++) {
        if (guard > 100_000) this.fail("timer loop does not terminate");
        const next = this.state.nextDeadline();
        const expected = this.modelNextDeadline();
        if (next !== expected) this.fail(`nextDeadline() is ${next}, the model's next deadline is ${expected}`);
        if (next === undefined || next > target) break;
        this.now = Math.max(this.now, next);
        this.opTick("tick");
        this.checkInvariants(true);
      }
    }
    this.now = target;
    this.begin(`advance +${dt} to ${target} (${timer ? "timer" : "jump"})`);
    // After a jump, deadlines ≤ now are pending until the next call: stats() would settle them.
    this.checkInvariants(timer);
  }

  step(): void {
    const kind = randomOpKind(this.r);
    switch (kind) {
      case "acquire":
        return this.finishOp(() => this.opAcquire());
      case "release":
        return this.finishOp(() => this.opRelease());
      case "renew":
        return this.finishOp(() => this.opRenew());
      case "cancel":
        return this.finishOp(() => this.opCancel());
      case "server":
        return this.finishOp(() => this.opServer());
      case "configure":
        return this.finishOp(() => this.opConfigure());
      case "tick":
        return this.finishOp(() => this.opTick("tick"));
      case "stats":
        return this.finishOp(() => this.opTick("stats"));
      default:
        return this.opAdvance();
    }
  }

  finishOp(fn: () => void): void {
    fn();
    this.checkInvariants(true);
  }

  /** Releases everything, lets every deadline pass, and checks that nothing is left behind. */
  finish(): void {
    for (let round = 0; this.leases.size > 0; round++) {
      if (round > 10_000) this.fail("leases keep coming back while draining");
      for (const id of [...this.leases.keys()]) {
        this.op++;
        this.finishOp(() => this.opRelease(id));
      }
    }
    this.op++;
    this.now += 10_000_000;
    this.finishOp(() => this.opTick("tick"));
    this.begin("final checks");
    if (this.leases.size !== 0 || this.tickets.size !== 0) this.fail(`model left ${this.leases.size} leases and ${this.tickets.size} tickets`);
    if (this.state.holderCount !== 0 || this.state.ticketCount !== 0)
      this.fail(`state left holderCount ${this.state.holderCount}, ticketCount ${this.state.ticketCount}`);
    const st = this.state.stats(this.now);
    for (const [name, row] of Object.entries(st.scopes)) {
      if (row.in_use !== 0 || row.queued !== 0) this.fail(`stats ${show(name)} left in_use ${row.in_use}, queued ${row.queued}`);
      if (name.startsWith(`${KEYED}:`)) this.fail(`keyed scope row ${show(name)} left behind while idle`);
    }
    if (st.scopes[KEYED]?.keys !== 0) this.fail(`${KEYED}.keys is ${st.scopes[KEYED]?.keys}, expected 0`);
    if (st.holders !== 0 || st.tickets !== 0) this.fail(`stats left ${st.holders} holders, ${st.tickets} tickets`);
    if (this.state.nextDeadline() !== undefined) this.fail(`nextDeadline() is ${this.state.nextDeadline()} with nothing left`);
  }

  run(ops: number): void {
    for (this.op = 0; this.op < ops; this.op++) this.step();
    this.finish();
  }
}

describe("GroupState invariants under seeded random workloads", () => {
  it.each(SEEDS)(`seed %i: ${OPS} operations`, (seed) => {
    const run = new Run(seed);
    run.run(OPS);
    // The workload must actually exercise what the invariants talk about.
    const c = run.cov;
    const summary = `seed=${seed} (${replayHint(seed)}): coverage too low ${show(c)}`;
    expect(c.immediateGrants, summary).toBeGreaterThan(500);
    expect(c.queuedGrants, summary).toBeGreaterThan(100);
    expect(c.timeouts, summary).toBeGreaterThan(50);
    expect(c.expiries, summary).toBeGreaterThan(50);
    expect(c.cancels, summary).toBeGreaterThan(20);
    expect(c.rejectedFull, summary).toBeGreaterThan(50);
    expect(c.rejectedQueueFull, summary).toBeGreaterThan(5);
    expect(c.pinnedGrants, summary).toBeGreaterThan(50);
    for (const b of BACKENDS) expect(c.balancedGrants[b.name] ?? 0, summary).toBeGreaterThan(50);
    expect(c.leastconnTies, summary).toBeGreaterThan(10);
    expect(c.hostileKeyGrants, summary).toBeGreaterThan(50);
    expect(c.lazySettles, summary).toBeGreaterThan(50);
    expect(c.maxQueue, summary).toBeGreaterThan(3);
  });
});

describe("GroupState: roundrobin honours weights", () => {
  it("smooth weighted round-robin spreads picks in proportion to weight, skipping down servers", () => {
    const spec: GroupSpec = {
      limits: {},
      backends: {
        rr: {
          balance: "roundrobin",
          max: null,
          maxqueue: null,
          servers: [
            { name: "s1", max: null, maxqueue: null, weight: 1, down: false },
            { name: "s2", max: null, maxqueue: null, weight: 2, down: false },
            { name: "s3", max: null, maxqueue: null, weight: 3, down: false },
          ],
        },
      },
    };
    const state = new GroupState(spec);
    const req: ChainRequest = { scopes: [], backend: "rr", priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 0, leaseTtlMs: 1000 };
    const pick = (n: number): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const d = state.acquire(req, 0);
        if (d.status !== "granted") throw new Error(`unexpected ${show(d)}`);
        const s = d.lease.server!;
        counts[s] = (counts[s] ?? 0) + 1;
        state.release(d.lease.id, 0);
      }
      return counts;
    };
    const all = pick(600);
    expect(Math.abs((all.s1 ?? 0) - 100)).toBeLessThanOrEqual(2);
    expect(Math.abs((all.s2 ?? 0) - 200)).toBeLessThanOrEqual(2);
    expect(Math.abs((all.s3 ?? 0) - 300)).toBeLessThanOrEqual(2);
    // A down server is skipped; the others keep their proportions.
    state.setServerState("rr", "s3", false, 0);
    const rest = pick(300);
    expect(rest.s3 ?? 0).toBe(0);
    expect(Math.abs((rest.s1 ?? 0) - 100)).toBeLessThanOrEqual(2);
    expect(Math.abs((rest.s2 ?? 0) - 200)).toBeLessThanOrEqual(2);
  });
});

describe("GroupState: caller-supplied ticket ids", () => {
  // Regression: a stale heap entry of an ended ticket timed out a later ticket reusing its id.
  it("a ticket id reused after its ticket ended is timed out at its own deadline only", () => {
    const spec: GroupSpec = { limits: { g: { max: 1, maxqueue: null, keyed: false } }, backends: {} };
    const state = new GroupState(spec);
    const req = (queueTimeoutMs: number): ChainRequest => ({ scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs, leaseTtlMs: 100_000 });
    expect(state.acquire(req(0), 0).status).toBe("granted");
    expect(state.acquire(req(50), 0, "x")).toMatchObject({ status: "queued", deadline: 50 });
    expect(state.acquire(req(100), 0, "t1")).toMatchObject({ status: "queued", deadline: 100 });
    expect(state.cancel("t1", 10)).toBe(true);
    expect(state.acquire(req(1000), 20, "t1")).toMatchObject({ status: "queued", deadline: 1020 });
    state.tick(100);
    expect(state.drainEffects().timedOut).toEqual(["x"]);
    expect(state.ticketCount).toBe(1);
    expect(state.nextDeadline()).toBe(1020);
  });
});
