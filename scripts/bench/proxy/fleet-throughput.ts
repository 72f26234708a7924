/**
 * Fleet throughput: three slotgate nodes on one Redis against three plain Node proxies, all in
 * front of the same fast origin and loaded at once (one wrk per replica). Limits sit far above the
 * load, so what is measured is the cost of the shared store, not queueing: total req/s of each
 * fleet, and redis-server's CPU and commands per guarded request.
 *
 * The six proxies are started once and stay up for all rounds; in every round both fleets run one
 * after the other, the order alternating, so drift in the machine's load falls on both. Only the
 * fleet being measured is loaded; the other one idles.
 *
 * On a 2-core machine 3 proxies + 3 wrk + redis-server (+ the origin) oversubscribe the CPUs: the
 * absolute req/s is what the machine has left, not what a fleet could serve. Both fleets run under
 * the same oversubscription, so their ratio still compares like with like.
 */
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { sendCommand } from "../../../test/harness/redis.js";
import { cpuTimeMs, type Child } from "./procs.js";
import { median, redisCommandStats, redisCpuMs, type RedisCommandStat } from "./stats.js";
import { errorCount, runWrk, type WrkResult } from "./wrk.js";

export type FleetKind = "plain" | "slotgate-redis";

export interface FleetThroughputOptions {
  replicas: number;
  rounds: number;
  durationS: number;
  warmupS: number;
  /** wrk -c per replica (wrk -t1: one wrk thread per replica). */
  connectionsPerReplica: number;
  redisPort: number;
  /** Starts one replica of a fleet; it must answer on 127.0.0.1:port when this resolves. */
  start(kind: FleetKind, index: number): Promise<{ child: Child; port: number }>;
  /** Called after each measured window, for progress output. */
  onRound?(r: FleetThroughputRound): void;
}

export interface FleetThroughputRound {
  kind: FleetKind;
  round: number;
  /** 0: ran first in its round, 1: second. */
  slot: number;
  /** Sum over the replicas of wrk's req/s. */
  rps: number;
  requests: number;
  /** Median of the replicas' p50; the worst replica's p99. */
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU time of all the fleet's proxy processes (from /proc) per request, in µs. */
  proxyCpuUsPerReq: number;
  /** redis-server's CPU (INFO cpu) per request over the window, in µs; measured for both fleets (plain: the idle floor). */
  redisCpuUsPerReq: number;
  /** Commands Redis ran per request over the window (INFO commandstats, the benchmark's own INFO / CONFIG left out). */
  redisCommandsPerReq: number;
  redisCommands: RedisCommandStat[];
  perReplica: Array<{ rps: number; p50Ms: number; p99Ms: number; errors: number }>;
  loadAvg1: number;
}

export interface FleetThroughputSummary {
  kind: FleetKind;
  replicas: number;
  rps: { median: number; min: number; max: number };
  p50Ms: number;
  p99Ms: number;
  proxyCpuUsPerReq: number;
  redisCpuUsPerReq: number;
  redisCommandsPerReq: number;
  errors: number;
}

export interface FleetThroughputResult {
  rounds: FleetThroughputRound[];
  summaries: Record<FleetKind, FleetThroughputSummary>;
  /** slotgate fleet req/s / plain fleet req/s, per round (both measured within seconds of each other). */
  ratioPerRound: number[];
  /** Of the medians. */
  ratio: number;
}

const KINDS: readonly FleetKind[] = ["plain", "slotgate-redis"];

