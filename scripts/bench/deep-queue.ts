/**
 * Deep-queue benchmark: what a long queue on one key costs everyone else (issue: no queue scans).
 *
 *   npx tsx scripts/bench/deep-queue.ts              # 20,000 tickets, memory and Redis
 *   npx tsx scripts/bench/deep-queue.ts --quick      # 2,000 tickets, short loops
 *   npx tsx scripts/bench/deep-queue.ts --tickets 50000 --only redis
 *
 * Setup, for each store: keyed limit `tenant` with perKey 1. One holder takes `tenant:hot`, then
 * `--tickets` tickets queue behind it (long queue timeout, nobody waiting on them: in memory through
 * GroupState, in Redis through the acquire script itself, as a fleet of callers would leave them).
 * Measured:
 *  (1) acquire + release on OTHER keys (`tenant:k0` … `tenant:k7`, each free), in a loop, with an
 *      empty queue and with the deep queue: latency p50/p99 per pair (Redis: through a guard on
 *      createRedisStore, and the Redis SLOWLOG entries over 5 ms during the loop);
 *  (2) hand-off on the hot key: the holder releases, the first ticket in queue order is granted
 *      (checked: the grant goes to the ticket that queued first), that lease is released in turn,
 *      and so on: latency of each release that grants (Redis: the release script's round trip).
 * This is a benchmark, not a test: it prints a table and asserts only that grants come in order.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { buildGroupSpec } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import type { ChainRequest } from "../../src/core/store.js";
import { createGuard } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { REPLY, SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis } from "../../test/harness/redis.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    tickets: { type: "string" },
    only: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  console.log("usage: npx tsx scripts/bench/deep-queue.ts [--quick] [--tickets <n>] [--only memory|redis]");
  process.exit(0);
}
const quick = args.quick === true;
const TICKETS = args.tickets === undefined ? (quick ? 2_000 : 20_000) : Number(args.tickets);
if (!Number.isInteger(TICKETS) || TICKETS < 1 || TICKETS > 1_000_000) {
  console.error(`--tickets: expected an integer from 1 to 1000000, got ${JSON.stringify(args.tickets)}`);
  process.exit(2);
}
const ONLY = args.only;
if (ONLY !== undefined && ONLY !== "memory" && ONLY !== "redis") {
  console.error(`--only: expected memory or redis, got ${JSON.stringify(ONLY)}`);
  process.exit(2);
}

const OTHER_KEYS = 8;
const QUEUE_TIMEOUT_MS = 600_000;
const LEASE_TTL_MS = 600_000;
/** Pairs on other keys per measurement (memory, Redis), and hand-offs on the hot key. */
const MEMORY_PAIRS = quick ? 2_000 : 20_000;
const REDIS_PAIRS = quick ? 300 : 2_000;
const HANDOFFS = quick ? 100 : 500;
/** Redis loops stop after this long even if not all pairs ran (a slow store). */
const REDIS_LOOP_MAX_MS = quick ? 10_000 : 60_000;
const SLOWLOG_US = 5_000;

