/**
 * Differential test: the Redis scripts against GroupState, the reference state machine.
 *
 * The seeded random workloads of test/invariants (its generators, test/invariants/workload.ts) are
 * replayed step by step through GroupState and through the Redis scripts on a real redis-server,
 * both on the same clock: the test sets the group's test-only clock (the `\0clock` field of cfg,
 * see src/stores/redis/lua/includes/prelude.lua) before each step. After every step it compares
 * - the decision: granted (server, backend, expiry), queued (ticket id), rejected with its reason;
 *   released, renewed (expiry), cancelled, or not found;
 * - what the step did to other requests: which tickets were granted (in order, with lease, server,
 *   expiry, wait) and which timed out (in order), from the wake-up messages the scripts publish;
 * - fences: strictly increasing on both sides, grant for grant (their values differ by design:
 *   Redis fences start at the clock in µs, rule 12);
 * - every counter of every scope (stats), the wait histogram, holders and tickets;
 * - the next deadline: Redis's hint may be early, never late.
 * On a mismatch it prints the seed, the step, the last steps and both states.
 *
 * The script calls of a batch of steps go out in one pipeline.
 *
 * Fair queuing, the queue disciplines and early rejection (docs/semantics.md rules F, D and E): each
 * seed runs under one discipline (fifo, codel, lifo in turn) with a small target and interval, and
 * flow weights for a few flow names (hostile ones among them); a third generator, seeded from the
 * seed, gives most acquires a flow and some `early`, and now and then a configure changes the
 * queue section (the discipline too). Early rejections (and their retryAfterMs), CoDel drops (as
 * time-outs), the grant order across flows, the `queue` and `flows` stats and the new counters are
 * held against GroupState like everything else.
 *
 * Some runs of consecutive acquires, releases, renewals and cancels (a third of them, chosen by a
 * second generator seeded from the seed, so the workload is the same as without) go to Redis as
 * one call of the batch script, as the store sends what its callers ask for in one turn of the
 * event loop. Each op's reply is held against GroupState's decision for it; the wake-ups of the
 * whole run (published, or returned in the batch reply when it names the test's channel) against
 * GroupState's, in order; the counters after the run.
 *
 *   SLOTGATE_SEED=<n> npx vitest run test/differential              # one more seed
 *   SLOTGATE_DIFF_OPS=<n> npx vitest run test/differential          # operations per seed (default 10,000)
 *   SLOTGATE_DIFF_WATCH=<scope> ...                                  # print one scope's row after every step
 *   SLOTGATE_DIFF_LUA=scripts ...                                    # EVALSHA instead of FCALL (see below)
 *
 * The Lua runs as the store runs it on Redis ≥ 7: the functions of the library (FCALL), whose
 * per-call state must not leak from one call to the next. SLOTGATE_DIFF_LUA=scripts runs the same
 * steps through the scripts (EVALSHA), the store's fallback where Redis has no functions.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGroupSpec, type Discipline, type GroupSpec, type QueueSpec } from "../../src/core/spec.js";
import { canonicalSpecJson } from "../../src/core/spec-version.js";
import { FairQueue, MAX_TAG } from "../../src/core/state/fairness.js";
import { GroupState, type AcquireDecision, type Effects } from "../../src/core/state/group-state.js";
import { WAIT_BUCKETS_MS, type GroupStatsSnapshot } from "../../src/core/stats.js";
import type { ChainRequest } from "../../src/core/store.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { parseStats } from "../../src/stores/redis/redis-store.js";
import { LIBRARY, REPLY, SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import {
  BACKENDS,
  mutateConfig,
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
} from "../invariants/workload.js";
import { Random, replayHint, testSeeds } from "../support/random.js";

const SEEDS = testSeeds([1, 2, 3, 42, 1337, 20250101, 987654321, 4242424242]);
/** The flows the workload names: a few, hostile names among them; weights 1 to 1000 for some. */
const FLOWS = ["f0", "f1", "f2", "{x}", "line\nbreak", "__proto__"];
const DISCIPLINES: readonly Discipline[] = ["fifo", "codel", "lifo"];
const OPS = Number(process.env.SLOTGATE_DIFF_OPS ?? 10_000);
/** Steps per pipeline. */
const BATCH = 200;
/** Every counter is compared after every step (read raw from the counters hash); the stats script's whole reply every this many steps, on every stats step, and at the end. */
const STATS_EVERY = 25;
const PREFIX = "diff:";
const CHANNEL = "diff:wake";
const START = 10_000_000;
/** The share of batchable steps that go to Redis in one batch-script call with their neighbours, and the most per call. */
const BATCHED_SHARE = 0.33;
const MAX_BATCH = 8;
/** SLOTGATE_DIFF_WATCH=<scope>: print that scope's row from both sides after every step. */
const WATCH = process.env.SLOTGATE_DIFF_WATCH;

/** The steps that can go out in a batch-script call (runOp kinds), and their scripts' codes in it. */
const BATCH_OPS = { acquire: true, release: true, renew: true, cancel: true };
const BATCH_CODES: Record<string, string> = {
  [SCRIPTS.acquire.command]: "a",
  [SCRIPTS.release.command]: "r",
  [SCRIPTS.renew.command]: "n",
  [SCRIPTS.cancel.command]: "c",
};

type Pipe = Record<string, (...args: (string | number)[]) => Pipe> & { exec(): Promise<[Error | null, unknown][] | null> };

/** FCALL (the default) or EVALSHA: see the header. */
const LUA = process.env.SLOTGATE_DIFF_LUA === "scripts" ? "scripts" : "functions";

/** A pipeline whose script commands (SCRIPTS[…].command) call the library's functions, unless LUA is "scripts". */
function pipeline(): Pipe {
  const pipe = redis.pipeline() as unknown as Pipe;
  if (LUA === "functions")
    for (const [name, def] of Object.entries(SCRIPTS))
      pipe[def.command] = (...keysThenArgv) => pipe.fcall!(LIBRARY.functions[name]!, def.numberOfKeys, ...keysThenArgv);
  return pipe;
}

let server: RedisProcess | undefined;
let redis: Redis;
let sub: Redis;
/** Wake-up messages and step markers, as the subscriber heard them. */
const heard: string[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  sub = new Redis(server.url);
  for (const def of Object.values(SCRIPTS)) redis.defineCommand(def.command, { lua: def.lua, numberOfKeys: def.numberOfKeys });
  sub.on("message", (_channel: string, message: string) => heard.push(message));
  await sub.subscribe(CHANNEL);
  for (const def of Object.values(SCRIPTS)) await redis.script("LOAD", def.lua);
  if (LUA === "functions") await redis.function("LOAD", LIBRARY.code);
});