export async function runFleetThroughput(o: FleetThroughputOptions): Promise<FleetThroughputResult> {
  const fleets = new Map<FleetKind, Array<{ child: Child; port: number }>>();
  try {
    for (const kind of KINDS) {
      const replicas: Array<{ child: Child; port: number }> = [];
      fleets.set(kind, replicas);
      for (let i = 0; i < o.replicas; i++) replicas.push(await o.start(kind, i));
    }
    const rounds: FleetThroughputRound[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      const order = round % 2 === 1 ? KINDS : [...KINDS].reverse();
      for (const [slot, kind] of order.entries()) {
        const r = await measureFleet(o, kind, fleets.get(kind)!, round, slot);
        rounds.push(r);
        o.onRound?.(r);
      }
    }
    const summaries = Object.fromEntries(
      KINDS.map((k) => [
        k,
        summarize(
          k,
          o.replicas,
          rounds.filter((r) => r.kind === k),
        ),
      ]),
    ) as Record<FleetKind, FleetThroughputSummary>;
    const ratioPerRound = Array.from({ length: o.rounds }, (_, i) => {
      const at = (k: FleetKind) => rounds.find((r) => r.kind === k && r.round === i + 1)!.rps;
      return at("slotgate-redis") / at("plain");
    });
    return { rounds, summaries, ratioPerRound, ratio: summaries["slotgate-redis"].rps.median / summaries.plain.rps.median };
  } finally {
    await Promise.all([...fleets.values()].flat().map((r) => r.child.stop()));
  }
}

/** All replicas of one fleet under wrk at once: a warm-up, then the measured window. */
async function loadAll(replicas: ReadonlyArray<{ port: number }>, connections: number, durationS: number): Promise<WrkResult[]> {
  return Promise.all(replicas.map((r) => runWrk({ url: `http://127.0.0.1:${r.port}/`, threads: 1, connections, durationS, timeoutS: 10 })));
}

async function measureFleet(
  o: FleetThroughputOptions,
  kind: FleetKind,
  replicas: ReadonlyArray<{ child: Child; port: number }>,
  round: number,
  slot: number,
): Promise<FleetThroughputRound> {
  await loadAll(replicas, o.connectionsPerReplica, o.warmupS);
  await sleep(200);
  await sendCommand(o.redisPort, ["CONFIG", "RESETSTAT"]);
  const proxyCpu0 = replicas.reduce((n, r) => n + cpuTimeMs(r.child.pid), 0);
  const redisCpu0 = await redisCpuMs(o.redisPort);
  const results = await loadAll(replicas, o.connectionsPerReplica, o.durationS);
  const redisCpu1 = await redisCpuMs(o.redisPort);
  const proxyCpu1 = replicas.reduce((n, r) => n + cpuTimeMs(r.child.pid), 0);
  const requests = results.reduce((n, w) => n + w.requests, 0);
  const redisCommands = await redisCommandStats(o.redisPort, requests);
  for (const r of replicas) if (r.child.hasExited()) throw new Error(`${r.child.name} exited during the run:\n${r.child.output().slice(-2000)}`);
  const perReq = (ms: number) => (ms * 1000) / Math.max(1, requests);
  return {
    kind,
    round,
    slot,
    rps: results.reduce((n, w) => n + w.rps, 0),
    requests,
    p50Ms: median(results.map((w) => w.p50Ms)),
    p99Ms: Math.max(...results.map((w) => w.p99Ms)),
    errors: results.reduce((n, w) => n + errorCount(w), 0),
    proxyCpuUsPerReq: perReq(proxyCpu1 - proxyCpu0),
    redisCpuUsPerReq: perReq(redisCpu1 - redisCpu0),
    redisCommandsPerReq: redisCommands.reduce((n, c) => n + c.calls, 0) / Math.max(1, requests),
    redisCommands,
    perReplica: results.map((w) => ({ rps: w.rps, p50Ms: w.p50Ms, p99Ms: w.p99Ms, errors: errorCount(w) })),
    loadAvg1: os.loadavg()[0]!,
  };
}

function summarize(kind: FleetKind, replicas: number, rounds: FleetThroughputRound[]): FleetThroughputSummary {
  const rps = rounds.map((r) => r.rps);
  const med = (pick: (r: FleetThroughputRound) => number) => median(rounds.map(pick));
  return {
    kind,
    replicas,
    rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
    p50Ms: med((r) => r.p50Ms),
    p99Ms: med((r) => r.p99Ms),
    proxyCpuUsPerReq: med((r) => r.proxyCpuUsPerReq),
    redisCpuUsPerReq: med((r) => r.redisCpuUsPerReq),
    redisCommandsPerReq: med((r) => r.redisCommandsPerReq),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
  };
}
