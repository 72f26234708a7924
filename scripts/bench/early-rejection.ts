/**
 * How often early rejection (rule E, docs/semantics.md) is wrong, on a workload whose hand-off
 * rate changes under it. Deterministic: GroupState on a simulated clock, seeded.
 *
 *   npx tsx scripts/bench/early-rejection.ts [--seed N] [--timeouts 100,250,500,1000]
 *
 * Each decision is checked against what happened, or would have happened, to that ticket:
 * - a miss: admitted to the queue, but the ticket then timed out;
 * - a wrong rejection: rejected early, but it would have been granted within its queue timeout.
 *   The group here is one FIFO scope, so a rejected ticket's wait is known exactly without it:
 *   it would have had the first slot freed after every ticket queued ahead of it had left the
 *   queue (granted or timed out), and its absence changes nothing for those ahead.
 * Limit 4, no maxqueue, about 1.3× overload; holds are uniform in a range that changes every 5 s
 * (normal, then twice as fast, then twice as slow), queue timeouts drawn from
 * `--timeouts` (ms).
 */
import { parseArgs } from "node:util";
import { buildGroupSpec } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import type { ChainRequest } from "../../src/core/store.js";

const { values } = parseArgs({ options: { seed: { type: "string", default: "1" }, timeouts: { type: "string", default: "100,250,500,1000" } } });
const seed = Number(values.seed);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`);
const TIMEOUTS = values.timeouts.split(",").map(Number);
if (TIMEOUTS.some((t) => !Number.isSafeInteger(t) || t <= 0))
  throw new Error(`--timeouts: expected positive integers (ms) separated by commas, got ${values.timeouts}`);

/** mulberry32: small, seeded, good enough for a workload. */
function random(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PHASE_MS = 5_000;
/** Hold ranges per phase (ms): mean 30, then 15, then 60. */
const HOLDS: [number, number][] = [
  [10, 50],
  [5, 25],
  [20, 100],
];
const MEAN_GAP_MS = 5.8; // 4 slots / 30 ms mean hold = 133/s; one arrival per 5.8 ms = 172/s

/** A ticket rejected early, followed until it would have been served or timed out. */
interface Phantom {
  deadline: number;
  estimate: number;
  since: number;
  /** Tickets queued ahead of it that are still in the queue. */
  ahead: Set<string>;
}

const rnd = random(seed);
let leaseNo = 0;
const s = new GroupState(buildGroupSpec({ g: 4 }, undefined), { newId: () => `L${++leaseNo}`, recordEnded: false });
const releases: { at: number; lease: string }[] = [];
const queued = new Set<string>();
let phantoms: Phantom[] = [];
const outcome = { wrongRejections: 0, rightRejections: 0, misses: 0, rightAdmissions: 0, immediate: 0 };
const ratios: number[] = [];

const holdAt = (now: number) => {
  const [lo, hi] = HOLDS[Math.min(HOLDS.length - 1, Math.floor(now / PHASE_MS))]!;
  return lo + rnd() * (hi - lo);
};
const left = (id: string) => {
  queued.delete(id);
  for (const p of phantoms) p.ahead.delete(id);
};
const settle = (now: number) => {
  const e = s.drainEffects();
  for (const g of e.granted) {
    releases.push({ at: now + holdAt(now), lease: g.lease.id });
    left(g.ticketId);
    outcome.rightAdmissions++;
  }
  for (const id of e.timedOut) {
    left(id);
    outcome.misses++;
  }
};
/** A slot is freed at `now`: phantoms whose tickets ahead have all left would take it. */
const slotFreed = (now: number) => {
  phantoms = phantoms.filter((p) => {
    if (p.deadline <= now) {
      outcome.rightRejections++;
      return false;
    }
    // Tickets ahead that leave in this very release do not count: the slot is theirs.
    if (p.ahead.size > 0) return true;
    outcome.wrongRejections++;
    ratios.push(p.estimate / Math.max(1, now - p.since));
    return false;
  });
};

const RUN_MS = PHASE_MS * HOLDS.length;
let now = 0;
let nextArrival = 0;
let n = 0;
// Bounded: arrivals stop at RUN_MS, and every lease and ticket then ends within its hold or timeout.
while (nextArrival < RUN_MS || releases.length > 0 || s.ticketCount > 0) {
  releases.sort((a, b) => a.at - b.at);
  const due = [releases[0]?.at, s.nextDeadline(), nextArrival < RUN_MS ? nextArrival : undefined].filter((t): t is number => t !== undefined);
  now = Math.max(now, Math.min(...due));
  s.tick(now);
  settle(now);
  while (releases.length > 0 && releases[0]!.at <= now) {
    slotFreed(now);
    s.release(releases.shift()!.lease, now);
    settle(now);
  }
  if (nextArrival <= now && nextArrival < RUN_MS) {
    const timeoutMs = TIMEOUTS[Math.floor(rnd() * TIMEOUTS.length)]!;
    const req: ChainRequest = { scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: timeoutMs, leaseTtlMs: 60_000, early: true };
    const id = `T${++n}`;
    const d = s.acquire(req, now, id);
    if (d.status === "granted") {
      outcome.immediate++;
      releases.push({ at: now + holdAt(now), lease: d.lease.id });
    } else if (d.status === "rejected") {
      phantoms.push({ deadline: now + timeoutMs, estimate: d.retryAfterMs ?? 0, since: now, ahead: new Set(queued) });
    } else {
      queued.add(id);
    }
    settle(now);
    nextArrival += -Math.log(1 - rnd()) * MEAN_GAP_MS;
  }
}

// Phantoms still open at the end never saw a slot before their deadline.
outcome.rightRejections += phantoms.length;
const rejected = outcome.wrongRejections + outcome.rightRejections;
const admitted = outcome.misses + outcome.rightAdmissions;
const pct = (a: number, b: number) => (b === 0 ? "–" : `${((100 * a) / b).toFixed(1)}%`);
ratios.sort((a, b) => a - b);
const q = (p: number) => (ratios.length === 0 ? "–" : ratios[Math.min(ratios.length - 1, Math.floor(p * ratios.length))]!.toFixed(2));
console.log(
  `seed ${seed}: ${n} arrivals over ${RUN_MS / 1000} s, limit 4, ~1.3× overload, hold phases ${HOLDS.map(([a, b]) => `${a}–${b}`).join(", ")} ms, queue timeouts ${TIMEOUTS.join("/")} ms`,
);
console.log(`granted at once: ${outcome.immediate}`);
console.log(`rejected early: ${rejected}; wrongly (would have been granted in time): ${outcome.wrongRejections} (${pct(outcome.wrongRejections, rejected)})`);
console.log(`admitted to the queue: ${admitted}; missed (timed out anyway): ${outcome.misses} (${pct(outcome.misses, admitted)})`);
console.log(`wrong rejections, retryAfterMs ÷ real wait: p10 ${q(0.1)}, p50 ${q(0.5)}, p90 ${q(0.9)}`);