afterAll(async () => {
  sub?.disconnect();
  redis?.disconnect();
  await server?.stop();
});

/** Every field of two stats rows (counters, limits, keys of a keyed aggregate, up of a server) is equal. */
function sameRow(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  for (const f in a) if (a[f] !== b[f]) return false;
  for (const f in b) if (!(f in a)) return false;
  return true;
}

/**
 * The counters as GroupStatsSnapshot, straight from Redis: the sc hash (`<scope>\0<counter>`, and the
 * group's `\0<counter>`), holders and tickets (leases, queue), without a script. Limits and the
 * servers' up flags are left out (the stats script's reply has them).
 */
function rawStats(now: number, [fields, holders, tickets, flowsRaw]: unknown[]): GroupStatsSnapshot {
  const flat = fields as Record<string, string>;
  const scopes = Object.create(null) as Record<string, Record<string, number>>;
  for (const [field, value] of Object.entries(flat)) {
    const cut = field.lastIndexOf("\0");
    const name = field.slice(0, cut);
    (scopes[name] ??= {
      in_use: 0,
      queued: 0,
      peak_in_use: 0,
      peak_queued: 0,
      granted: 0,
      rejected_full: 0,
      rejected_queue_full: 0,
      queue_timeouts: 0,
      aborted: 0,
      expired: 0,
      released: 0,
      rejected_early: 0,
      codel_dropped: 0,
    })[field.slice(cut + 1)] = Number(value);
  }
  // A scope's hand-off rate (rule E) is state, not a counter.
  for (const row of Object.values(scopes)) {
    delete row.ho;
    delete row.hm;
  }
  const group = scopes[""] ?? {};
  delete scopes[""];
  const counts = WAIT_BUCKETS_MS.map((_, i) => group[`w${i}`] ?? 0).concat(group[`w${WAIT_BUCKETS_MS.length}`] ?? 0);
  const queueWait = { bounds: WAIT_BUCKETS_MS, counts, count: counts.reduce((x, y) => x + y, 0), sumMs: group.wsum ?? 0 };
  const snapshot: GroupStatsSnapshot = {
    now,
    fence: group.fence ?? 0,
    scopes: scopes as unknown as GroupStatsSnapshot["scopes"],
    queueWait,
    holders: Number(holders),
    tickets: Number(tickets),
  };
  const entries = Object.entries(flowsRaw as Record<string, string>);
  if (entries.length > 0) {
    const flows = Object.create(null) as NonNullable<GroupStatsSnapshot["flows"]>;
    for (const [name, value] of entries) {
      const [, waiting, granted] = value.split(" ").map(Number);
      flows[name] = { waiting: waiting!, granted: granted! };
    }
    snapshot.flows = flows;
  }
  return snapshot;
}

/** Flows by name (the two sides list them in different orders). */
function sortedFlows(flows: GroupStatsSnapshot["flows"]): [string, unknown][] | undefined {
  return flows === undefined ? undefined : Object.entries(flows).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === "string" && v.length > 40 ? `${v.slice(0, 12)}…(${v.length} chars)` : v === Infinity ? "∞" : v,
  );
}

/** What GroupState decided in one step, to hold the Redis replies against. */
interface Expect {
  step: number;
  now: number;
  desc: string;
  check: (reply: unknown[], outcomes: Outcome[]) => void;
  effects: Effects;
  stats: GroupStatsSnapshot;
  next: number | undefined;
  /** Release: wake-ups for our channel come back in the reply, after the status and nextIn. */
  localOutcomes?: boolean;
  /** The step's commands start with an HSET of the clock. */
  clock: boolean;
  /** A run of steps sent as one batch-script call: each step's expectations, in order. */
  parts?: Expect[];
  /** The stats script runs after the step (else the raw counters are read). */
  full: boolean;
}

/** A wake-up message of a script (see `outcome` in src/stores/redis/lua/includes/outcomes.lua). */
interface Outcome {
  k: string;
  o: "g" | "t";
  l?: string;
  f?: string;
  x?: number;
  t?: number;
  w?: number;
  b?: string;
  s?: string;
}

interface Coverage {
  grants: number;
  queuedGrants: number;
  timeouts: number;
  expiries: number;
  rejections: number;
  cancels: number;
  renewals: number;
  /** Calls that met the fast path's conditions as far as the test can tell (named scopes only, nothing due). */
  fastEligible: Record<string, number>;
  /** Batch-script calls, and the steps they carried. */
  batches: number;
  batchedSteps: number;
  /** Rules F, D, E: acquires that named a flow and queued, early rejections, CoDel drops (from the counters at the end). */
  flowTickets: number;
  rejectedEarly: number;
  codelDropped: number;
}

/** A run of steps being gathered into one batch-script call. */
interface OpenBatch {
  size: number;
  argv: (string | number)[];
  parts: Expect[];
  /** Wake-ups come back in the reply (the test's channel) instead of being published. */
  local: boolean;
}

class Diff {
  readonly r: Random;
  readonly seed: number;
  cfg: Config;
  readonly state: GroupState;
  readonly keys: string[];
  now = START;
  clockSent = -1;
  step = 0;
  readonly trace: string[] = [];
  readonly up = new Map<string, boolean>();
  // GroupState's lease ids (gs<n>) and the ids the scripts were given for the same leases (L<n>)
  gsSeq = 0;
  leaseSeq = 0;
  readonly redisLease = new Map<string, string>();
  readonly liveLeases = new Map<string, { chain: Chain }>();
  readonly endedLeases: string[] = [];
  /** Queued tickets: ticket id (as Redis numbers it, given to GroupState too) → the lease id its grant gets in Redis and its chain. */
  readonly tickets = new Map<string, { lease: string; chain: Chain }>();
  readonly endedTickets: string[] = [];
  /** The next ticket's id: Redis numbers tickets from the clock (µs) at the first one, then one by one. */
  ticketSeq = 0;
  gsFence = 0;
  redisFence = 0;
  pipe!: Pipe;
  pending: Expect[] = [];
  /** The step whose replies are being compared. */
  at: Expect | undefined;
  readonly cov: Coverage = {
    grants: 0,
    queuedGrants: 0,
    timeouts: 0,
    expiries: 0,
    rejections: 0,
    cancels: 0,
    renewals: 0,
    fastEligible: {},
    batches: 0,
    batchedSteps: 0,
    flowTickets: 0,
    rejectedEarly: 0,
    codelDropped: 0,
  };
  /** Flows, early rejection and queue sections, apart from the workload's generator. */
  readonly fairRandom: Random;
  queue: QueueSpec;
  /** Decides which steps are batched, apart from the workload's generator. */
  readonly batchRandom: Random;
  batch: OpenBatch | undefined;

