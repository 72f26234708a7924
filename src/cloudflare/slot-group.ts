/**
 * `SlotGroup`: one Durable Object per group. It runs the very state machine the memory store
 * runs ({@link GroupState}), serves it over RPC ({@link SlotGroupRpc}), and keeps the spec, the
 * fence counter, and every live lease in SQLite ({@link GroupTables}), so a restarted object keeps
 * its holders and never issues a fence twice.
 *
 * - Clock: the object's `Date.now()`.
 * - Queue: a queued ticket is the pending `acquire` call. Its promise resolves on a grant, a
 *   queue timeout, or `cancel`. Tickets are not stored. If the object restarts, the runtime
 *   breaks their calls and the client reports a retryable store fault.
 * - Timers: exactly one alarm, always at `state.nextDeadline()` (the next lease expiry or queue
 *   timeout). `alarm()` ticks the state, so a crashed holder's slot is reclaimed and a queue
 *   timeout fires with no other traffic.
 * - Ownership: a call from the slot API names who it is ({@link LeaseOwner}): a grant stores the
 *   hash of its lease secret with the lease, and release / renew must present it; a queued ticket
 *   remembers its token, and only that token may cancel it. A mismatch answers exactly as a lease
 *   or ticket that does not exist, and changes nothing. Calls without it come from the Worker's
 *   own store (code bound to the namespace, inside the account) and are not checked.
 * - Batches: `batch` runs several calls through the methods below, in order, in one synchronous
 *   step, each answered at its index as alone (`batch-protocol.ts`). A ticket a batch queued is
 *   parked: `wait` collects its outcome (pending until it has one); an outcome nobody collects
 *   within `PARKED_OUTCOME_MS` is dropped at the next batch or wait, a grant released.
 * - Atomicity: every method is synchronous, from the state change to the SQL writes. Nothing
 *   interleaves, and the writes of one call commit together (the runtime's implicit
 *   transaction). The output gate holds every reply, a woken waiter's included, until they are
 *   durable.
 */
import { DurableObject } from "cloudflare:workers";
import { MAX_TTL_MS } from "../core/acquire-options.js";
import { SlotgateError, StoreStatus } from "../core/errors.js";
import type { GroupSpec } from "../core/spec.js";
import { GroupState, rejectedResult } from "../core/state/group-state.js";
import type { GroupStatsSnapshot } from "../core/stats.js";
import type { ChainRequest, LeaseGrant, RenewResult, StoreAcquireResult } from "../core/store.js";
import { canonicalSpecJson, decideSpec } from "../core/spec-version.js";
import {
  checkChainRequest,
  checkGroupSpec,
  checkId,
  checkLeaseOwner,
  checkOwnerToken,
  checkSecretHash,
  checkTtl,
  checkVersion,
  failure,
  ok,
  type ConfigureOutcome,
  type LeaseOwner,
  type Reply,
} from "../stores/durable-object/protocol.js";
import { MAX_BATCH_OPS, PARKED_OUTCOME_MS, QUEUED, type BatchOp, type BatchOpName } from "../stores/durable-object/batch-protocol.js";
import { isPlainObject } from "../core/validate.js";
import { GroupTables } from "./tables.js";

const EMPTY_SPEC: GroupSpec = { limits: {}, backends: {} };
/** Bound on remembered early cancels; ids are random, so the oldest go first. */
const MAX_CANCELLED = 10_000;

type Waiter = (result: StoreAcquireResult) => void;

/** The arguments a batch op may carry, by name, as received: each method checks its own. */
interface BatchArguments {
  request: ChainRequest;
  waiterId: string;
  owner?: LeaseOwner;
  token?: string;
  leaseId: string;
  ttlMs: number;
  secretHash?: string;
  spec: GroupSpec;
  version?: number | null;
  backend: string;
  server: string;
  up: boolean;
}

