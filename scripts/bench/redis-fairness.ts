/**
 * The cost of fair queuing and of the queue disciplines on Redis, per operation, against FIFO:
 * the contended case of scripts/bench/redis.ts ((b): limit 10, 64 async callers in this process
 * loop acquire → hold 1 ms (setTimeout) → release) through a guard on createRedisStore, on one
 * redis-server this script starts on a free loopback port (test/harness/redis.ts).
 *
 *   npx tsx scripts/bench/redis-fairness.ts                  # 5 rounds of 3 s per mode
 *   npx tsx scripts/bench/redis-fairness.ts --rounds 3 --duration 2000
 *
 * Modes, interleaved round by round (A B C D A B C D …), each round a warm-up and a measured
 * window on a fresh group:
 *   fifo   no flow, no queue section: the code path of before fair queuing;
 *   flows  every caller names one of 8 flows (weights 1, 2 and 4), fifo discipline;
 *   codel  flows, and the codel discipline (target 5 ms, interval 100 ms);
 *   lifo   flows, and adaptive LIFO (same target and interval).
 * An op is one acquire (granted, then held and released; or, under codel, answered `queue-timeout`
 * at once: the share dropped is shown). Per mode, the median over rounds of: ops/s; Redis CPU per
 * op (INFO cpu); script calls and
 * script time per op and per call (INFO commandstats, FCALL + EVALSHA + EVAL, Lua-inner commands
 * included in the call's time); Redis commands per op (Lua-inner included); acquire wait p50/p99.
 * The ratios are each mode's against fifo in the same round, then the median. This is a
 * benchmark, not a test: it asserts nothing.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { createGuard, type AcquireOptions, type Guard } from "../../src/index.js";
import type { QueueOption } from "../../src/core/spec.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { startRedis } from "../../test/harness/redis.js";

const LIMIT = 10;
const CALLERS = 64;
const HOLD_MS = 1;
const FLOWS = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
const WEIGHTS: Record<string, number> = { f1: 2, f2: 4, f5: 2 };

const { values } = parseArgs({ options: { rounds: { type: "string" }, duration: { type: "string" } } });
const ROUNDS = Math.max(1, Number(values.rounds ?? 5));
const DURATION_MS = Math.max(500, Number(values.duration ?? 3000));
const WARMUP_MS = Math.min(1000, DURATION_MS / 2);

type Mode = "fifo" | "flows" | "codel" | "lifo";
const MODES: readonly Mode[] = ["fifo", "flows", "codel", "lifo"];

interface Run {
  ops: number;
  /** Acquires CoDel answered `queue-timeout`. */
  rejectedShare: number;
  opsPerSec: number;
  redisCpuUsPerOp: number;
  scriptCallsPerOp: number;
  scriptUsPerOp: number;
  scriptUsPerCall: number;
  commandsPerOp: number;
  waitP50Ms: number;
  waitP99Ms: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const server = await startRedis();
const admin = new Redis(server.url);

async function redisCpuUs(): Promise<number> {
  const info = await admin.info("cpu");
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, "m").exec(info)?.[1]);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1e6;
}

async function commandStats(): Promise<{ scriptCalls: number; scriptUs: number; commands: number }> {
  const info = await admin.info("commandstats");
  let scriptCalls = 0;
  let scriptUs = 0;
  let commands = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    const name = m[1]!;
    if (name === "info" || name.startsWith("config")) continue;
    // The store runs its Lua as Redis Functions (FCALL), or as scripts where Functions are unavailable.
    if (name === "fcall" || name === "evalsha" || name === "eval") {
      scriptCalls += Number(m[2]);
      scriptUs += Number(m[3]);
    } else {
      commands += Number(m[2]);
    }
  }
  return { scriptCalls, scriptUs, commands };
}

/** Acquires made (granted or answered `queue-timeout` by CoDel), and of those rejected. */
async function callers(guard: Guard, mode: Mode, ms: number, waits: number[] | undefined): Promise<{ ops: number; rejected: number }> {
  let ops = 0;
  let rejected = 0;
  const end = performance.now() + ms;
  const caller = async (i: number) => {
    const options: AcquireOptions = { scopes: ["global"], ...(mode === "fifo" ? {} : { flow: FLOWS[i % FLOWS.length]! }) };
    while (performance.now() < end) {
      const t0 = performance.now();
      const result = await guard.acquire(options);
      ops++;
      if (!result.ok) {
        // CoDel answers a ticket that waited its target in a standing queue at once.
        if (result.reason !== "queue-timeout" || mode !== "codel") throw new Error(`rejected: ${result.reason}`);
        rejected++;
        continue;
      }
      waits?.push(performance.now() - t0);
      await sleep(HOLD_MS);
      await result.lease.release();
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, (_, i) => caller(i)));
  return { ops, rejected };
}