  constructor(seed: number) {
    this.seed = seed;
    this.r = new Random(seed);
    this.batchRandom = new Random((seed ^ 0x5bd1e995) >>> 0);
    this.fairRandom = new Random((seed ^ 0x27d4eb2f) >>> 0);
    this.cfg = randomConfig(this.r);
    this.queue = this.randomQueue(DISCIPLINES[SEEDS.indexOf(seed) % DISCIPLINES.length]!);
    this.state = new GroupState(this.spec(this.cfg), { newId: () => `gs${++this.gsSeq}` });
    this.keys = groupKeys(PREFIX, `g${seed}`);
    for (const b of BACKENDS) for (const s of SERVERS) this.up.set(srv(b.name, s), !this.cfg.backends[b.name]!.servers[s]!.down);
  }

  /** A queue section: the discipline given, a target and interval the workload's waits cross, weights for some flows. */
  randomQueue(discipline: Discipline): QueueSpec {
    const r = this.fairRandom;
    const flowWeights: Record<string, number> = {};
    for (const f of FLOWS) if (r.chance(0.5)) flowWeights[f] = r.chance(0.2) ? 1000 : r.int(1, 5);
    return { discipline, targetMs: r.int(1, 60), intervalMs: r.int(1, 300), flowWeights };
  }

  spec(cfg: Config): GroupSpec {
    return { ...toSpec(cfg), queue: this.queue };
  }

