/**
 * What each queue discipline does to the wait distribution under sustained overload: the workload
 * of the conformance case "codel under sustained 2× overload", run longer on GroupState with a
 * simulated clock (deterministic, so the figures in docs/semantics.md can be reproduced exactly).
 *
 *   npx tsx scripts/bench/disciplines.ts
 *
 * Limit 2; every grant is held 20 ms; one acquire every 5 ms (twice the capacity) for 10 s; queue
 * timeout 2 s; codel and lifo with target 10 ms and interval 40 ms (the case's unit is 10 ms).
 * Reported per discipline: how many were granted, answered queue-timeout (timed out or dropped),
 * and the waits of the granted ones.
 */
import { buildGroupSpec, type QueueOption } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";

const HOLD_MS = 20;
const EVERY_MS = 5;
const RUN_MS = 10_000;
const QUEUE_TIMEOUT_MS = 2_000;

function simulate(queue: QueueOption): { granted: number; timedOut: number; waits: number[] } {
  let id = 0;
  const s = new GroupState(buildGroupSpec({ g: 2 }, undefined, queue), { newId: () => `L${++id}`, recordEnded: false });
  const releases: { at: number; lease: string }[] = [];
  const waits: number[] = [];
  let timedOut = 0;
  const take = (lease: string, at: number, waited: number) => {
    waits.push(waited);
    releases.push({ at: at + HOLD_MS, lease });
  };
  const collect = (now: number) => {
    const e = s.drainEffects();
    for (const g of e.granted) take(g.lease.id, now, g.lease.waitedMs);
    timedOut += e.timedOut.length;
  };
  // Events in time order: arrivals every EVERY_MS, releases when due, the state's own deadlines.
  let now = 0;
  let nextArrival = 0;
  let n = 0;
  while (nextArrival < RUN_MS || releases.length > 0 || s.ticketCount > 0) {
    releases.sort((a, b) => a.at - b.at);
    const candidates = [releases[0]?.at, s.nextDeadline(), nextArrival < RUN_MS ? nextArrival : undefined].filter((t): t is number => t !== undefined);
    now = Math.max(now, Math.min(...candidates));
    s.tick(now);
    collect(now);
    while (releases.length > 0 && releases[0]!.at <= now) {
      s.release(releases.shift()!.lease, now);
      collect(now);
    }
    if (nextArrival <= now && nextArrival < RUN_MS) {
      const d = s.acquire({ scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: QUEUE_TIMEOUT_MS, leaseTtlMs: 60_000 }, now, `T${++n}`);
      if (d.status === "granted") take(d.lease.id, now, 0);
      nextArrival += EVERY_MS;
    }
  }
  return { granted: waits.length, timedOut, waits };
}

const q = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
};

console.log(`limit 2, hold ${HOLD_MS} ms, one acquire every ${EVERY_MS} ms for ${RUN_MS / 1000} s (2× overload), queue timeout ${QUEUE_TIMEOUT_MS} ms`);
console.log("| discipline | granted | queue-timeout | wait p50 | p90 | p99 | max (ms) |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const [name, queue] of [
  ["fifo", { discipline: "fifo" }],
  ["codel (target 10, interval 40)", { discipline: "codel", targetMs: 10, intervalMs: 40 }],
  ["lifo (target 10, interval 40)", { discipline: "lifo", targetMs: 10, intervalMs: 40 }],
] as const) {
  const r = simulate(queue);
  console.log(`| ${name} | ${r.granted} | ${r.timedOut} | ${q(r.waits, 0.5)} | ${q(r.waits, 0.9)} | ${q(r.waits, 0.99)} | ${Math.max(...r.waits)} |`);
}