async function run(mode: Mode, round: number): Promise<Run> {
  const redis = new Redis(server.url);
  const queue: QueueOption | undefined =
    mode === "fifo" ? undefined : { discipline: mode === "flows" ? "fifo" : mode, targetMs: 5, intervalMs: 100, flowWeights: WEIGHTS };
  const guard = createGuard({
    store: createRedisStore({ redis }),
    group: `fair-bench-${mode}-${round}`,
    limits: { global: LIMIT },
    defaults: { queueTimeoutMs: 30_000, leaseTtlMs: 30_000 },
    ...(queue ? { queue } : {}),
  });
  try {
    await callers(guard, mode, WARMUP_MS, undefined);
    await admin.config("RESETSTAT");
    const cpu0 = await redisCpuUs();
    const t0 = performance.now();
    const waits: number[] = [];
    const { ops, rejected } = await callers(guard, mode, DURATION_MS, waits);
    const elapsed = performance.now() - t0;
    const cpu = (await redisCpuUs()) - cpu0;
    const stats = await commandStats();
    waits.sort((a, b) => a - b);
    return {
      ops,
      rejectedShare: rejected / ops,
      opsPerSec: (ops / elapsed) * 1000,
      redisCpuUsPerOp: cpu / ops,
      scriptCallsPerOp: stats.scriptCalls / ops,
      scriptUsPerOp: stats.scriptUs / ops,
      scriptUsPerCall: stats.scriptUs / Math.max(1, stats.scriptCalls),
      commandsPerOp: stats.commands / ops,
      waitP50Ms: quantile(waits, 0.5),
      waitP99Ms: quantile(waits, 0.99),
    };
  } finally {
    await guard.close();
    redis.disconnect();
  }
}

try {
  const runs = new Map<Mode, Run[]>(MODES.map((m) => [m, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      process.stderr.write(`round ${round}/${ROUNDS} ${mode} … `);
      const r = await run(mode, round);
      runs.get(mode)!.push(r);
      process.stderr.write(`${Math.round(r.opsPerSec)} ops/s, Redis CPU ${r.redisCpuUsPerOp.toFixed(1)} µs/op\n`);
    }
    await admin.flushall();
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`\nslotgate on Redis, contended: limit ${LIMIT}, ${CALLERS} callers, hold ${HOLD_MS} ms; median of ${ROUNDS} rounds of ${DURATION_MS} ms\n`);
  const header = [
    "mode",
    "ops/s",
    "Redis CPU µs/op",
    "× fifo",
    "script calls/op",
    "script µs/op",
    "script µs/call",
    "× fifo",
    "cmds/op",
    "wait p50/p99 ms",
    "dropped",
  ];
  const rows: string[][] = [];
  for (const mode of MODES) {
    const rs = runs.get(mode)!;
    const fifo = runs.get("fifo")!;
    const cpuRatio = median(rs.map((r, i) => r.redisCpuUsPerOp / fifo[i]!.redisCpuUsPerOp));
    const callRatio = median(rs.map((r, i) => r.scriptUsPerCall / fifo[i]!.scriptUsPerCall));
    rows.push([
      mode,
      f(median(rs.map((r) => r.opsPerSec)), 0),
      f(median(rs.map((r) => r.redisCpuUsPerOp))),
      f(cpuRatio, 2),
      f(median(rs.map((r) => r.scriptCallsPerOp)), 2),
      f(median(rs.map((r) => r.scriptUsPerOp))),
      f(median(rs.map((r) => r.scriptUsPerCall))),
      f(callRatio, 2),
      f(median(rs.map((r) => r.commandsPerOp))),
      `${f(median(rs.map((r) => r.waitP50Ms)))}/${f(median(rs.map((r) => r.waitP99Ms)))}`,
      `${f(100 * median(rs.map((r) => r.rejectedShare)))} %`,
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  console.log("\n× fifo: the mode's figure over fifo's in the same round, median over rounds (the cost of fairness per op: target ≤ 1.2×).");
} finally {
  admin.disconnect();
  await server.stop();
}
