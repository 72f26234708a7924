/**
 * Redis benchmark: slotgate (guard + createRedisStore) next to redis-semaphore (Semaphore) and
 * bottleneck (clustered: datastore "ioredis", maxConcurrent), in one run, on one redis-server that
 * this script starts on a free loopback port (test/harness/redis.ts) and stops on exit. slotgate
 * runs twice: "slotgate" as the store runs by default (Redis Functions, FCALL) and "slotgate-eval"
 * with `functions: false` (scripts, EVALSHA), so the two compare within one run.
 *
 *   npx tsx scripts/bench/redis.ts            # full run (≈ 2 min)
 *   npx tsx scripts/bench/redis.ts --quick    # short run (≈ 30 s), to check that it works
 *   npx tsx scripts/bench/redis.ts --rounds 5 --duration 4000
 *   BENCH_DEBUG=1 npx tsx scripts/bench/redis.ts --quick   # full stack of a phase that failed
 *
 * Needs redis-server (apt-get install -y redis-server) and, for the ceiling, redis-benchmark
 * (apt-get install -y redis-tools). This is a benchmark, not a test: it asserts nothing, it
 * prints a table and writes scripts/bench/results/redis-latest.json.
 *
 * Phases (the libraries always run one at a time, never side by side):
 *  (f) ceiling: `redis-benchmark -n 200000 -c 64 -P 1` of EVALSHA on a `return 1` script: the
 *      round trips per second this server and machine manage at all (at the start and, in a full
 *      run, again at the end).
 *  (a) uncontended: limit 10,000, 64 async callers in this process loop acquire → release.
 *  (b) contended: limit 10, 64 callers loop acquire → hold 1 ms (setTimeout) → release.
 *      Both run `rounds` times, the libraries interleaved (A B C A B C …), each round warm-up +
 *      measured window; ops/s is the median over rounds. For each window: Redis commands from
 *      `INFO commandstats` (CONFIG RESETSTAT before it; Lua-inner calls included), round trips =
 *      commands the client wrote (counted at ioredis' sendCommand), client CPU (process.cpuUsage)
 *      and Redis CPU (INFO cpu) per op, acquire wait p50/p99 (call → granted).
 *      Slot use = achieved ops/s ÷ (limit ÷ mean measured hold): the share of slot-time in which
 *      a holder held the slot. A timer of 1 ms lasts ~1.1 ms, so it is also shown against the
 *      nominal 1 ms (ideal 10,000/s), which no limiter can reach.
 *  (b') hand-off: limit 1, 3 worker processes × 2 callers loop acquire → hold 1 ms → release.
 *      Each worker stamps grant and release-call times with process.hrtime (CLOCK_MONOTONIC, one
 *      clock for all processes of a Linux host); merged, each grant is paired with the release
 *      before it: hand-off = grant − release call, counted when the grantee was already waiting
 *      at that release call. A grant to a caller that asked only after it (the releaser coming
 *      straight back and overtaking the waiters, as polling allows) is counted as "barged".
 *      "cross" = granted in another process than the releaser's.
 *      The workers also report (timeOrigin + performance.now()) − monotonic, whose spread across
 *      processes shows how comparable their wall clocks are.
 *  (d) ordering: limit 1, a worker holds the slot; 20 waiters enqueue one by one, round-robin
 *      over 3 workers (the next only once the store reports the previous one queued, or 30 ms
 *      later for redis-semaphore, which has no queue); the slot is freed and each waiter, when
 *      granted, RPUSHes its number to a list, holds 2 ms, releases. Inversions = pairs of the 190
 *      granted out of the expected order (FIFO; then with priority classes, expected = by class,
 *      then arrival). redis-semaphore has no priorities: its priority run shows what it gives.
 *  (e) clock skew: limit 5, lease 10 s, 3 workers × 4 callers, one worker's Date.now() 11 s ahead
 *      (preload ./redis/skew-clock.ts); each holder INCRs a counter key on entry and DECRs it
 *      before release: the highest INCR result is the most holders at once.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Redis } from "ioredis";
import { startRedis, type RedisProcess } from "../../test/harness/redis.js";
import { LIBS, benchConnection, createLimiter, instrumentIoredis, resetSent, sentSnapshot, type BenchLimiter, type LibName } from "./redis/contenders.js";
import type { LoopReply, Reply, Request, SetupReply, WorkerEvent } from "./redis/protocol.js";

// ── configuration ─────────────────────────────────────────────────────────────────────────────

const CALLERS = 64;
const UNCONTENDED_LIMIT = 10_000;
const CONTENDED_LIMIT = 10;
const HOLD_MS = 1;
const LEASE_TTL_MS = 10_000;
const QUEUE_TIMEOUT_MS = 60_000;
const HANDOFF_WORKERS = 3;
const HANDOFF_CALLERS = 2;
const ORDER_WAITERS = 20;
const ORDER_HOLD_MS = 2;
const ORDER_SPACING_MS = 30;
/** Priority class per waiter (lower first): each of 0–4 four times, arrival order mixed. */
const PRIORITY_CLASSES = [2, 0, 3, 1, 4, 2, 0, 1, 3, 4, 0, 2, 1, 4, 3, 0, 2, 3, 1, 4];
const SKEW_MS = 11_000;
const SKEW_LIMIT = 5;
const SKEW_CALLERS = 4;
const SKEW_HOLD_MS = 2;
const CEILING_REQUESTS = 200_000;

const TARGETS = {
  uncontendedVsRedisSemaphore: 1,
  roundTripsPerOp: 2,
  slotUsePercent: 95,
  waitP99Ms: 20,
  handoffP50Ms: 1,
  handoffP99Ms: 5,
  fifoInversions: 0,
  priorityInversions: 0,
  skewMaxHolders: SKEW_LIMIT,
};

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    duration: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.help) {
  console.log("usage: npx tsx scripts/bench/redis.ts [--quick] [--rounds <n>] [--duration <ms per measured window>]");
  process.exit(0);
}

const quick = args.quick === true;
function intArg(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}
const rounds = intArg("rounds", args.rounds, quick ? 1 : 3, 1, 20);
const durationMs = intArg("duration", args.duration, quick ? 700 : 2500, 100, 600_000);
const warmupMs = quick ? 150 : 300;
const handoffMs = quick ? 1000 : 3000;
const skewRunMs = quick ? 1200 : 3000;

const here = dirname(fileURLToPath(import.meta.url));
const WORKER_PATH = join(here, "redis", "worker.ts");
const SKEW_PRELOAD = pathToFileURL(join(here, "redis", "skew-clock.ts")).href;

