/**
 * Fairness benchmark: what fair queuing and the queue disciplines cost per operation of the state
 * machine (GroupState, as the memory store and the Durable Object run it), against plain FIFO.
 *
 *   npx tsx scripts/bench/fairness.ts            # 5 rounds of 200,000 operations per variant
 *   npx tsx scripts/bench/fairness.ts --quick    # 3 rounds of 50,000
 *
 * Two loops, each variant on a fresh state, the variants interleaved round by round:
 *  - hand-off: limit 4, a standing queue of 1,000 tickets; each operation releases one lease (its
 *    slot goes to the first ticket in order) and queues a new acquire. Variants: fifo without
 *    flows; fifo with 3 flows (one with 10× the tickets of the others); the same with 1,000
 *    flows; codel and lifo with 3 flows (their queue stands throughout: the clock is set so that
 *    every wait is above the target, and no ticket reaches it under codel).
 *  - immediate: acquire + release with room (fair queuing touches none of it): without and with a flow.
 * Reported: ns per operation (median of the rounds) and its ratio to the fifo variant without flows.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { buildGroupSpec, type QueueOption } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import type { ChainRequest } from "../../src/core/store.js";

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false } }, strict: true });
const ROUNDS = args.quick ? 3 : 5;
const OPS = args.quick ? 50_000 : 200_000;
const DEPTH = 1_000;
const LIMIT = 4;

interface Variant {
  name: string;
  queue?: QueueOption;
  /** The flow of the i-th acquire, or undefined. */
  flow: (i: number) => string | undefined;
}

const threeFlows = (i: number) => (i % 12 < 10 ? "heavy" : i % 12 === 10 ? "light-a" : "light-b");
const HANDOFF: Variant[] = [
  { name: "fifo, no flows", flow: () => undefined },
  { name: "fifo, 3 flows (10:1:1)", flow: threeFlows },
  { name: "fifo, 1,000 flows", flow: (i) => `tenant-${i % 1000}` },
  // Target above any wait of the loop (the clock advances 1 ms per operation, waits ~250 ms): under
  // codel nothing is dropped, under lifo the queue never stands; these measure the bookkeeping.
  { name: "codel, 3 flows (bookkeeping)", queue: { discipline: "codel", targetMs: 60_000, intervalMs: 100 }, flow: threeFlows },
  { name: "lifo, 3 flows (not standing)", queue: { discipline: "lifo", targetMs: 60_000, intervalMs: 100 }, flow: threeFlows },
  // Target 1: every wait is above it, so the lifo queue stands and is served newest-first.
  { name: "lifo, 3 flows (standing)", queue: { discipline: "lifo", targetMs: 1, intervalMs: 1 }, flow: threeFlows },
];

function request(flow: string | undefined): ChainRequest {
  const r: ChainRequest = { scopes: ["g"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 1e9, leaseTtlMs: 1e9 };
  if (flow !== undefined) r.flow = flow;
  return r;
}

/** ns per hand-off operation (release that grants + a new queued acquire). */
function handoff(v: Variant): number {
  let id = 0;
  const s = new GroupState(buildGroupSpec({ g: LIMIT }, undefined, v.queue), { newId: () => `L${++id}`, recordEnded: false });
  const held: string[] = [];
  let now = 0;
  for (let i = 0; i < LIMIT; i++) {
    const d = s.acquire(request(v.flow(i)), now);
    if (d.status !== "granted") throw new Error("setup");
    held.push(d.lease.id);
  }
  for (let i = 0; i < DEPTH; i++) s.acquire(request(v.flow(i)), now, `T${i}`);
  let head = 0;
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) {
    now++;
    s.release(held[head]!, now);
    const { granted } = s.drainEffects();
    if (granted.length !== 1) throw new Error(`${v.name}: ${granted.length} grants at op ${i}`);
    held[head] = granted[0]!.lease.id;
    head = (head + 1) % LIMIT;
    s.acquire(request(v.flow(i + DEPTH)), now, `T${i + DEPTH}`);
  }
  return ((performance.now() - t0) * 1e6) / OPS;
}

/** ns per immediate acquire + release. */
function immediate(flow: string | undefined): number {
  let id = 0;
  const s = new GroupState(buildGroupSpec({ g: LIMIT }, undefined), { newId: () => `L${++id}`, recordEnded: false });
  const r = request(flow);
  const t0 = performance.now();
  for (let i = 0; i < OPS; i++) {
    const d = s.acquire(r, i);
    if (d.status !== "granted") throw new Error("immediate: not granted");
    s.release(d.lease.id, i);
  }
  return ((performance.now() - t0) * 1e6) / OPS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = new Map<string, number[]>();
const add = (name: string, ns: number) => rows.set(name, [...(rows.get(name) ?? []), ns]);
// Warm-up round, not counted.
for (const v of HANDOFF) handoff(v);
immediate(undefined);
immediate("tenant");
for (let r = 0; r < ROUNDS; r++) {
  for (const v of HANDOFF) add(`hand-off: ${v.name}`, handoff(v));
  add("immediate: no flow", immediate(undefined));
  add("immediate: with a flow", immediate("tenant"));
}
const base = median(rows.get(`hand-off: ${HANDOFF[0]!.name}`)!);
const baseImmediate = median(rows.get("immediate: no flow")!);
console.log(`GroupState, limit ${LIMIT}, queue depth ${DEPTH}, ${OPS} operations × ${ROUNDS} rounds (median)`);
console.log("| loop | ns/op | × fifo without flows |");
console.log("|---|---:|---:|");
for (const [name, xs] of rows) {
  const m = median(xs);
  console.log(`| ${name} | ${m.toFixed(0)} | ${(m / (name.startsWith("immediate") ? baseImmediate : base)).toFixed(2)} |`);
}