/** A ticket queued by a batch: who queued it, and its outcome or the `wait` call that collects it. */
interface Parked {
  token: string | undefined;
  outcome?: Reply<StoreAcquireResult>;
  collect?: (outcome: Reply<StoreAcquireResult>) => void;
}

export class SlotGroup extends DurableObject {
  #state!: GroupState;
  #spec: GroupSpec = EMPTY_SPEC;
  #specJson: string | undefined;
  /** The version of the stored spec (SPEC §2 rule 13); null: unversioned. */
  #version: number | null = null;
  #tables!: GroupTables;
  /** Queued tickets by waiter id (= ticket id), each the resolver of a pending acquire call. */
  readonly #waiters = new Map<string, Waiter>();
  /** The owner of each queued ticket that came through the slot API, by waiter id. */
  readonly #owners = new Map<string, LeaseOwner>();
  /**
   * Waiter ids cancelled before their acquire arrived, with the time of the cancel and the token
   * that sent it. Calls on different stubs (after a reconnect) have no order, so a cancel can
   * overtake its acquire. That acquire must not queue a ticket nobody waits for.
   */
  readonly #cancelled = new Map<string, { at: number; token: string | undefined }>();
  /** Tickets queued inside a batch, by waiter id, until `wait` collects their outcome. */
  readonly #parked = new Map<string, Parked>();
  /** Waiter ids of parked outcomes nobody has collected yet, with the time each arrived, oldest first. */
  readonly #unclaimed = new Map<string, number>();
  /** True while a batch runs: its ops leave the alarm to the end of the batch. */
  #inBatch = false;
  /** The alarm as last set. NaN means unknown (a setAlarm failed), so the next change re-arms. */
  #alarmAt: number | null = null;