// ── small helpers ─────────────────────────────────────────────────────────────────────────────

function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function sortedCopy(xs: readonly number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

function median(xs: readonly number[]): number {
  return quantile(sortedCopy(xs), 0.5);
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function sum(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ── cleanup: workers, redis-benchmark and redis-server go away however we end ─────────────────

const children = new Set<ChildProcess>();
let redisServer: RedisProcess | undefined;

function killChildren(): void {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  children.clear();
}

// The harness' own 'exit' hook SIGKILLs redis-server and removes its directory.
process.on("exit", killChildren);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping workers and redis-server\n`);
    killChildren();
    process.exit(130);
  });
}

// A library failing inside its own timers must not end the run: shown once, counted in the JSON.
let escapedErrors = 0;
process.on("unhandledRejection", (error: unknown) => {
  if (escapedErrors++ === 0)
    process.stderr.write(`\n(an unhandled rejection inside a library: ${String(error).split("\n")[0]}; counting further ones silently)\n`);
});

// ── workers ───────────────────────────────────────────────────────────────────────────────────

class Worker {
  readonly child: ChildProcess;
  readonly name: string;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(e: WorkerEvent) => void>();
  readonly ready: Promise<void>;

  constructor(name: string, skewMs: number) {
    this.name = name;
    // --no-warnings: a library's late-handled rejections would print a warning per occurrence.
    const execArgv = [...process.execArgv, "--no-warnings", ...(skewMs !== 0 ? ["--import", SKEW_PRELOAD] : [])];
    this.child = fork(WORKER_PATH, [], {
      execArgv,
      env: { ...process.env, BENCH_CLOCK_SKEW_MS: String(skewMs) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    children.add(this.child);
    let onReady!: () => void;
    let onFail!: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    this.child.on("message", (m: Reply | WorkerEvent) => {
      if ("ev" in m) {
        if (m.ev === "ready") onReady();
        else for (const l of this.#listeners) l(m);
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.data);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    // send() on a channel that just closed reports here; the exit handler rejects what is pending.
    this.child.on("error", () => undefined);
    this.child.on("exit", (code, signal) => {
      children.delete(this.child);
      const error = new Error(`${this.name} exited (${code ?? signal})`);
      onFail(error);
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.connected;
  }

  call<T = unknown>(req: Request, timeoutMs = 60_000): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.#next++;
    const reply = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id });
    });
    return withTimeout(reply, timeoutMs, `${this.name} ${req.t}`);
  }

  on(listener: (e: WorkerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Three plain workers and one whose clock is skewed; a worker that died is replaced before the next phase. */
class Pool {
  readonly plain: Worker[] = [];
  skewed: Worker;

  constructor() {
    for (let i = 0; i < 3; i++) this.plain.push(new Worker(`worker ${i}`, 0));
    this.skewed = new Worker("worker skewed", SKEW_MS);
  }

  get all(): Worker[] {
    return [...this.plain, this.skewed];
  }

  async ready(): Promise<void> {
    this.plain.forEach((w, i) => {
      if (!w.alive) this.plain[i] = new Worker(`worker ${i}`, 0);
    });
    if (!this.skewed.alive) this.skewed = new Worker("worker skewed", SKEW_MS);
    await withTimeout(Promise.all(this.all.map((w) => w.ready)), 60_000, "workers start");
  }
}

interface Failed {
  lib: LibName;
  mode?: string;
  error: string;
}

function failed<T extends object>(x: T | Failed): x is Failed {
  return "error" in x && typeof x.error === "string";
}

async function attempt<T>(lib: LibName, run: () => Promise<T>, mode?: string): Promise<T | Failed> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (process.env.BENCH_DEBUG) console.error(error);
    return { lib, ...(mode ? { mode } : {}), error: message.split("\n")[0]!.slice(0, 200) };
  }
}

// ── Redis-side accounting ─────────────────────────────────────────────────────────────────────

let admin: Redis;
let port = 0;
const clockBase = process.hrtime.bigint();

interface CommandStat {
  calls: number;
  usec: number;
}

async function redisCpuMs(): Promise<number> {
  const info = await admin.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(info)?.[1]);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1000;
}

/** CONFIG RESETSTAT, then the Redis CPU time so far (it is not reset). */
async function resetRedisStats(): Promise<number> {
  await admin.config("RESETSTAT");
  return redisCpuMs();
}

/** Commands since the last RESETSTAT, without the benchmark's own INFO/CONFIG calls. */
async function commandStats(): Promise<Record<string, CommandStat>> {
  const info = await admin.info("commandstats");
  const out: Record<string, CommandStat> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    const name = m[1]!;
    if (name === "info" || name.startsWith("config")) continue;
    out[name] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

function calls(stats: Record<string, CommandStat>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(stats)
      .map(([k, v]) => [k, v.calls])
      .sort((a, b) => (b[1] as number) - (a[1] as number)),
  );
}

/** The Lua calls themselves: scripts (EVALSHA/EVAL) and Redis Functions (FCALL). */
const LUA_CALLS = ["evalsha", "eval", "fcall", "fcall_ro"];

function scriptUsec(stats: Record<string, CommandStat>): number {
  return LUA_CALLS.reduce((a, name) => a + (stats[name]?.usec ?? 0), 0);
}

function scriptCalls(stats: Record<string, CommandStat>): number {
  return LUA_CALLS.reduce((a, name) => a + (stats[name]?.calls ?? 0), 0);
}

// ── (f) the ceiling ───────────────────────────────────────────────────────────────────────────

interface Ceiling {
  when: "start" | "end";
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  redisCpuUsPerRequest: number;
  wallMs: number;
}

async function ceiling(when: Ceiling["when"]): Promise<Ceiling | { when: Ceiling["when"]; error: string }> {
  const sha = String(await admin.script("LOAD", "return 1"));
  const cpu0 = await redisCpuMs();
  const t0 = performance.now();
  const argv = ["-h", "127.0.0.1", "-p", String(port), "-n", String(CEILING_REQUESTS), "-c", "64", "-P", "1", "--csv", "EVALSHA", sha, "0"];
  const result = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn("redis-benchmark", argv, { stdio: ["ignore", "pipe", "pipe"] });
    } catch (error) {
      resolve({ code: -1, out: "", err: String(error) });
      return;
    }
    children.add(child);
    let out = "";
    let err = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => {
      children.delete(child);
      resolve({ code: -1, out, err: `${err}${e.message}` });
    });
    child.on("exit", (code) => {
      children.delete(child);
      resolve({ code, out, err });
    });
  });
  const wallMs = performance.now() - t0;
  const cpuMs = (await redisCpuMs()) - cpu0;
  if (result.code !== 0) {
    const hint = /ENOENT/.test(result.err) ? " (install it: apt-get install -y redis-tools)" : "";
    return { when, error: `redis-benchmark failed${hint}: ${result.err.trim().slice(0, 300)}` };
  }
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = result.out
    .trim()
    .split("\n")
    .find((line) => line.startsWith('"EVALSHA') || line.startsWith('"evalsha'));
  const cells = row?.split('","').map((c) => c.replace(/"/g, "")) ?? [];
  const rps = Number(cells[1]);
  if (!Number.isFinite(rps)) return { when, error: `cannot parse redis-benchmark output: ${result.out.slice(0, 300)}` };
  return { when, requestsPerSec: rps, p50Ms: Number(cells[4]), p99Ms: Number(cells[6]), redisCpuUsPerRequest: (cpuMs * 1000) / CEILING_REQUESTS, wallMs };
}

// ── (a)/(b) one process, 64 callers ───────────────────────────────────────────────────────────

type Scenario = "uncontended" | "contended";

interface LoopStats {
  ops: number;
  elapsedMs: number;
  waits: number[];
  holds: number[];
}

async function runCallers(lim: BenchLimiter, ms: number, holdMs: number, record: boolean): Promise<LoopStats> {
  const waits: number[] = [];
  const holds: number[] = [];
  let ops = 0;
  let stop = false;
  const start = performance.now();
  const end = start + ms;
  const caller = async () => {
    while (!stop) {
      const t0 = performance.now();
      const release = await lim.acquire();
      const t1 = performance.now();
      if (holdMs > 0) await sleep(holdMs);
      const t2 = performance.now();
      await release();
      ops++;
      if (record) {
        waits.push(t1 - t0);
        holds.push(t2 - t1);
      }
      if (t2 >= end) stop = true;
    }
  };
  await withTimeout(Promise.all(Array.from({ length: CALLERS }, caller)), ms + 60_000, "caller loops");
  return { ops, elapsedMs: performance.now() - start, waits, holds };
}

interface InProcessRun {
  scenario: Scenario;
  lib: LibName;
  round: number;
  limit: number;
  holdMs: number;
  ops: number;
  elapsedMs: number;
  opsPerSec: number;
  clientCpuMs: number;
  redisCpuMs: number;
  /** Commands the client wrote (round trips), by name. */
  sent: Record<string, number>;
  /** INFO commandstats deltas (Lua-inner calls included), by name. */
  redisCalls: Record<string, number>;
  scriptUsec: number;
  scriptCalls: number;
  waitP50Ms: number;
  waitP99Ms: number;
  meanHoldMs: number;
  /** achieved ÷ (limit ÷ mean measured hold); contended only. */
  slotUse: number | null;
  /** achieved ÷ (limit ÷ nominal hold); contended only. */
  nominalUse: number | null;
  faults: number;
  /** Raw samples, kept out of the JSON. */
  waits: number[];
}

async function inProcess(scenario: Scenario, lib: LibName, round: number): Promise<InProcessRun> {
  const limit = scenario === "uncontended" ? UNCONTENDED_LIMIT : CONTENDED_LIMIT;
  const holdMs = scenario === "uncontended" ? 0 : HOLD_MS;
  const lim = await createLimiter(lib, { port, key: `bench-${scenario}-${lib}-${round}`, limit, leaseTtlMs: LEASE_TTL_MS, queueTimeoutMs: QUEUE_TIMEOUT_MS });
  try {
    await runCallers(lim, warmupMs, holdMs, false);
    const faults0 = lim.faults();
    const redisCpu0 = await resetRedisStats();
    resetSent();
    const cpu0 = process.cpuUsage();
    const r = await runCallers(lim, durationMs, holdMs, true);
    const cpu = process.cpuUsage(cpu0);
    const sent = sentSnapshot();
    const stats = await commandStats();
    const redisCpu = (await redisCpuMs()) - redisCpu0;
    const opsPerSec = (r.ops / r.elapsedMs) * 1000;
    const meanHoldMs = mean(r.holds);
    const sortedWaits = sortedCopy(r.waits);
    return {
      scenario,
      lib,
      round,
      limit,
      holdMs,
      ops: r.ops,
      elapsedMs: r.elapsedMs,
      opsPerSec,
      clientCpuMs: (cpu.user + cpu.system) / 1000,
      redisCpuMs: redisCpu,
      sent,
      redisCalls: calls(stats),
      scriptUsec: scriptUsec(stats),
      scriptCalls: scriptCalls(stats),
      waitP50Ms: quantile(sortedWaits, 0.5),
      waitP99Ms: quantile(sortedWaits, 0.99),
      meanHoldMs,
      slotUse: holdMs > 0 ? opsPerSec / (limit / (meanHoldMs / 1000)) : null,
      nominalUse: holdMs > 0 ? opsPerSec / (limit / (holdMs / 1000)) : null,
      faults: lim.faults() - faults0,
      waits: r.waits,
    };
  } finally {
    await lim.close();
    await admin.flushall();
  }
}

interface InProcessSummary {
  scenario: Scenario;
  lib: LibName;
  rounds: number;
  opsPerSec: number;
  opsPerSecMin: number;
  opsPerSecMax: number;
  perRound: number[];
  roundTripsPerOp: number;
  redisCmdsPerOp: number;
  scriptUsPerOp: number;
  /** Redis µs per Lua call (commandstats usec ÷ calls of EVALSHA/EVAL/FCALL). */
  scriptUsPerCall: number;
  clientCpuUsPerOp: number;
  redisCpuUsPerOp: number;
  waitP50Ms: number;
  waitP99Ms: number;
  meanHoldMs: number;
  slotUse: number | null;
  nominalUse: number | null;
  sentPerOp: Record<string, number>;
  redisCallsPerOp: Record<string, number>;
  faults: number;
}

function summarize(scenario: Scenario, lib: LibName, runs: InProcessRun[]): InProcessSummary {
  const ops = runs.reduce((a, r) => a + r.ops, 0);
  const sent: Record<string, number> = {};
  const redisCalls: Record<string, number> = {};
  for (const r of runs) {
    addInto(sent, r.sent);
    addInto(redisCalls, r.redisCalls);
  }
  const perOp = (rec: Record<string, number>) => Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, v / ops]));
  const waits = sortedCopy(runs.flatMap((r) => r.waits));
  const perRound = runs.map((r) => r.opsPerSec);
  const slot = runs.map((r) => r.slotUse).filter((x): x is number => x !== null);
  const nominal = runs.map((r) => r.nominalUse).filter((x): x is number => x !== null);
  return {
    scenario,
    lib,
    rounds: runs.length,
    opsPerSec: median(perRound),
    opsPerSecMin: Math.min(...perRound),
    opsPerSecMax: Math.max(...perRound),
    perRound,
    roundTripsPerOp: sum(sent) / ops,
    redisCmdsPerOp: sum(redisCalls) / ops,
    scriptUsPerOp: runs.reduce((a, r) => a + r.scriptUsec, 0) / ops,
    scriptUsPerCall: runs.reduce((a, r) => a + r.scriptUsec, 0) / runs.reduce((a, r) => a + r.scriptCalls, 0),
    clientCpuUsPerOp: (runs.reduce((a, r) => a + r.clientCpuMs, 0) * 1000) / ops,
    redisCpuUsPerOp: (runs.reduce((a, r) => a + r.redisCpuMs, 0) * 1000) / ops,
    waitP50Ms: quantile(waits, 0.5),
    waitP99Ms: quantile(waits, 0.99),
    meanHoldMs: mean(runs.map((r) => r.meanHoldMs)),
    slotUse: slot.length ? median(slot) : null,
    nominalUse: nominal.length ? median(nominal) : null,
    sentPerOp: perOp(sent),
    redisCallsPerOp: perOp(redisCalls),
    faults: runs.reduce((a, r) => a + r.faults, 0),
  };
}

// ── (b') hand-off across processes ────────────────────────────────────────────────────────────

interface Handoff {
  lib: LibName;
  ops: number;
  /** Grants to a caller that was already waiting when the previous holder called release. */
  handoffs: number;
  /** Grants to a caller that only asked after that release call (it overtook the waiters). */
  barged: number;
  crossProcess: number;
  p50Ms: number;
  p99Ms: number;
  crossP50Ms: number;
  crossP99Ms: number;
  maxMs: number;
  /** Grants while another holder had not yet called release (limit 1). */
  overAdmissions: number;
  roundTripsPerOp: number;
  redisCmdsPerOp: number;
  redisCpuUsPerOp: number;
  workerCpuUsPerOp: number;
  /** Spread of (timeOrigin + performance.now()) − monotonic across the workers, µs. */
  wallClockSpreadUs: number;
  faults: number;
  redisCallsPerOp: Record<string, number>;
}

function setupRequest(lib: LibName, key: string, limit: number): Request {
  return { t: "setup", lib, port, key, limit, leaseTtlMs: LEASE_TTL_MS, queueTimeoutMs: QUEUE_TIMEOUT_MS, clockBase: clockBase.toString() };
}

async function handoff(lib: LibName, workers: Worker[]): Promise<Handoff> {
  const key = `bench-handoff-${lib}`;
  const setups = await Promise.all(workers.map((w) => w.call<SetupReply>(setupRequest(lib, key, 1))));
  try {
    const redisCpu0 = await resetRedisStats();
    await Promise.all(workers.map((w) => w.call({ t: "loop", mode: "handoff", callers: HANDOFF_CALLERS, holdMs: HOLD_MS, counterKey: "", limit: 1 })));
    await sleep(handoffMs);
    const replies = await Promise.all(workers.map((w) => w.call<LoopReply>({ t: "stop" }, 120_000)));
    const stats = await commandStats();
    const redisCpu = (await redisCpuMs()) - redisCpu0;

    const events: { t: number; grant: boolean; w: number; asked: number }[] = [];
    replies.forEach((r, w) => {
      r.grants.forEach((t, i) => events.push({ t, grant: true, w, asked: r.acquireStarts[i]! }));
      for (const t of r.releases) events.push({ t, grant: false, w, asked: 0 });
    });
    events.sort((a, b) => a.t - b.t || Number(a.grant) - Number(b.grant));
    const all: number[] = [];
    const cross: number[] = [];
    let barged = 0;
    let holding = 0;
    let overAdmissions = 0;
    let last: { t: number; w: number; used: boolean } | undefined;
    for (const e of events) {
      if (e.grant) {
        holding++;
        if (holding > 1) overAdmissions++;
        if (last && !last.used) {
          last.used = true;
          if (e.asked > last.t) {
            barged++;
          } else {
            const ms = (e.t - last.t) / 1e6;
            all.push(ms);
            if (e.w !== last.w) cross.push(ms);
          }
        }
      } else {
        holding--;
        last = { t: e.t, w: e.w, used: false };
      }
    }
    const sortedAll = sortedCopy(all);
    const sortedCross = sortedCopy(cross);
    const ops = replies.reduce((a, r) => a + r.ops, 0);
    const sent: Record<string, number> = {};
    for (const r of replies) addInto(sent, r.sent);
    const redisCalls = calls(stats);
    const offsets = setups.map((s) => s.wallMinusMonotonicMs);
    return {
      lib,
      ops,
      handoffs: all.length,
      barged,
      crossProcess: cross.length,
      p50Ms: quantile(sortedAll, 0.5),
      p99Ms: quantile(sortedAll, 0.99),
      crossP50Ms: quantile(sortedCross, 0.5),
      crossP99Ms: quantile(sortedCross, 0.99),
      maxMs: sortedAll.length ? sortedAll[sortedAll.length - 1]! : NaN,
      overAdmissions,
      roundTripsPerOp: sum(sent) / ops,
      redisCmdsPerOp: sum(redisCalls) / ops,
      redisCpuUsPerOp: (redisCpu * 1000) / ops,
      workerCpuUsPerOp: (replies.reduce((a, r) => a + r.cpuMs, 0) * 1000) / ops,
      wallClockSpreadUs: (Math.max(...offsets) - Math.min(...offsets)) * 1000,
      faults: replies.reduce((a, r) => a + r.faults, 0),
      redisCallsPerOp: Object.fromEntries(Object.entries(redisCalls).map(([k, v]) => [k, v / ops])),
    };
  } finally {
    await Promise.all(workers.map((w) => w.call({ t: "close" })));
    await admin.flushall();
  }
}

// ── (d) ordering ──────────────────────────────────────────────────────────────────────────────

interface Ordering {
  lib: LibName;
  mode: "fifo" | "priority";
  /** Waiter numbers in the order they were granted. */
  granted: number[];
  inversions: number;
  pairs: number;
  /** Waiters whose place in the queue the store confirmed before the next one enqueued (null: no queue to ask). */
  confirmed: number | null;
  failed: number;
}

function expectedOrder(mode: Ordering["mode"]): number[] {
  const ids = Array.from({ length: ORDER_WAITERS }, (_, i) => i);
  if (mode === "fifo") return ids;
  return ids.sort((a, b) => PRIORITY_CLASSES[a]! - PRIORITY_CLASSES[b]! || a - b);
}

/** Pairs granted in the opposite order to the expected one (Kendall tau distance). */
function inversions(granted: number[], expected: number[]): number {
  const rank = new Map(expected.map((id, i) => [id, i]));
  let n = 0;
  for (let i = 0; i < granted.length; i++) {
    for (let j = i + 1; j < granted.length; j++) {
      if (rank.get(granted[i]!)! > rank.get(granted[j]!)!) n++;
    }
  }
  return n;
}

async function ordering(lib: LibName, mode: Ordering["mode"], workers: Worker[]): Promise<Ordering> {
  const key = `bench-order-${mode}-${lib}`;
  const orderKey = `${key}:granted`;
  await Promise.all(workers.map((w) => w.call(setupRequest(lib, key, 1))));
  const finished = new Set<number>();
  let failed = 0;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const offs = workers.map((w) =>
    w.on((e) => {
      if (e.ev === "ready") return;
      if (e.ev === "failed") failed++;
      finished.add(e.waiter);
      if (finished.size === ORDER_WAITERS) allDone();
    }),
  );
  try {
    await workers[0]!.call({ t: "hold" });
    let confirmed: number | null = 0;
    for (let i = 0; i < ORDER_WAITERS; i++) {
      const w = workers[i % workers.length]!;
      await w.call({ t: "enqueue", waiter: i, priority: mode === "priority" ? PRIORITY_CLASSES[i]! : null, holdMs: ORDER_HOLD_MS, orderKey });
      if (confirmed === null) {
        await sleep(ORDER_SPACING_MS);
        continue;
      }
      const deadline = performance.now() + 2000;
      let queued: number | null = 0;
      while (performance.now() < deadline) {
        queued = await w.call<number | null>({ t: "queued" });
        if (queued === null || queued >= i + 1) break;
        await sleep(2);
      }
      if (queued === null) {
        confirmed = null;
        await sleep(ORDER_SPACING_MS);
      } else if (queued >= i + 1) {
        confirmed++;
        await sleep(2);
      }
    }
    await workers[0]!.call({ t: "unhold" });
    await withTimeout(done, 60_000, `${lib} ${mode} waiters`);
    const granted = (await admin.lrange(orderKey, 0, -1)).map(Number);
    return { lib, mode, granted, inversions: inversions(granted, expectedOrder(mode)), pairs: (granted.length * (granted.length - 1)) / 2, confirmed, failed };
  } finally {
    for (const off of offs) off();
    await Promise.all(workers.map((w) => w.call({ t: "close" })));
    await admin.flushall();
  }
}

// ── (e) clock skew ────────────────────────────────────────────────────────────────────────────

interface Skew {
  lib: LibName;
  skewMs: number;
  maxHolders: number;
  overLimitEntries: number;
  ops: number;
  skewedOps: number;
  faults: number;
  /** Acquires that failed outright, in the processes with the right clock / in the skewed one. */
  acquireErrors: number;
  skewedAcquireErrors: number;
  firstError: string | null;
}

async function skew(lib: LibName, workers: Worker[]): Promise<Skew> {
  const key = `bench-skew-${lib}`;
  const counterKey = `${key}:holders`;
  const setups = await Promise.all(workers.map((w) => w.call<SetupReply>(setupRequest(lib, key, SKEW_LIMIT))));
  try {
    await admin.del(counterKey);
    await Promise.all(workers.map((w) => w.call({ t: "loop", mode: "skew", callers: SKEW_CALLERS, holdMs: SKEW_HOLD_MS, counterKey, limit: SKEW_LIMIT })));
    await sleep(skewRunMs);
    const replies = await Promise.all(workers.map((w) => w.call<LoopReply>({ t: "stop" }, 120_000)));
    return {
      lib,
      skewMs: Math.round(Math.max(...setups.map((s) => s.skewMs))),
      maxHolders: Math.max(...replies.map((r) => r.maxHolders)),
      overLimitEntries: replies.reduce((a, r) => a + r.overLimit, 0),
      ops: replies.reduce((a, r) => a + r.ops, 0),
      skewedOps: replies[replies.length - 1]!.ops,
      faults: replies.reduce((a, r) => a + r.faults, 0),
      acquireErrors: replies.slice(0, -1).reduce((a, r) => a + r.acquireErrors, 0),
      skewedAcquireErrors: replies[replies.length - 1]!.acquireErrors,
      firstError: replies.find((r) => r.firstError !== null)?.firstError ?? null,
    };
  } finally {
    await Promise.all(workers.map((w) => w.call({ t: "close" })));
    await admin.flushall();
  }
}

// ── output ────────────────────────────────────────────────────────────────────────────────────

function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
const fmt = (n: number | null, digits = 2) => (n !== null && Number.isFinite(n) ? n.toFixed(digits) : "-");
const pct = (x: number | null) => (x !== null && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "-");
const ratio = (a: number, b: number | undefined) => (b !== undefined && b > 0 ? `${(a / b).toFixed(2)}×` : "-");
const SHORT: Record<LibName, string> = { slotgate: "slotgate", "slotgate-eval": "sg-eval", "redis-semaphore": "r-sem", bottleneck: "bneck" };

function topCommands(perOp: Record<string, number>, n = 6): string {
  return Object.entries(perOp)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(", ");
}

// ── main ──────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const startedAt = performance.now();
  const cpus = os.cpus();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpuCount: cpus.length,
    loadAvgStart: os.loadavg(),
    loadAvgEnd: [] as number[],
    redisVersion: "",
    quick,
    rounds,
    warmupMs,
    durationMs,
    handoffMs,
    skewRunMs,
    callers: CALLERS,
    limits: { uncontended: UNCONTENDED_LIMIT, contended: CONTENDED_LIMIT, handoff: 1, ordering: 1, skew: SKEW_LIMIT },
    holdMs: HOLD_MS,
    leaseTtlMs: LEASE_TTL_MS,
    slotgate: "src/ via tsx (guard + createRedisStore, defaults: autoRenew on, sweepIntervalMs 1000, safetyRecheckMs 1000)",
    redisSemaphore: "Semaphore per acquire, lockTimeout 10000, retryInterval 10 (default), acquireTimeout 60000",
    bottleneck: 'datastore "ioredis", maxConcurrent, job expiration 10000, default priority 5',
    wallMs: 0,
    unhandledRejectionsInMainProcess: 0,
  };
  console.log(`slotgate Redis benchmark — ${meta.date}${quick ? " (--quick)" : ""}`);
  console.log(
    `node ${meta.node}, ${meta.platform}, ${meta.cpuCount} CPU(s): ${meta.cpuModel}, load avg ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  if (meta.loadAvgStart[0]! > meta.cpuCount / 2)
    console.log(
      `warning: the machine is busy (load ${meta.loadAvgStart[0]!.toFixed(2)} on ${meta.cpuCount} CPUs): expect noisy numbers; compare CPU µs/op too`,
    );

  instrumentIoredis();
  redisServer = await startRedis();
  port = redisServer.port;
  admin = await benchConnection(port);
  meta.redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "?";
  console.log(
    `redis-server ${meta.redisVersion} on 127.0.0.1:${port} (pid ${redisServer.pid}), ${rounds} round(s) × ${durationMs} ms per library and scenario`,
  );

  const pool = new Pool();
  await pool.ready();

  const progress = (text: string) => process.stderr.write(text);
  const ceilings: (Ceiling | { when: Ceiling["when"]; error: string })[] = [];
  const showCeiling = (c: Ceiling | { error: string }) => progress(`${"requestsPerSec" in c ? `${fmtInt(c.requestsPerSec)} req/s` : c.error}\n`);
  progress("  (f) ceiling: redis-benchmark EVALSHA … ");
  ceilings.push(await ceiling("start"));
  showCeiling(ceilings[0]!);

  const runs: InProcessRun[] = [];
  for (const scenario of ["uncontended", "contended"] as const) {
    for (let round = 1; round <= rounds; round++) {
      // Rotate the order each round, so no library always runs right after the same other one.
      const order = LIBS.map((_, i) => LIBS[(i + round - 1) % LIBS.length]!);
      for (const lib of order) {
        progress(`  (${scenario === "uncontended" ? "a" : "b"}) ${scenario} round ${round}/${rounds} ${lib} … `);
        const r = await inProcess(scenario, lib, round);
        runs.push(r);
        progress(
          `${fmtInt(r.opsPerSec)} ops/s (client CPU ${fmt((r.clientCpuMs * 1000) / r.ops, 1)} µs/op, redis CPU ${fmt((r.redisCpuMs * 1000) / r.ops, 1)} µs/op)\n`,
        );
      }
    }
  }
  const summaries = (["uncontended", "contended"] as const).flatMap((scenario) =>
    LIBS.map((lib) =>
      summarize(
        scenario,
        lib,
        runs.filter((r) => r.scenario === scenario && r.lib === lib),
      ),
    ),
  );

  const handoffs: (Handoff | Failed)[] = [];
  for (const lib of LIBS) {
    progress(`  (b) hand-off across ${HANDOFF_WORKERS} processes ${lib} … `);
    await pool.ready();
    const h = await attempt(lib, () => handoff(lib, pool.plain));
    handoffs.push(h);
    progress(failed(h) ? `failed: ${h.error}\n` : `cross-process p50 ${fmt(h.crossP50Ms, 3)} ms, p99 ${fmt(h.crossP99Ms, 3)} ms\n`);
  }

  const orderings: (Ordering | Failed)[] = [];
  for (const mode of ["fifo", "priority"] as const) {
    for (const lib of LIBS) {
      progress(`  (d) ${mode} ${lib} … `);
      await pool.ready();
      const o = await attempt(lib, () => ordering(lib, mode, pool.plain), mode);
      orderings.push(o);
      progress(failed(o) ? `failed: ${o.error}\n` : `${o.inversions}/${o.pairs} inversions\n`);
    }
  }

  const skews: (Skew | Failed)[] = [];
  for (const lib of LIBS) {
    progress(`  (e) clock skew +${SKEW_MS / 1000} s ${lib} … `);
    await pool.ready();
    const sk = await attempt(lib, () => skew(lib, [pool.plain[0]!, pool.plain[1]!, pool.skewed]));
    skews.push(sk);
    progress(failed(sk) ? `failed: ${sk.error}\n` : `max ${sk.maxHolders} holders\n`);
  }

  if (!quick) {
    progress("  (f) ceiling again … ");
    const c = await ceiling("end");
    ceilings.push(c);
    showCeiling(c);
  }
  progress("\n");

  // ── report ──
  const okCeilings = ceilings.filter((c): c is Ceiling => "requestsPerSec" in c);
  const ceil = okCeilings.length ? median(okCeilings.map((c) => c.requestsPerSec)) : undefined;
  console.log(`\n(f) ceiling: redis-benchmark -n ${CEILING_REQUESTS} -c 64 -P 1 EVALSHA <return 1> 0`);
  for (const c of ceilings) {
    if ("error" in c) console.log(`    ${c.when}: ${c.error}`);
    else
      console.log(
        `    ${c.when}: ${fmtInt(c.requestsPerSec)} req/s (p50 ${c.p50Ms} ms, p99 ${c.p99Ms} ms), Redis CPU ${c.redisCpuUsPerRequest.toFixed(1)} µs/req`,
      );
  }

  const get = (scenario: Scenario, lib: LibName) => summaries.find((x) => x.scenario === scenario && x.lib === lib)!;
  for (const scenario of ["uncontended", "contended"] as const) {
    const contended = scenario === "contended";
    console.log(
      contended
        ? `\n(b) contended: limit ${CONTENDED_LIMIT}, ${CALLERS} callers in 1 process, hold ${HOLD_MS} ms (setTimeout); median of ${rounds} round(s)`
        : `\n(a) uncontended: limit ${UNCONTENDED_LIMIT}, ${CALLERS} callers in 1 process, acquire → release; median of ${rounds} round(s)`,
    );
    const header = [
      "library",
      "ops/s",
      "min–max",
      "× r-sem",
      "× bneck",
      "% ceil",
      "RT/op",
      "cmds/op",
      ...(contended ? ["slot use", "vs 1 ms", "hold ms"] : []),
      "acq p50 ms",
      "acq p99 ms",
      "client CPU µs/op",
      "redis CPU µs/op",
      "script µs/op",
      "µs/Lua call",
    ];
    const rows = LIBS.map((lib) => {
      const x = get(scenario, lib);
      return [
        lib,
        fmtInt(x.opsPerSec),
        `${fmtInt(x.opsPerSecMin)}–${fmtInt(x.opsPerSecMax)}`,
        ratio(x.opsPerSec, get(scenario, "redis-semaphore").opsPerSec),
        ratio(x.opsPerSec, get(scenario, "bottleneck").opsPerSec),
        ceil ? pct(x.opsPerSec / ceil) : "-",
        fmt(x.roundTripsPerOp),
        fmt(x.redisCmdsPerOp, 1),
        ...(contended ? [pct(x.slotUse), pct(x.nominalUse), fmt(x.meanHoldMs, 3)] : []),
        fmt(x.waitP50Ms, 3),
        fmt(x.waitP99Ms, 3),
        fmt(x.clientCpuUsPerOp, 1),
        fmt(x.redisCpuUsPerOp, 1),
        fmt(x.scriptUsPerOp, 1),
        fmt(x.scriptUsPerCall, 1),
      ];
    });
    console.log(
      table(
        header,
        rows,
        header.map((_, i) => i > 0),
      ),
    );
    for (const lib of LIBS) {
      const x = get(scenario, lib);
      console.log(
        `    ${SHORT[lib].padEnd(8)} sent/op: ${topCommands(x.sentPerOp)} | Redis calls/op: ${topCommands(x.redisCallsPerOp, 8)}${x.faults ? ` | faults ${x.faults}` : ""}`,
      );
    }
  }

  console.log(
    `\n(b) hand-off: limit 1, ${HANDOFF_WORKERS} processes × ${HANDOFF_CALLERS} callers, hold ${HOLD_MS} ms; release call → grant of a caller already waiting, CLOCK_MONOTONIC across processes`,
  );
  {
    const header = [
      "library",
      "cycles",
      "hand-offs",
      "barged",
      "cross",
      "cross p50 ms",
      "cross p99 ms",
      "all p50 ms",
      "all p99 ms",
      "max ms",
      "2 holders",
      "RT/op",
      "cmds/op",
      "redis CPU µs/op",
      "worker CPU µs/op",
    ];
    const rows = handoffs.map((h) =>
      failed(h)
        ? [h.lib, `failed: ${h.error}`, ...header.slice(2).map(() => "")]
        : [
            h.lib,
            fmtInt(h.ops),
            fmtInt(h.handoffs),
            pct(h.barged / (h.barged + h.handoffs)),
            pct(h.crossProcess / h.handoffs),
            fmt(h.crossP50Ms, 3),
            fmt(h.crossP99Ms, 3),
            fmt(h.p50Ms, 3),
            fmt(h.p99Ms, 3),
            fmt(h.maxMs, 1),
            String(h.overAdmissions),
            fmt(h.roundTripsPerOp),
            fmt(h.redisCmdsPerOp, 1),
            fmt(h.redisCpuUsPerOp, 1),
            fmt(h.workerCpuUsPerOp, 1),
          ],
    );
    console.log(
      table(
        header,
        rows,
        header.map((_, i) => i > 0),
      ),
    );
    const spreads = handoffs.filter((h): h is Handoff => !failed(h)).map((h) => h.wallClockSpreadUs);
    console.log("    barged = grants that went to a caller who asked after the release call while others were already waiting (not counted as hand-offs)");
    if (spreads.length)
      console.log(`    wall clocks of the workers ((timeOrigin + performance.now()) − CLOCK_MONOTONIC) agree within ${fmt(Math.max(...spreads), 0)} µs`);
  }

  console.log(`\n(d) ordering: ${ORDER_WAITERS} waiters enqueued in order over 3 processes, limit 1; inversions = pairs granted out of order`);
  {
    const find = (lib: LibName, mode: Ordering["mode"]) => orderings.find((o) => o.lib === lib && (failed(o) ? o.mode === mode : o.mode === mode))!;
    const cell = (o: Ordering | Failed, note = "") => (failed(o) ? `failed: ${o.error}` : `${o.inversions}/${o.pairs}${note}`);
    const header = ["library", "FIFO inversions", "priority inversions", "granted", "queue confirmed", "failed"];
    const rows = LIBS.map((lib) => {
      const f = find(lib, "fifo");
      const p = find(lib, "priority");
      const ok = [f, p].filter((o): o is Ordering => !failed(o));
      return [
        lib,
        cell(f),
        cell(p, lib === "redis-semaphore" ? " (no priorities)" : ""),
        ok.map((o) => o.granted.length).join("+"),
        ok.some((o) => o.confirmed === null)
          ? `no queue: ${ORDER_SPACING_MS} ms apart`
          : `${ok.reduce((a, o) => a + (o.confirmed ?? 0), 0)} of ${ok.length * ORDER_WAITERS}`,
        String(ok.reduce((a, o) => a + o.failed, 0)),
      ];
    });
    console.log(table(header, rows, [false, true, true, true, false, true]));
    for (const o of orderings) if (!failed(o)) console.log(`    ${o.mode.padEnd(8)} ${SHORT[o.lib].padEnd(8)} granted: ${o.granted.join(" ")}`);
    console.log(`    expected with priorities:  ${expectedOrder("priority").join(" ")}  (class of waiter 0…19: ${PRIORITY_CLASSES.join(",")})`);
  }

  console.log(
    `\n(e) clock skew: Date.now() +${SKEW_MS / 1000} s in 1 of 3 processes, limit ${SKEW_LIMIT}, lease/lockTimeout/expiration ${LEASE_TTL_MS / 1000} s, ${3 * SKEW_CALLERS} callers, hold ${SKEW_HOLD_MS} ms`,
  );
  {
    const header = [
      "library",
      "max holders",
      "entries over limit",
      "cycles",
      "in skewed process",
      "failed acquires",
      "in skewed process",
      "faults",
      "skew seen",
    ];
    const rows = skews.map((x) =>
      failed(x)
        ? [x.lib, `failed: ${x.error}`, ...header.slice(2).map(() => "")]
        : [
            x.lib,
            `${x.maxHolders} / ${SKEW_LIMIT}`,
            fmtInt(x.overLimitEntries),
            fmtInt(x.ops),
            fmtInt(x.skewedOps),
            fmtInt(x.acquireErrors + x.skewedAcquireErrors),
            fmtInt(x.skewedAcquireErrors),
            String(x.faults),
            `${fmtInt(x.skewMs)} ms`,
          ],
    );
    console.log(
      table(
        header,
        rows,
        header.map((_, i) => i > 0),
      ),
    );
    for (const x of skews) if (!failed(x) && x.firstError) console.log(`    ${SHORT[x.lib].padEnd(8)} first failed acquire: ${x.firstError}`);
    console.log("    failed acquires: the loop counts them and carries on; faults = errors the library reported or threw from its own timers");
  }

  // Targets for slotgate.
  const un = get("uncontended", "slotgate");
  const co = get("contended", "slotgate");
  const rsemUn = get("uncontended", "redis-semaphore");
  const ho = handoffs.find((h) => h.lib === "slotgate")!;
  const fifo = orderings.find((o) => o.lib === "slotgate" && !failed(o) && o.mode === "fifo") as Ordering | undefined;
  const prio = orderings.find((o) => o.lib === "slotgate" && !failed(o) && o.mode === "priority") as Ordering | undefined;
  const sk = skews.find((x) => x.lib === "slotgate")!;
  const targets = [
    {
      metric: "uncontended ops/s vs redis-semaphore",
      target: "≥ 1.00×",
      value: `${(un.opsPerSec / rsemUn.opsPerSec).toFixed(2)}× (${fmtInt(un.opsPerSec)} vs ${fmtInt(rsemUn.opsPerSec)}; CPU µs/op client ${fmt(un.clientCpuUsPerOp, 1)} vs ${fmt(rsemUn.clientCpuUsPerOp, 1)}, redis ${fmt(un.redisCpuUsPerOp, 1)} vs ${fmt(rsemUn.redisCpuUsPerOp, 1)})`,
      met: un.opsPerSec >= rsemUn.opsPerSec * TARGETS.uncontendedVsRedisSemaphore,
    },
    {
      metric: "round trips per acquire+release, uncontended",
      target: `≤ ${TARGETS.roundTripsPerOp}`,
      value: fmt(un.roundTripsPerOp),
      met: un.roundTripsPerOp <= TARGETS.roundTripsPerOp + 0.01,
    },
    {
      metric: "round trips per acquire+release, contended",
      target: `≤ ${TARGETS.roundTripsPerOp}`,
      value: fmt(co.roundTripsPerOp),
      met: co.roundTripsPerOp <= TARGETS.roundTripsPerOp + 0.01,
    },
    {
      metric: "contended slot use (vs measured hold)",
      target: `≥ ${TARGETS.slotUsePercent}%`,
      value: `${pct(co.slotUse)} (vs nominal 1 ms: ${pct(co.nominalUse)})`,
      met: (co.slotUse ?? 0) * 100 >= TARGETS.slotUsePercent,
    },
    { metric: "contended acquire wait p99", target: `≤ ${TARGETS.waitP99Ms} ms`, value: `${fmt(co.waitP99Ms)} ms`, met: co.waitP99Ms <= TARGETS.waitP99Ms },
    {
      metric: "hand-off p50, cross-process",
      target: `≤ ${TARGETS.handoffP50Ms} ms`,
      value: failed(ho) ? ho.error : `${fmt(ho.crossP50Ms, 3)} ms`,
      met: !failed(ho) && ho.crossP50Ms <= TARGETS.handoffP50Ms,
    },
    {
      metric: "hand-off p99, cross-process",
      target: `≤ ${TARGETS.handoffP99Ms} ms`,
      value: failed(ho) ? ho.error : `${fmt(ho.crossP99Ms, 3)} ms`,
      met: !failed(ho) && ho.crossP99Ms <= TARGETS.handoffP99Ms,
    },
    {
      metric: "FIFO inversions",
      target: "0",
      value: fifo ? `${fifo.inversions}/${fifo.pairs}` : "failed",
      met: !!fifo && fifo.inversions === 0 && fifo.granted.length === ORDER_WAITERS,
    },
    {
      metric: "priority inversions",
      target: "0",
      value: prio ? `${prio.inversions}/${prio.pairs}` : "failed",
      met: !!prio && prio.inversions === 0 && prio.granted.length === ORDER_WAITERS,
    },
    {
      metric: `max holders with +${SKEW_MS / 1000} s skew`,
      target: `≤ ${SKEW_LIMIT}`,
      value: failed(sk) ? sk.error : String(sk.maxHolders),
      met: !failed(sk) && sk.maxHolders <= SKEW_LIMIT,
    },
  ];
  console.log("\nslotgate targets");
  console.log(
    table(
      ["metric", "target", "slotgate", "met"],
      targets.map((t) => [t.metric, t.target, t.value, t.met ? "yes" : "NO"]),
      [false, false, false, false],
    ),
  );
  console.log("\nRT/op = commands the client wrote per acquire+release (= round trips: none of the libraries pipelines within an operation);");
  console.log(
    "cmds/op = all Redis commands per op from INFO commandstats, Lua-inner calls included; script µs/op = EVALSHA/EVAL/FCALL time in Redis (commandstats usec);",
  );
  console.log("µs/Lua call = that time ÷ the Lua calls (usec_per_call); slotgate runs its Lua as Redis Functions (FCALL), slotgate-eval as scripts (EVALSHA);");
  console.log("CPU µs/op = CPU time (user + sys) of this process / of redis-server during the window ÷ ops; % ceil = ops/s ÷ ceiling EVALSHA/s");
  console.log("(the ceiling is one redis-benchmark process: on a busy machine it is CPU-starved like everything else, so % ceil can pass 100%).");
  console.log("On a shared machine ops/s follows each process's CPU share; CPU µs/op (client and Redis) is the steadier figure to compare.");

  meta.loadAvgEnd = os.loadavg();
  meta.unhandledRejectionsInMainProcess = escapedErrors;
  meta.wallMs = performance.now() - startedAt;
  const out = join(here, "results", "redis-latest.json");
  mkdirSync(dirname(out), { recursive: true });
  const rawRuns = runs.map(({ waits: _waits, ...rest }) => rest);
  writeFileSync(
    out,
    `${JSON.stringify({ meta, targets: TARGETS, ceilings, summaries, runs: rawRuns, handoffs, orderings, skews, slotgateTargets: targets }, null, 2)}\n`,
  );
  console.log(`raw numbers: ${out}  (run took ${(meta.wallMs / 1000).toFixed(0)} s, load avg at end ${meta.loadAvgEnd.map((l) => l.toFixed(2)).join(" ")})`);

  await admin.quit();
  for (const w of pool.all) if (w.alive) w.child.disconnect();
  await redisServer.stop();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    killChildren();
    process.exit(1);
  },
);