const limits = { tenant: { perKey: 1 } };
const spec = buildGroupSpec(limits, {});

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface Latency {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function latency(samples: number[]): Latency {
  const s = Float64Array.from(samples).sort();
  return { n: s.length, p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s.length ? s[s.length - 1]! : NaN };
}

const rows: string[][] = [];
function row(store: string, what: string, queued: number, l: Latency, unit: "µs" | "ms", extra = ""): void {
  const f = (x: number) => (unit === "µs" ? (x * 1000).toFixed(1) : x.toFixed(3));
  rows.push([store, what, queued.toLocaleString("en-US"), String(l.n), `${f(l.p50)} ${unit}`, `${f(l.p99)} ${unit}`, `${f(l.max)} ${unit}`, extra]);
  console.log(rows[rows.length - 1]!.join("  "));
}

// ── memory: GroupState itself ────────────────────────────────────────────────────────────────

function request(scope: string, queueTimeoutMs: number): ChainRequest {
  return { scopes: [scope], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs, leaseTtlMs: LEASE_TTL_MS };
}

function memoryPairs(state: GroupState, now: number): Latency {
  const samples: number[] = [];
  for (let i = 0; i < MEMORY_PAIRS; i++) {
    const t0 = performance.now();
    const d = state.acquire(request(`tenant:k${i % OTHER_KEYS}`, 0), now);
    if (d.status !== "granted") throw new Error(`memory: acquire on another key was ${d.status}`);
    state.release(d.lease.id, now);
    samples.push(performance.now() - t0);
  }
  state.drainEffects();
  return latency(samples);
}

function memory(): void {
  let n = 0;
  const state = new GroupState(spec, { newId: () => `m${n++}`, recordEnded: false });
  const now = 1_000_000;
  memoryPairs(state, now); // warm-up
  row("memory", "acquire+release, other key", 0, memoryPairs(state, now), "µs");
  const hot = state.acquire(request("tenant:hot", 0), now);
  if (hot.status !== "granted") throw new Error("memory: the hot holder was not granted");
  const tickets: string[] = [];
  for (let i = 0; i < TICKETS; i++) {
    const d = state.acquire(request("tenant:hot", QUEUE_TIMEOUT_MS), now, `t${i}`);
    if (d.status !== "queued") throw new Error(`memory: ticket ${i} was ${d.status}`);
    tickets.push(d.ticketId);
  }
  row("memory", "acquire+release, other key", TICKETS, memoryPairs(state, now), "µs");
  const samples: number[] = [];
  let holder = hot.lease.id;
  for (let i = 0; i < Math.min(HANDOFFS * 10, TICKETS); i++) {
    const t0 = performance.now();
    state.release(holder, now);
    samples.push(performance.now() - t0);
    const granted = state.drainEffects().granted;
    if (granted.length !== 1 || granted[0]!.ticketId !== tickets[i])
      throw new Error(`memory: hand-off ${i} granted ${JSON.stringify(granted.map((g) => g.ticketId))}, expected ${tickets[i]}`);
    holder = granted[0]!.lease.id;
  }
  row("memory", "hand-off on the deep key", TICKETS - samples.length, latency(samples), "µs", "in queue order");
}

// ── Redis: a guard on createRedisStore, and the scripts directly ─────────────────────────────

type Call = (...args: (string | number)[]) => Promise<unknown[]>;

async function redisBench(): Promise<void> {
  const server = await startRedis();
  const client = new Redis(server.url);
  const admin = new Redis(server.url);
  const guard = createGuard({ store: createRedisStore({ redis: client }), group: "deep", limits });
  try {
    await admin.config("SET", "slowlog-log-slower-than", String(SLOWLOG_US));
    await admin.config("SET", "slowlog-max-len", "100000");
    for (const def of Object.values(SCRIPTS)) admin.defineCommand(def.command, { lua: def.lua, numberOfKeys: def.numberOfKeys });
    const keys = groupKeys("slotgate:", "deep");
    const script = (name: keyof typeof SCRIPTS): Call => {
      const fn = (admin as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[SCRIPTS[name].command]!;
      return (...argv) => fn.call(admin, ...keys, ...argv);
    };
    const acquireScript = script("acquire");
    const releaseScript = script("release");

    /** Redis's own time per script call since the last CONFIG RESETSTAT (INFO commandstats, EVALSHA). */
    const scriptUs = async (): Promise<number> =>
      Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(await admin.info("commandstats"))?.[1] ?? NaN);
    const pairs = async (): Promise<{ l: Latency; slow: number; slowMaxMs: number; us: number }> => {
      await admin.slowlog("RESET");
      await admin.config("RESETSTAT");
      const samples: number[] = [];
      const until = performance.now() + REDIS_LOOP_MAX_MS;
      for (let i = 0; i < REDIS_PAIRS && performance.now() < until; i++) {
        const t0 = performance.now();
        const r = await guard.acquire({ scopes: [`tenant:k${i % OTHER_KEYS}`], leaseTtlMs: LEASE_TTL_MS });
        if (!r.ok) throw new Error(`redis: acquire on another key was rejected: ${r.reason}`);
        await r.lease.release();
        samples.push(performance.now() - t0);
      }
      const slow = (await admin.slowlog("GET", 100000)) as [number, number, number, string[]][];
      return { l: latency(samples), slow: slow.length, slowMaxMs: slow.reduce((m, e) => Math.max(m, e[2] / 1000), 0), us: await scriptUs() };
    };

    await pairs(); // warm-up, and the guard pushes its spec
    const empty = await pairs();
    row("redis", "acquire+release, other key", 0, empty.l, "ms", `slowlog>5ms: ${empty.slow}; Redis ${empty.us.toFixed(1)} µs/script call`);

    const hot = await guard.acquire({ scopes: ["tenant:hot"], leaseTtlMs: LEASE_TTL_MS });
    if (!hot.ok) throw new Error("redis: the hot holder was not granted");
    const t0 = performance.now();
    const lease = (i: number) => `deep-${String(i).padStart(7, "0")}`;
    for (let i = 0; i < TICKETS; i += 500) {
      const batch: Promise<unknown[]>[] = [];
      for (let j = i; j < Math.min(TICKETS, i + 500); j++) {
        batch.push(acquireScript(lease(j), "deep-nobody", 0, 0, 0, QUEUE_TIMEOUT_MS, LEASE_TTL_MS, "", "", 0, 0, LEASE_TTL_MS, "tenant:hot"));
      }
      for (const reply of await Promise.all(batch)) if (reply[0] !== REPLY.QUEUED) throw new Error(`redis: a ticket was not queued: ${JSON.stringify(reply)}`);
    }
    console.log(`(queued ${TICKETS} tickets in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);

    const deep = await pairs();
    row(
      "redis",
      "acquire+release, other key",
      TICKETS,
      deep.l,
      "ms",
      `slowlog>5ms: ${deep.slow}, slowest ${deep.slowMaxMs.toFixed(1)} ms; Redis ${deep.us.toFixed(1)} µs/script call`,
    );

    // Hand-off on the hot key: each release grants the next ticket in queue order.
    await admin.slowlog("RESET");
    await hot.lease.release();
    await admin.config("RESETSTAT");
    const samples: number[] = [];
    for (let i = 0; i < Math.min(HANDOFFS, TICKETS - 1); i++) {
      if ((await admin.hexists(keys[4]!, lease(i))) !== 1) throw new Error(`redis: hand-off ${i}: ticket ${i} does not hold the slot`);
      const s = performance.now();
      const reply = await releaseScript(lease(i), "");
      samples.push(performance.now() - s);
      if (reply[0] !== REPLY.RELEASED) throw new Error(`redis: release ${i}: ${JSON.stringify(reply)}`);
    }
    if ((await admin.hexists(keys[4]!, lease(samples.length))) !== 1) throw new Error("redis: the last hand-off went to the wrong ticket");
    const slow = (await admin.slowlog("GET", 100000)) as unknown[];
    row(
      "redis",
      "hand-off on the deep key (script)",
      TICKETS - samples.length,
      latency(samples),
      "ms",
      `in queue order; slowlog>5ms: ${slow.length}; Redis ${(await scriptUs()).toFixed(1)} µs/script call`,
    );
  } finally {
    await guard.close();
    client.disconnect();
    admin.disconnect();
    await server.stop();
  }
}

console.log(`deep queue: ${TICKETS.toLocaleString("en-US")} tickets on one key; node ${process.version}`);
if (ONLY !== "redis") memory();
if (ONLY !== "memory") await redisBench();
console.log();
const header = ["store", "measured", "queued", "n", "p50", "p99", "max", ""];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  "));