  // The object reads no bindings. It takes the Worker's Env, whatever it is.
  constructor(ctx: DurableObjectState, env: Cloudflare.Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.#tables = new GroupTables(ctx.storage.sql);
      const { spec, specJson, version, snapshot, servers } = this.#tables.load();
      this.#spec = spec ?? EMPTY_SPEC;
      this.#specJson = specJson;
      this.#version = version;
      this.#state = new GroupState(this.#spec);
      const now = Date.now();
      this.#state.restore(snapshot, now);
      // Rows the state did not take back name scopes that are gone from the spec.
      for (const l of snapshot.leases) if (!this.#state.lease(l.id)) this.#tables.deleteLease(l.id);
      for (const s of servers) {
        try {
          this.#state.setServerState(s.backend, s.server, s.up, now);
        } catch {
          this.#tables.deleteServerState(s.backend, s.server);
        }
      }
      this.#alarmAt = await ctx.storage.getAlarm();
      this.#settle();
    });
  }

  // ── RPC ─────────────────────────────────────────────────────────────────────────────────────

  /** See {@link SlotGroupRpc.acquire}. */
  acquire(request: ChainRequest, waiterId: string, owner?: LeaseOwner): Promise<Reply<StoreAcquireResult>> | Reply<StoreAcquireResult> {
    return this.#run(() => {
      const id = checkId("waiterId", waiterId);
      const who = checkLeaseOwner(owner);
      if (this.#waiters.has(id) || this.#parked.has(id)) throw new SlotgateError("SLOTGATE_INVALID_OPTION", `waiterId ${id} is already queued`);
      const decision = this.#state.acquire(checkChainRequest(request, this.#spec), Date.now(), id);
      const early = this.#cancelled.get(id);
      this.#cancelled.delete(id);
      // Only a cancel by the same token (or by trusted code) counts: no one cancels another's ticket ahead of time.
      if (early !== undefined && (early.token === undefined || early.token === who?.token)) {
        // The caller gave up before this call arrived. End it as if the cancel had come second.
        if (decision.status === "granted") {
          this.#recordGrant(decision.lease, who?.secretHash);
          this.#state.release(decision.lease.id, Date.now());
        } else if (decision.status === "queued") {
          this.#state.cancel(id, Date.now());
        }
        return ok<StoreAcquireResult>(decision.status === "rejected" ? rejectedResult(decision) : { ok: false, reason: "aborted" });
      }
      switch (decision.status) {
        case "granted":
          this.#recordGrant(decision.lease, who?.secretHash);
          return ok<StoreAcquireResult>({ ok: true, lease: decision.lease });
        case "rejected":
          return ok<StoreAcquireResult>(rejectedResult(decision));
        case "queued":
          if (who !== undefined) this.#owners.set(id, who);
          return new Promise<Reply<StoreAcquireResult>>((resolve) => {
            this.#waiters.set(id, (result) => resolve(ok(result)));
          });
      }
    });
  }

  /** See {@link SlotGroupRpc.cancel}. */
  cancel(waiterId: string, token?: string): Reply<boolean> {
    return this.#run(() => {
      const id = checkId("waiterId", waiterId);
      const who = checkOwnerToken(token);
      // Settle first: if a deadline that passed grants this ticket, the grant wins (rule 7).
      this.#state.tick(Date.now());
      this.#settle();
      const waiter = this.#waiters.get(id);
      if (!waiter) {
        this.#rememberCancel(id, who);
        return ok(false);
      }
      // Another token's ticket: answered as if there were none, and left alone.
      if (who !== undefined && this.#owners.get(id)?.token !== who) return ok(false);
      this.#waiters.delete(id);
      this.#owners.delete(id);
      const removed = this.#state.cancel(id, Date.now());
      waiter({ ok: false, reason: "aborted" });
      return ok(removed);
    });
  }

  /** See {@link SlotGroupRpc.release}. */
  release(leaseId: string, secretHash?: string): Reply<boolean> {
    return this.#run(() => {
      const id = checkId("leaseId", leaseId);
      if (!this.#holds(id, checkSecretHash(secretHash))) return ok(false);
      return ok(this.#state.release(id, Date.now()));
    });
  }

  /** See {@link SlotGroupRpc.renew}. */
  renew(leaseId: string, ttlMs: number, secretHash?: string): Reply<RenewResult> {
    return this.#run(() => {
      const id = checkId("leaseId", leaseId);
      const ttl = checkTtl(ttlMs);
      if (!this.#holds(id, checkSecretHash(secretHash))) return ok<RenewResult>({ ok: false });
      const expiresAt = this.#state.renew(id, ttl, Date.now());
      if (expiresAt === undefined) return ok<RenewResult>({ ok: false });
      this.#tables.renewLease(id, expiresAt, ttl);
      return ok<RenewResult>({ ok: true, expiresAt });
    });
  }

  /** See {@link SlotGroupRpc.configure}. */
  configure(spec: GroupSpec, version?: number | null): Reply<ConfigureOutcome> {
    return this.#run(() => {
      const checked = checkGroupSpec(spec);
      const v = checkVersion(version);
      const json = canonicalSpecJson(checked);
      const stored = this.#specJson === undefined ? undefined : { version: this.#version, json: this.#specJson };
      switch (decideSpec(stored, v, json)) {
        case "keep":
          return ok<ConfigureOutcome>({ result: "kept", version: this.#version });
        case "conflict":
          return ok<ConfigureOutcome>({ result: "conflict", version: this.#version!, spec: this.#spec });
        case "install":
          break;
      }
      this.#state.configure(checked, Date.now());
      if (json !== this.#specJson || v !== this.#version) {
        // GroupState lets a spec whose `down` flag changed override a runtime up/down.
        for (const [name, b] of Object.entries(checked.backends)) {
          for (const s of b.servers) {
            const before = this.#spec.backends[name]?.servers.find((x) => x.name === s.name);
            if (before === undefined || before.down !== s.down) this.#tables.deleteServerState(name, s.name);
          }
        }
        this.#tables.saveSpec(json, v);
        this.#specJson = json;
        this.#version = v;
      }
      this.#spec = checked;
      return ok<ConfigureOutcome>({ result: "installed", version: v });
    });
  }

  /** See {@link SlotGroupRpc.setServerState}. */
  setServerState(backend: string, server: string, up: boolean): Reply<null> {
    return this.#run(() => {
      if (typeof backend !== "string" || typeof server !== "string" || typeof up !== "boolean") {
        throw new SlotgateError("SLOTGATE_INVALID_OPTION", "setServerState takes (backend: string, server: string, up: boolean)");
      }
      this.#state.setServerState(backend, server, up, Date.now());
      this.#tables.saveServerState(backend, server, up);
      return ok(null);
    });
  }

  /** See {@link SlotGroupRpc.stats}. */
  stats(): Reply<GroupStatsSnapshot> {
    return this.#run(() => ok(this.#state.stats(Date.now())));
  }

  /**
   * See {@link SlotGroupRpc.batch}. Synchronous from the first op to the last: the batch is one
   * atomic step, and each op runs through its own method, so it answers what it would alone.
   */
  batch(ops: BatchOp[]): Reply<Reply<unknown>[]> {
    if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_BATCH_OPS) {
      return { status: StoreStatus.BadRequest, detail: `ops: expected an array of 1 to ${MAX_BATCH_OPS} calls` };
    }
    // The alarm is set once, after the last op: a storage write per op would buy nothing.
    this.#inBatch = true;
    try {
      this.#sweepParked(Date.now());
      return ok(ops.map((op: unknown) => this.#batchOp(op)));
    } finally {
      this.#inBatch = false;
      this.#arm();
    }
  }

  /** See {@link SlotGroupRpc.wait}. */
  wait(waiterId: string, token?: string): Promise<Reply<StoreAcquireResult>> | Reply<StoreAcquireResult> {
    return this.#run(() => {
      const id = checkId("waiterId", waiterId);
      const who = checkOwnerToken(token);
      this.#sweepParked(Date.now());
      const parked = this.#parked.get(id);
      if (parked === undefined || parked.collect !== undefined || (who !== undefined && parked.token !== who)) {
        return { status: StoreStatus.TicketGone, detail: `no queued ticket ${id} to wait for (the object restarted, or it was collected already)` };
      }
      if (parked.outcome !== undefined) {
        this.#parked.delete(id);
        this.#unclaimed.delete(id);
        return parked.outcome;
      }
      return new Promise<Reply<StoreAcquireResult>>((resolve) => {
        parked.collect = resolve;
      });
    });
  }

  /** Fires at the next lease expiry or queue timeout. */
  override alarm(): void {
    this.#alarmAt = null;
    this.#state.tick(Date.now());
    this.#settle();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  /** One op of a batch, through the method of its name. Anything malformed answers BadRequest in its place. */
  #batchOp(raw: unknown): Reply<unknown> {
    if (!isPlainObject(raw)) return { status: StoreStatus.BadRequest, detail: "a batch op must be an object { op, … }" };
    // Typed as the methods take them; each method checks its own arguments, as when called alone.
    const a = raw as unknown as BatchArguments;
    switch (raw.op as BatchOpName | undefined) {
      case "acquire": {
        const answer = this.acquire(a.request, a.waiterId, a.owner);
        if (!(answer instanceof Promise)) return answer;
        this.#park(a.waiterId, (a.owner as LeaseOwner | undefined)?.token, answer);
        return ok(QUEUED);
      }
      case "cancel":
        return this.cancel(a.waiterId, a.token);
      case "release":
        return this.release(a.leaseId, a.secretHash);
      case "renew":
        return this.renew(a.leaseId, a.ttlMs, a.secretHash);
      case "configure":
        return this.configure(a.spec, a.version);
      case "setServerState":
        return this.setServerState(a.backend, a.server, a.up);
      case "stats":
        return this.stats();
      default:
        return { status: StoreStatus.BadRequest, detail: "op: expected acquire, cancel, release, renew, configure, setServerState or stats" };
    }
  }

  /** Keeps the outcome of a ticket a batch queued until `wait` collects it. */
  #park(waiterId: string, token: string | undefined, answer: Promise<Reply<StoreAcquireResult>>): void {
    const parked: Parked = { token };
    this.#parked.set(waiterId, parked);
    void answer.then((outcome) => {
      if (parked.collect !== undefined) {
        this.#parked.delete(waiterId);
        parked.collect(outcome);
      } else {
        parked.outcome = outcome;
        this.#unclaimed.set(waiterId, Date.now());
      }
    });
  }

  /** Drops outcomes nobody collected in time (oldest first); a grant among them is given back (rule 7). */
  #sweepParked(now: number): void {
    let released = false;
    for (const [id, since] of this.#unclaimed) {
      if (since > now - PARKED_OUTCOME_MS) break;
      this.#unclaimed.delete(id);
      const outcome = this.#parked.get(id)?.outcome;
      this.#parked.delete(id);
      if (outcome?.status === 0 && outcome.value.ok) released = this.#state.release(outcome.value.lease.id, now) || released;
    }
    if (released) this.#settle();
  }

  /** Runs one call. Known faults become a status reply. In every case the effects are delivered and the alarm re-armed. */
  #run<T>(fn: () => T): T | Reply<never> {
    try {
      return fn();
    } catch (error) {
      return failure(error);
    } finally {
      this.#settle();
    }
  }

  /** Persists and delivers what the last call did to other requests, then re-arms the alarm. */
  #settle(): void {
    while (this.#state.hasEffects()) {
      const { granted, timedOut, ended } = this.#state.drainEffects();
      for (const g of granted) this.#recordGrant(g.lease, this.#owners.get(g.ticketId)?.secretHash);
      for (const e of ended) this.#tables.deleteLease(e.leaseId);
      for (const { ticketId, lease } of granted) {
        this.#owners.delete(ticketId);
        const waiter = this.#waiters.get(ticketId);
        if (waiter) {
          this.#waiters.delete(ticketId);
          waiter({ ok: true, lease });
        } else {
          // Nobody is waiting any more: give the slot back, never leak it (rule 7).
          this.#state.release(lease.id, Date.now());
        }
      }
      for (const ticketId of timedOut) {
        const waiter = this.#waiters.get(ticketId);
        this.#waiters.delete(ticketId);
        this.#owners.delete(ticketId);
        waiter?.({ ok: false, reason: "queue-timeout" });
      }
    }
    if (!this.#inBatch) this.#arm();
  }

  #rememberCancel(id: string, token: string | undefined): void {
    const now = Date.now();
    // Keep each for the longest queue timeout; an acquire later than that cannot be waited for anyway.
    for (const [old, { at }] of this.#cancelled) {
      if (at > now - MAX_TTL_MS && this.#cancelled.size < MAX_CANCELLED) break;
      this.#cancelled.delete(old);
    }
    this.#cancelled.set(id, { at: now, token });
  }

  /**
   * Whether a caller that presents `secretHash` holds the lease. No hash presented: a trusted
   * caller. A lease granted without a secret (over RPC) cannot be released with one.
   */
  #holds(leaseId: string, secretHash: string | undefined): boolean {
    if (secretHash === undefined) return true;
    const stored = this.#tables.leaseSecretHash(leaseId);
    return typeof stored === "string" && sameText(stored, secretHash);
  }

  #recordGrant(lease: LeaseGrant, secretHash: string | undefined): void {
    const record = this.#state.lease(lease.id);
    if (!record) return;
    this.#tables.insertLease(
      lease,
      record.chain.map((s) => s.name),
      record.grantedAt,
      secretHash,
    );
  }

  #arm(): void {
    const next = this.#state.nextDeadline() ?? null;
    if (next === this.#alarmAt) return;
    this.#alarmAt = next;
    const storage = this.ctx.storage;
    const done = next === null ? storage.deleteAlarm() : storage.setAlarm(next);
    done.then(undefined, () => {
      this.#alarmAt = Number.NaN;
    });
  }
}

/** Compares two hashes of equal length without stopping at the first difference. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