  fail(at: Expect | undefined, msg: string, redisStats?: GroupStatsSnapshot): never {
    const states = at === undefined ? "" : `\n  GroupState: ${show(at.stats)}\n  Redis:      ${redisStats === undefined ? "(not read)" : show(redisStats)}`;
    const step = at?.step ?? this.step;
    const last = this.trace.filter((line) => Number(/^#(\d+)/.exec(line)?.[1]) <= step).slice(-15);
    throw new Error(
      `seed=${this.seed} step=${step} now=${at?.now ?? this.now}: ${msg}\n  during: ${at?.desc ?? "?"}\n  ${replayHint(this.seed, "test/differential")}\n  last steps:\n    ${last.join("\n    ")}${states}`,
    );
  }

  script(command: string, argv: readonly (string | number)[]): void {
    if (this.batch) {
      const code = BATCH_CODES[command];
      if (code === undefined) throw new Error(`${command} cannot be batched`);
      this.batch.argv.push(code, argv.length, ...argv);
      return;
    }
    this.pipe[command]!(...this.keys, ...argv);
  }

  /** The next batchable steps, up to size, go out as one batch-script call. */
  beginBatch(size: number): void {
    this.batch = { size, argv: [], parts: [], local: this.batchRandom.chance(0.5) };
  }

  /** Sends the open batch, with the reads and marker after it, as one step whose parts are held one by one. */
  endBatch(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = undefined;
    if (b.parts.length === 0) return;
    this.cov.batches++;
    this.cov.batchedSteps += b.parts.length;
    this.pipe[SCRIPTS.batch.command]!(...this.keys, b.local ? CHANNEL : "", ...b.argv);
    const last = b.parts.at(-1)!;
    const full = b.parts.some((p) => p.full);
    this.reads(full);
    this.pipe.publish!(CHANNEL, `#${last.step}`);
    const effects: Effects = {
      granted: b.parts.flatMap((p) => p.effects.granted),
      timedOut: b.parts.flatMap((p) => p.effects.timedOut),
      ended: b.parts.flatMap((p) => p.effects.ended),
    };
    this.pending.push({
      ...last,
      desc: `batch of ${b.parts.length}${b.local ? " local" : ""}: ${b.parts.map((p) => `#${p.step} ${p.desc}`).join("; ")}`,
      effects,
      clock: b.parts[0]!.clock,
      full,
      parts: b.parts,
      localOutcomes: b.local,
    });
  }

  /** What is read after a step: the stats script's reply, or the raw counters. */
  reads(full: boolean): void {
    if (full) {
      this.script(SCRIPTS.stats.command, []);
    } else {
      this.pipe.hgetall!(this.keys[1]!);
      this.pipe.zcard!(this.keys[3]!);
      this.pipe.zcard!(this.keys[5]!);
      this.pipe.hgetall!(this.keys[11]!);
    }
  }

  /** One step: GroupState now, the scripts (queued in the pipeline), and how to compare them. */
  push(desc: string, run: () => { check: Expect["check"]; localOutcomes?: boolean }, full = this.step % STATS_EVERY === STATS_EVERY - 1): void {
    this.step++;
    this.trace.push(`#${this.step} t=${this.now} ${desc}`);
    if (this.trace.length > 400) this.trace.splice(0, 200);
    const clock = this.clockSent !== this.now;
    if (clock) {
      this.pipe.hset!(this.keys[0]!, "\0clock", this.now);
      this.clockSent = this.now;
    }
    const { check, localOutcomes } = run();
    const effects = this.state.drainEffects();
    const stats = this.state.stats(this.now);
    if (this.state.hasEffects()) this.fail(undefined, `GroupState.stats settled something after ${desc}`);
    const e: Expect = { step: this.step, now: this.now, desc, check, effects, stats, next: this.state.nextDeadline(), localOutcomes, clock, full };
    this.track(e);
    if (this.batch) {
      this.batch.parts.push(e);
      if (this.batch.parts.length >= this.batch.size) this.endBatch();
      return;
    }
    this.reads(full);
    this.pipe.publish!(CHANNEL, `#${this.step}`);
    this.pending.push(e);
  }

  /** The test's own view of leases and tickets, from GroupState's decisions and effects. */
  track(e: Expect): void {
    for (const g of e.effects.granted) {
      const t = this.tickets.get(g.ticketId);
      if (!t) this.fail(e, `GroupState granted ticket ${g.ticketId}, unknown to the test`);
      this.tickets.delete(g.ticketId);
      this.endedTickets.push(g.ticketId);
      this.redisLease.set(g.lease.id, t.lease);
      this.liveLeases.set(g.lease.id, { chain: t.chain });
      this.cov.queuedGrants++;
    }
    for (const id of e.effects.timedOut) {
      this.tickets.delete(id);
      this.endedTickets.push(id);
      this.cov.timeouts++;
    }
    for (const ended of e.effects.ended) {
      this.liveLeases.delete(ended.leaseId);
      this.endedLeases.push(ended.leaseId);
      if (ended.expired) this.cov.expiries++;
    }
  }

  fast(kind: string, eligible: boolean): void {
    const d = this.state.nextDeadline();
    if (eligible && (d === undefined || d > this.now)) this.cov.fastEligible[kind] = (this.cov.fastEligible[kind] ?? 0) + 1;
  }

  // ── operations ──

  opAcquire(): void {
    const { chain, req } = randomRequest(this.r);
    const fr = this.fairRandom;
    if (fr.chance(0.7)) req.flow = fr.pick(FLOWS);
    if (fr.chance(0.3)) req.early = true;
    const leaseId = `L${++this.leaseSeq}`;
    const ticketId = String(this.ticketSeq === 0 ? this.now * 1000 + 1 : this.ticketSeq + 1).padStart(16, "0");
    this.push(`acquire ${show(req)} lease=${leaseId}`, () => {
      this.fast(
        "acquire",
        chain.backend === undefined &&
          chain.scopes.length > 0 &&
          chain.scopes.every((s) => !s.startsWith("tenant:")) &&
          new Set(chain.scopes).size === chain.scopes.length,
      );
      const d: AcquireDecision = this.state.acquire(req, this.now, ticketId);
      this.script(SCRIPTS.acquire.command, [
        leaseId,
        CHANNEL,
        0,
        req.priorityClass,
        req.priorityOffsetMs,
        req.queueTimeoutMs,
        req.leaseTtlMs,
        req.backend ?? "",
        req.server ?? "",
        0,
        0,
        req.leaseTtlMs,
        ...(req.flow !== undefined || req.early ? ["\0", req.flow ?? "", req.early ? 1 : 0] : []),
        ...req.scopes,
      ]);
      if (d.status === "granted") {
        this.redisLease.set(d.lease.id, leaseId);
        this.liveLeases.set(d.lease.id, { chain });
      } else if (d.status === "queued") {
        this.ticketSeq = Number(ticketId);
        this.tickets.set(ticketId, { lease: leaseId, chain });
        if (req.flow !== undefined) this.cov.flowTickets++;
      } else {
        this.cov.rejections++;
        if (d.reason === "queue-timeout") this.cov.rejectedEarly++;
      }
      return {
        check: (reply) => {
          this.checkAcquire(d, req, leaseId, reply);
          this.hint(reply[{ [REPLY.GRANTED]: 7, [REPLY.REJECTED]: 2, [REPLY.REJECTED_EARLY]: 2, [REPLY.QUEUED]: 3 }[reply[0] as number] ?? 1]);
        },
      };
    });
  }

  checkAcquire(d: AcquireDecision, req: ChainRequest, leaseId: string, reply: unknown[]): void {
    const at = this.at;
    const code = reply[0];
    if (d.status === "granted") {
      if (code !== REPLY.GRANTED) this.fail(at, `GroupState granted, Redis replied ${show(reply)}`);
      const [, id, fence, backend, serverName, expiresAt, ttl] = reply;
      if (id !== leaseId || expiresAt !== d.lease.expiresAt || ttl !== req.leaseTtlMs)
        this.fail(at, `grant differs: GroupState ${show(d.lease)}, Redis ${show(reply)}`);
      if ((backend || undefined) !== d.lease.backend || (serverName || undefined) !== d.lease.server)
        this.fail(at, `server differs: GroupState ${d.lease.backend}/${d.lease.server}, Redis ${show(backend)}/${show(serverName)}`);
      this.fences(at, d.lease.fence, Number(fence));
      this.cov.grants++;
    } else if (d.status === "queued") {
      if (code !== REPLY.QUEUED || reply[1] !== d.ticketId) this.fail(at, `GroupState queued ticket ${d.ticketId}, Redis replied ${show(reply)}`);
    } else if (d.reason === "queue-timeout") {
      if (code !== REPLY.REJECTED_EARLY || reply[1] !== d.retryAfterMs)
        this.fail(at, `GroupState rejected early (retry after ${d.retryAfterMs} ms), Redis replied ${show(reply)}`);
    } else if (code !== REPLY.REJECTED || reply[1] !== d.reason) {
      this.fail(at, `GroupState rejected (${d.reason}), Redis replied ${show(reply)}`);
    }
  }

  /** The time to the next deadline a reply carries: Redis keeps it as a hint, which may be early but never late. */
  hint(nextIn: unknown): void {
    const e = this.at!;
    const exact = e.next === undefined ? undefined : e.next - e.now;
    const ok = typeof nextIn === "number" && (nextIn === -1 ? exact === undefined : nextIn >= 0 && (exact === undefined || nextIn <= exact));
    if (!ok) this.fail(e, `next deadline in ${show(nextIn)} ms, GroupState's is in ${exact} ms`);
  }

  /** Fences increase on both sides, grant for grant. */
  fences(at: Expect | undefined, gs: number, rd: number): void {
    if (!(gs > this.gsFence)) this.fail(at, `GroupState fence ${gs} after ${this.gsFence}`);
    if (!(rd > this.redisFence)) this.fail(at, `Redis fence ${rd} after ${this.redisFence}`);
    this.gsFence = gs;
    this.redisFence = rd;
  }

  opRelease(): void {
    const id = pickLeaseId(this.r, this.liveLeases.keys(), this.endedLeases);
    const rid = this.redisLease.get(id) ?? id;
    const local = this.r.chance(0.5);
    this.push(`release ${show(id)} (${rid})${local ? " local" : ""}`, () => {
      const chain = this.liveLeases.get(id)?.chain;
      this.fast("release", chain !== undefined && chain.backend === undefined && chain.scopes.every((s) => !s.startsWith("tenant:")));
      const ok = this.state.release(id, this.now);
      this.script(SCRIPTS.release.command, [rid, local ? CHANNEL : ""]);
      return {
        localOutcomes: local,
        check: (reply) => {
          if (reply[0] !== (ok ? REPLY.RELEASED : REPLY.NOT_FOUND)) this.fail(this.at, `GroupState release → ${ok}, Redis replied ${show(reply)}`);
          this.hint(reply[1]);
        },
      };
    });
  }

  opRenew(): void {
    const id = pickLeaseId(this.r, this.liveLeases.keys(), this.endedLeases);
    const rid = this.redisLease.get(id) ?? id;
    const ttl = randomTtl(this.r);
    this.push(`renew ${show(id)} (${rid}) ttl=${ttl}`, () => {
      this.fast("renew", this.liveLeases.has(id));
      const expiresAt = this.state.renew(id, ttl, this.now);
      if (expiresAt !== undefined) this.cov.renewals++;
      this.script(SCRIPTS.renew.command, [rid, ttl, 0, 0, 0, "", ""]);
      return {
        check: (reply) => {
          const ok = expiresAt === undefined ? reply[0] === REPLY.NOT_FOUND : reply[0] === REPLY.RENEWED && reply[1] === expiresAt;
          if (!ok) this.fail(this.at, `GroupState renew → ${expiresAt}, Redis replied ${show(reply)}`);
          this.hint(reply[reply[0] === REPLY.RENEWED ? 2 : 1]);
        },
      };
    });
  }

  opCancel(): void {
    const id = pickTicketId(this.r, this.tickets.keys(), this.endedTickets);
    const how = this.r.chance(0.8) ? "aborted" : "queue_timeouts";
    const lease = this.tickets.get(id)?.lease ?? "";
    this.push(`cancel ${show(id)} ${how}`, () => {
      const ok = this.state.cancel(id, this.now, how);
      if (ok) {
        this.tickets.delete(id);
        this.endedTickets.push(id);
        this.cov.cancels++;
      }
      this.script(SCRIPTS.cancel.command, [id, how, lease]);
      return {
        check: (reply) => {
          // A ticket GroupState no longer has may still have an outcome for its waiter in Redis.
          if (ok ? reply[0] !== REPLY.CANCELLED : reply[0] !== REPLY.NOT_FOUND && reply[0] !== REPLY.OUTCOME)
            this.fail(this.at, `GroupState cancel → ${ok}, Redis replied ${show(reply)}`);
        },
      };
    });
  }

  opServer(): void {
    const b = this.r.pick(BACKENDS).name;
    const s = this.r.pick(SERVERS);
    const up = this.up.get(srv(b, s)) ? this.r.chance(0.3) : this.r.chance(0.8);
    this.push(`server ${b}/${s} ${up ? "up" : "down"}`, () => {
      this.state.setServerState(b, s, up, this.now);
      this.up.set(srv(b, s), up);
      this.script(SCRIPTS.serverState.command, [b, s, up ? 1 : 0]);
      return { check: (reply) => void (reply[0] !== REPLY.DONE && this.fail(this.at, `server-state replied ${show(reply)}`)) };
    });
  }

  opConfigure(): void {
    const next = mutateConfig(this.r, this.cfg);
    const fr = this.fairRandom;
    const queue = fr.chance(0.3) ? this.randomQueue(fr.chance(0.7) ? this.queue.discipline : fr.pick(DISCIPLINES)) : this.queue;
    this.push(`configure${queue === this.queue ? "" : ` queue ${show(queue)}`}`, () => {
      this.queue = queue;
      this.configure(next);
      return { check: (reply) => void (reply[0] !== REPLY.INSTALLED && this.fail(this.at, `configure replied ${show(reply)}`)) };
    });
  }

  configure(next: Config): void {
    const spec: GroupSpec = this.spec(next);
    this.state.configure(spec, this.now);
    for (const b of BACKENDS) {
      for (const s of SERVERS) {
        const after = next.backends[b.name]!.servers[s]!.down;
        if (this.cfg.backends[b.name]!.servers[s]!.down !== after) this.up.set(srv(b.name, s), !after);
      }
    }
    this.cfg = next;
    this.script(SCRIPTS.configure.command, [canonicalSpecJson(spec), ""]);
  }

  opTick(kind: "tick" | "stats", full?: boolean): void {
    this.push(
      kind,
      () => {
        this.fast("sweep", kind === "tick");
        if (kind === "tick") {
          this.state.tick(this.now);
          this.script(SCRIPTS.sweep.command, []);
          return { check: (reply) => this.hint(reply[0]) };
        }
        this.state.stats(this.now);
        this.script(SCRIPTS.stats.command, []);
        return { check: () => undefined };
      },
      full ?? (kind === "stats" || undefined),
    );
  }

  /** Time passes: a store timer's sweeps at every deadline on the way, or one jump (the next step settles lazily). */
  opAdvance(): void {
    const target = this.now + randomAdvanceMs(this.r);
    if (this.r.chance(0.6)) {
      for (let guard = 0; guard < 100_000; guard++) {
        const next = this.state.nextDeadline();
        if (next === undefined || next > target) break;
        this.now = Math.max(this.now, next);
        this.opTick("tick");
      }
    }
    this.now = target;
  }

  async begin(): Promise<void> {
    heard.length = 0;
    this.pipe = pipeline();
    this.pipe.hset!(this.keys[0]!, "\0clock", this.now);
    this.clockSent = this.now;
    this.script(SCRIPTS.configure.command, [canonicalSpecJson(this.spec(this.cfg)), ""]);
    const replies = await this.pipe.exec();
    const reply = replies?.[1]?.[1] as unknown[] | undefined;
    if (reply?.[0] !== REPLY.INSTALLED) this.fail(undefined, `first configure replied ${show(replies)}`);
    this.pipe = pipeline();
  }

  /** Sends the pipeline and holds every step's replies and wake-ups against GroupState's. */
  async flushBatch(): Promise<void> {
    if (this.pending.length === 0) return;
    const last = `#${this.step}`;
    const replies = (await this.pipe.exec()) ?? [];
    this.pipe = pipeline();
    for (let i = 0; i < 500 && !heard.includes(last); i++) await new Promise((resolve) => setTimeout(resolve, 2));
    if (!heard.includes(last)) this.fail(this.pending.at(-1), "the step markers did not arrive");
    // Each step: [HSET clock], its script, stats, PUBLISH marker.
    let r = 0;
    const batch = this.pending;
    this.pending = [];
    for (const e of batch) {
      this.at = e;
      if (e.clock) r++;
      const [err, reply] = replies[r++]!;
      const read = replies.slice(r, (r += e.full ? 1 : 4));
      r++; // PUBLISH
      const readErr = read.find(([error]) => error)?.[0];
      if (err || readErr) this.fail(e, `error: ${String(err ?? readErr)}`);
      const marker = heard.indexOf(`#${e.step}`);
      const outcomes = heard
        .splice(0, marker + 1)
        .slice(0, -1)
        .map((m) => JSON.parse(m) as Outcome);
      const list = reply as unknown[];
      if (e.parts) {
        // One reply per step, then the wake-ups for the test's channel (all of them, in order, when the batch named it).
        if (list[0] !== REPLY.DONE || list.length < 1 + e.parts.length) this.fail(e, `the batch replied ${show(list)}`);
        if (e.localOutcomes) outcomes.unshift(...list.slice(1 + e.parts.length).map((m) => JSON.parse(String(m)) as Outcome));
        // Step by step: the wake-ups each step caused (they come in step order), then its own reply.
        let k = 0;
        e.parts.forEach((part, i) => {
          this.at = part;
          const n = part.effects.granted.length + part.effects.timedOut.length;
          const own = outcomes.slice(k, (k += n));
          this.compareEffects(part, own);
          part.check(list[1 + i] as unknown[], own);
        });
        this.at = e;
        if (k !== outcomes.length) this.fail(e, `wake-ups no step of the batch caused: ${show(outcomes.slice(k))}`);
      } else {
        if (e.localOutcomes) outcomes.unshift(...list.slice(2).map((m) => JSON.parse(String(m)) as Outcome));
        // Grants of queued tickets come first: deadlines are settled before the step's own work.
        this.compareEffects(e, outcomes);
        e.check(list, outcomes);
      }
      const redisStats = e.full
        ? parseStats(read[0]![1] as unknown[], undefined)
        : rawStats(
            e.now,
            read.map(([, v]) => v),
          );
      if (WATCH !== undefined)
        console.log(
          `#${e.step} ${e.desc}\n  GroupState ${show(e.stats.scopes[WATCH])}\n  Redis      ${show(redisStats.scopes[WATCH])}\n  outcomes ${show(outcomes)}`,
        );
      this.compareStats(e, redisStats);
    }
    this.at = undefined;
  }

  compareEffects(e: Expect, outcomes: Outcome[]): void {
    const grants = outcomes.filter((o) => o.o === "g");
    const timeouts = outcomes.filter((o) => o.o === "t").map((o) => o.k);
    if (show(timeouts) !== show(e.effects.timedOut)) this.fail(e, `timed out: GroupState ${show(e.effects.timedOut)}, Redis ${show(timeouts)}`);
    if (grants.length !== e.effects.granted.length)
      this.fail(e, `dispatch: GroupState granted ${show(e.effects.granted.map((g) => g.ticketId))}, Redis ${show(grants.map((g) => g.k))}`);
    e.effects.granted.forEach((g, i) => {
      const o = grants[i]!;
      const want = {
        k: g.ticketId,
        l: this.redisLease.get(g.lease.id),
        x: g.lease.expiresAt,
        t: g.lease.ttlMs,
        w: g.lease.waitedMs,
        b: g.lease.backend,
        s: g.lease.server,
      };
      const got = { k: o.k, l: o.l, x: o.x, t: o.t, w: o.w, b: o.b, s: o.s };
      if (show(want) !== show(got)) this.fail(e, `dispatch grant #${i + 1}: GroupState ${show(want)}, Redis ${show(got)}`);
      this.fences(e, g.lease.fence, Number(o.f));
    });
  }

  compareStats(e: Expect, got: GroupStatsSnapshot): void {
    const want = e.stats;
    const fail = (msg: string) => this.fail(e, msg, got);
    if (got.now !== want.now || got.holders !== want.holders || got.tickets !== want.tickets)
      fail(`now/holders/tickets: GroupState ${want.now}/${want.holders}/${want.tickets}, Redis ${got.now}/${got.holders}/${got.tickets}`);
    if (want.fence !== this.gsFence || got.fence !== this.redisFence)
      fail(`stats fence: GroupState ${want.fence} (last granted ${this.gsFence}), Redis ${got.fence} (last granted ${this.redisFence})`);
    const { bounds: _b, ...wantWait } = want.queueWait;
    const { bounds: _g, ...gotWait } = got.queueWait;
    if (show(wantWait) !== show(gotWait)) fail(`queue wait: GroupState ${show(wantWait)}, Redis ${show(gotWait)}`);
    if (show(sortedFlows(want.flows)) !== show(sortedFlows(got.flows))) fail(`flows: GroupState ${show(want.flows)}, Redis ${show(got.flows)}`);
    if (e.full && show(want.queue) !== show(got.queue)) fail(`queue: GroupState ${show(want.queue)}, Redis ${show(got.queue)}`);
    const names = new Set([...Object.keys(want.scopes), ...Object.keys(got.scopes)]);
    for (const name of names) {
      let a = want.scopes[name] as Record<string, unknown> | undefined;
      const b = got.scopes[name] as Record<string, unknown> | undefined;
      // Raw counters: no limits, no up flag; a scope whose counters are all 0 may have no fields.
      if (!e.full && a !== undefined) {
        const { max: _max, maxqueue: _maxqueue, up: _up, ...counters } = a;
        a = counters;
        // A keyed limit's count of keys that went up and back down within one call is never
        // written (its change is 0): absent means 0 (the stats script reports it so).
        if (a.keys === 0 && b !== undefined && !("keys" in b)) delete a.keys;
        if (b === undefined && Object.values(a).every((v) => v === 0)) continue;
      }
      if (a !== undefined && b !== undefined && sameRow(a, b)) continue;
      const row = (r: object | undefined) => (r === undefined ? "(no row)" : show(r));
      fail(`scope ${show(name)}: GroupState ${row(a)}, Redis ${row(b)}`);
    }
  }

  async run(ops: number): Promise<void> {
    await this.begin();
    for (let op = 0; op < ops; op++) {
      const kind = randomOpKind(this.r);
      if (!(kind in BATCH_OPS)) this.endBatch();
      else if (!this.batch && this.batchRandom.chance(BATCHED_SHARE / 2)) this.beginBatch(this.batchRandom.int(2, MAX_BATCH));
      switch (kind) {
        case "acquire":
          this.opAcquire();
          break;
        case "release":
          this.opRelease();
          break;
        case "renew":
          this.opRenew();
          break;
        case "cancel":
          this.opCancel();
          break;
        case "server":
          this.opServer();
          break;
        case "configure":
          this.opConfigure();
          break;
        case "tick":
          this.opTick("tick");
          break;
        case "stats":
          this.opTick("stats");
          break;
        case "advance":
          this.opAdvance();
          break;
      }
      if (this.pending.length >= BATCH) {
        this.endBatch();
        await this.flushBatch();
      }
    }
    this.endBatch();
    // Let every deadline pass: everything ends, on both sides alike.
    this.now += 10_000_000;
    this.opTick("tick", true);
    await this.flushBatch();
    for (const row of Object.values(this.state.stats(this.now).scopes)) this.cov.codelDropped += row.codel_dropped ?? 0;
  }
}

describe("Redis scripts against GroupState, step by step", () => {
  it.each(SEEDS)(
    `seed %i: ${OPS} operations`,
    async (seed) => {
      const diff = new Diff(seed);
      await diff.run(OPS);
      const c = diff.cov;
      const summary = `seed=${seed} (${replayHint(seed, "test/differential")}): coverage too low ${show(c)}`;
      const scale = OPS / 10_000;
      console.log(`seed=${seed} ${diff.queue.discipline} (as configured last): ${show(c)}`);
      expect(c.grants, summary).toBeGreaterThan(500 * scale);
      expect(c.queuedGrants, summary).toBeGreaterThan(100 * scale);
      expect(c.timeouts, summary).toBeGreaterThan(50 * scale);
      expect(c.expiries, summary).toBeGreaterThan(50 * scale);
      expect(c.cancels, summary).toBeGreaterThan(20 * scale);
      for (const kind of ["acquire", "release", "renew", "sweep"]) expect(c.fastEligible[kind] ?? 0, summary).toBeGreaterThan(50 * scale);
      expect(c.batchedSteps, summary).toBeGreaterThan(500 * scale);
      expect(c.flowTickets, summary).toBeGreaterThan(300 * scale);
      expect(c.rejectedEarly, summary).toBeGreaterThan(5 * scale);
      expect(c.codelDropped, summary).toBeGreaterThan(5 * scale);
    },
    300_000,
  );
});

describe("regressions found by the differential test", () => {
  // Seed 77, step 61: a keyed scope took a hand-off (rule E: a grant from the queue), was collected
  // and came back in the same call; the write-back still listed its hand-off fields, without values.
  it("a keyed scope granted from the queue, collected and back within one call starts its hand-off rate afresh", async () => {
    const spec: GroupSpec = { limits: { tenant: { max: 1, maxqueue: null, keyed: true } }, backends: {} };
    const keys = groupKeys(PREFIX, "handoff-collect");
    const call = (command: string, argv: (string | number)[]) =>
      (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[command]!(...keys, ...argv);
    await redis.hset(keys[0]!, "\0clock", 0);
    await call(SCRIPTS.configure.command, [canonicalSpecJson(spec), ""]);
    const acquire = (lease: string, timeout: number) => [lease, "", 0, 0, 0, timeout, 1000, "", "", 0, 0, 1000, "tenant:k"];
    expect((await call(SCRIPTS.acquire.command, acquire("L1", 0)))[0]).toBe(REPLY.GRANTED);
    expect((await call(SCRIPTS.acquire.command, acquire("L2", 1000)))[0]).toBe(REPLY.QUEUED);
    // One batch: the release of L1 grants the ticket (L2), whose release leaves tenant:k idle, and
    // a new acquire takes it again.
    const l3 = acquire("L3", 0);
    const reply = await call(SCRIPTS.batch.command, ["", "r", 2, "L1", "", "r", 2, "L2", "", "a", l3.length, ...l3]);
    expect(reply.slice(1, 4).map((r) => (r as unknown[])[0])).toEqual([REPLY.RELEASED, REPLY.RELEASED, REPLY.GRANTED]);
    const fields = await redis.hgetall(keys[1]!);
    expect(fields["tenant:k\0in_use"]).toBe("1");
    expect(Object.keys(fields).filter((f) => f === "tenant:k\0ho" || f === "tenant:k\0hm")).toEqual([]);
  });

  // Seed 2, step 3640: two leases expired at the same instant were settled one by one, in an order
  // that each side chose differently (GroupState: its heap, Redis: lease ids). The order decided
  // which ticket got a slot: T2 could overtake T1, ordered before it, although at that instant
  // both scopes T1 needs were free. Now leases that expire at the same instant expire together.
  it("leases that expire at the same instant expire together, then the queue is dispatched once", async () => {
    const spec: GroupSpec = { limits: { x: { max: 1, maxqueue: null, keyed: false }, y: { max: 1, maxqueue: null, keyed: false } }, backends: {} };
    const req = (scopes: string[], queueTimeoutMs = 0): ChainRequest => ({ scopes, priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs, leaseTtlMs: 100 });
    for (const [first, second] of [
      ["x", "y"],
      ["y", "x"],
      ["b", "a"],
    ]) {
      const state = new GroupState(spec);
      const keys = groupKeys(PREFIX, `tie-${first}`);
      const call = (command: string, argv: (string | number)[]) =>
        (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[command]!(...keys, ...argv);
      const at = (now: number) => redis.hset(keys[0]!, "\0clock", now);
      await at(0);
      await call(SCRIPTS.configure.command, [canonicalSpecJson(spec), ""]);
      // Granted in this order, with lease ids that sort the other way in Redis.
      const order = first === "b" ? ["x", "y"] : [first!, second!];
      for (const [i, scope] of order.entries()) {
        expect(state.acquire(req([scope]), 0).status).toBe("granted");
        expect((await call(SCRIPTS.acquire.command, [first === "b" ? `L${9 - i}` : `L${i}`, CHANNEL, 0, 0, 0, 0, 100, "", "", 0, 0, 100, scope]))[0]).toBe(
          REPLY.GRANTED,
        );
      }
      await at(1);
      expect(state.acquire(req(["x", "y"], 1000), 1, "T1").status).toBe("queued");
      const t1 = await call(SCRIPTS.acquire.command, ["L10", "", 0, 0, 0, 1000, 100, "", "", 0, 0, 100, "x", "y"]);
      await at(2);
      expect(state.acquire(req(["x"], 1000), 2, "T2").status).toBe("queued");
      await call(SCRIPTS.acquire.command, ["L11", "", 0, 0, 0, 1000, 100, "", "", 0, 0, 100, "x"]);
      await at(100);
      state.tick(100);
      expect(state.drainEffects().granted.map((g) => g.ticketId)).toEqual(["T1"]);
      await call(SCRIPTS.sweep.command, []);
      expect(await redis.hget(keys[4]!, "L10"), "T1 holds its lease in Redis").not.toBeNull();
      expect(await redis.zrange(keys[5]!, 0, -1), "T2 still waits in Redis").not.toContain(t1[1]);
      expect(await redis.zcard(keys[5]!)).toBe(1);
    }
  });

  // Not reachable by a workload: virtual time near rule F's bound takes ~10^9 grants without the
  // queue emptying. So V is set directly on both sides, and every tag the scripts give (the fast
  // acquire, the general one, a ticket without a flow joining the default flow) must be the one
  // FairQueue gives, and none above 2^50.
  it("tags near the bound of 2^50: the scripts give the tags FairQueue gives, the finish tags too", async () => {
    const spec = buildGroupSpec({ g: 1 }, {}, { flowWeights: { d: 1000 } });
    const keys = groupKeys(PREFIX, "tag-bound");
    const call = (command: string, argv: (string | number)[]) =>
      (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[command]!(...keys, ...argv);
    await redis.hset(keys[0]!, "\0clock", 0);
    await call(SCRIPTS.configure.command, [canonicalSpecJson(spec), ""]);
    expect((await call(SCRIPTS.acquire.command, ["L0", CHANNEL, 0, 0, 0, 0, 60_000, "", "", 0, 0, 60_000, "g"]))[0]).toBe(REPLY.GRANTED);
    const q = new FairQueue();
    q.virtualTime = MAX_TAG - 1_500_000;
    await redis.hset(keys[1]!, "\0vt", q.virtualTime);
    // [flow, early]: early goes to the general path (nothing is queued yet, so it queues).
    const steps: [string | undefined, boolean][] = [
      ["a", false],
      ["a", false],
      ["a", true],
      [undefined, false],
      [undefined, true],
      ["d", false],
      ["d", true],
      ["d", false],
    ];
    const want: number[] = [];
    for (const [i, [flow, early]] of steps.entries()) {
      const f = q.flowOf(flow);
      want.push(q.enter(f, flow === "d" ? 1000 : 1));
      const extra = flow === undefined && !early ? [] : ["\0", flow ?? "", early ? 1 : 0];
      const reply = await call(SCRIPTS.acquire.command, [`L${i + 1}`, CHANNEL, 0, 0, 0, 60_000, 60_000, "", "", 0, 0, 60_000, ...extra, "g"]);
      expect(reply[0], `step ${i}`).toBe(REPLY.QUEUED);
    }
    // Members of waits: wait key, then class (2 bytes), tag (8 bytes, base 127, digits + 1), arrival (6), id (16), in arrival order by id.
    const members = (await redis.zrange(keys[10]!, 0, -1)).sort((a, b) => (a.slice(-16) < b.slice(-16) ? -1 : 1));
    const tags = members.map((m) => {
      const t = m.slice(-32);
      let x = 0;
      for (let i = 2; i < 10; i++) x = x * 127 + t.charCodeAt(i) - 1;
      return x;
    });
    expect(tags).toEqual(want);
    for (const t of tags) expect(t).toBeLessThanOrEqual(MAX_TAG);
    const flows = await redis.hgetall(keys[11]!);
    expect(Object.fromEntries(Object.entries(flows).map(([name, v]) => [name, Number(v.split(" ")[0])]))).toEqual(
      Object.fromEntries([...q.flows].map(([name, e]) => [name, e.finish])),
    );
    expect(Object.keys(flows).sort()).toEqual(["", "a", "d"]);
  });

  // The seeded workloads rarely have a standing lifo queue with tickets of different tags on one
  // wait key: here flows A (three tickets), B (two) and C (one) wait on g while the queue stands.
  it("adaptive lifo keeps the fair order across flows in the scripts as in the core: newest-first only among equal tags", async () => {
    const spec = buildGroupSpec({ g: 1 }, {}, { discipline: "lifo", targetMs: 5, intervalMs: 100 });
    const state = new GroupState(spec);
    const keys = groupKeys(PREFIX, "lifo-fair");
    const call = (command: string, argv: (string | number)[]) =>
      (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[command]!(...keys, ...argv);
    const at = async (now: number) => {
      await redis.hset(keys[0]!, "\0clock", now);
      state.tick(now);
    };
    await at(0);
    await call(SCRIPTS.configure.command, [canonicalSpecJson(spec), ""]);
    const held = state.acquire({ scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 0, leaseTtlMs: 60_000 }, 0);
    expect(held.status).toBe("granted");
    expect((await call(SCRIPTS.acquire.command, ["L0", CHANNEL, 0, 0, 0, 0, 60_000, "", "", 0, 0, 60_000, "g"]))[0]).toBe(REPLY.GRANTED);
    const leaseOf = new Map<string, string>([["held", "L0"]]);
    const coreLease = new Map<string, string>([["held", held.status === "granted" ? held.lease.id : ""]]);
    for (const [name, flow, t] of [
      ["A1", "A", 0],
      ["A2", "A", 0],
      ["A3", "A", 0],
      ["B1", "B", 1],
      ["B2", "B", 2],
      ["C1", "C", 3],
    ] as const) {
      await at(t);
      expect(state.acquire({ scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 60_000, leaseTtlMs: 60_000, flow }, t, name).status).toBe(
        "queued",
      );
      expect((await call(SCRIPTS.acquire.command, [`L-${name}`, CHANNEL, 0, 0, 0, 60_000, 60_000, "", "", 0, 0, 60_000, "\0", flow, 0, "g"]))[0]).toBe(
        REPLY.QUEUED,
      );
      leaseOf.set(name, `L-${name}`);
    }
    const coreOrder: string[] = [];
    const redisOrder: string[] = [];
    let current = "held";
    for (const t of [10, 120, 121, 122, 123, 124]) {
      await at(t);
      state.drainEffects();
      expect(state.release(coreLease.get(current)!, t)).toBe(true);
      const g = state.drainEffects().granted;
      expect(g).toHaveLength(1);
      coreOrder.push(g[0]!.ticketId);
      coreLease.set(g[0]!.ticketId, g[0]!.lease.id);
      expect((await call(SCRIPTS.release.command, [leaseOf.get(current)!, ""]))[0]).toBe(REPLY.RELEASED);
      const waiting = [...leaseOf.keys()].filter((n) => n !== "held" && !redisOrder.includes(n));
      const got: string[] = [];
      for (const n of waiting) if ((await redis.hexists(keys[4]!, leaseOf.get(n)!)) === 1) got.push(n);
      expect(got).toHaveLength(1);
      redisOrder.push(got[0]!);
      current = g[0]!.ticketId;
    }
    expect(coreOrder).toEqual(["A1", "C1", "B1", "B2", "A2", "A3"]);
    expect(redisOrder).toEqual(coreOrder);
  });
});
