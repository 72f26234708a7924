/**
 * The conformance cases of the queue's fairness and overload rules (docs/semantics.md: rule F,
 * fair queuing by flow; rule D, the disciplines; rule E, early rejection), run by
 * {@link runConformance} on every store through the public guard API. Durations are multiples of
 * the target's unit, as in the rest of the suite; every loop is bounded in steps; the seeded
 * shuffles print their seed with any failure.
 */
import { expect } from "vitest";
import type { AcquireResult, Guard, GuardOptions, GuardStats, Lease } from "../../src/index.js";
import { Random, testSeeds } from "../support/random.js";
import type { ConformanceTarget } from "./store.case.js";

export interface QueueCaseContext {
  target: ConformanceTarget;
  test: (name: string, fn: () => Promise<void>) => void;
  guardWith: (options: Omit<GuardOptions, "store" | "group">) => Guard;
}

type Pending = { flow: string | undefined; promise: Promise<AcquireResult>; result?: AcquireResult };

/** Long enough that no lease of a case expires or renews while the case runs. */
const LEASE_TTL_UNITS = 10_000;

function pending(guard: Guard, u: number, scopes: string[], queueTimeoutMs: number, flow?: string): Pending {
  const p: Pending = { flow, promise: guard.acquire({ scopes, queueTimeoutMs, leaseTtlMs: LEASE_TTL_UNITS * u, ...(flow === undefined ? {} : { flow }) }) };
  void p.promise.then((r) => (p.result = r));
  return p;
}

/** Removes and returns the entries of `list` that have an answer. */
function answered(list: Pending[]): Pending[] {
  const done = list.filter((p) => p.result !== undefined);
  for (const p of done) list.splice(list.indexOf(p), 1);
  return done;
}

function leaseOf(r: AcquireResult | undefined): Lease {
  if (!r?.ok) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
  return r.lease;
}

/** Jain's fairness index of the grants per flow, each divided by the flow's weight: 1 is perfectly fair. */
export function jainIndex(normalised: number[]): number {
  const sum = normalised.reduce((a, b) => a + b, 0);
  const squares = normalised.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (normalised.length * squares);
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

export function queueCases({ target, test, guardWith }: QueueCaseContext): void {
  const u = target.unitMs;
  const [seed] = testSeeds([1301]);
  const replay = `seed ${seed} (replay: SLOTGATE_SEED=${seed})`;

  /**
   * Limit 4, every flow backlogged throughout: `waiting` tickets per flow, queued in a seeded
   * order; each round releases the 4 holders, and each granted client queues again at once in
   * its flow. Returns the grants per flow over `rounds` rounds.
   */
  async function fairRun(waiting: Record<string, number>, weights: Record<string, number>, rounds: number): Promise<Record<string, number>> {
    const g = guardWith({ limits: { global: 4 }, queue: { flowWeights: weights } });
    let holders: Lease[] = [];
    for (let i = 0; i < 4; i++) holders.push(leaseOf(await g.acquire({ scopes: ["global"] })));
    const flows = new Random(seed!).shuffle(Object.entries(waiting).flatMap(([flow, n]) => Array.from({ length: n }, () => flow)));
    const queue: Pending[] = [];
    for (const flow of flows) {
      queue.push(pending(g, u, ["global"], 1000 * u, flow));
      // One at a time, so that arrival order is the shuffled order on every store.
      await target.settle();
    }
    const grants: Record<string, number> = Object.fromEntries(Object.keys(waiting).map((f) => [f, 0]));
    for (let round = 0; round < rounds; round++) {
      await Promise.all(holders.map((l) => l.release()));
      await target.settle();
      const served = answered(queue);
      expect(served.length, `round ${round}: grants after 4 releases, ${replay}`).toBe(4);
      holders = served.map((p) => leaseOf(p.result));
      for (const p of served) {
        grants[p.flow!]!++;
        queue.push(pending(g, u, ["global"], 1000 * u, p.flow));
      }
      await target.settle();
    }
    return grants;
  }

  function expectFairShares(grants: Record<string, number>, weights: Record<string, number>): void {
    const flows = Object.keys(grants);
    const total = flows.reduce((a, f) => a + grants[f]!, 0);
    const weightSum = flows.reduce((a, f) => a + (weights[f] ?? 1), 0);
    for (const f of flows) {
      const share = grants[f]! / total;
      const fair = (weights[f] ?? 1) / weightSum;
      expect(
        Math.abs(share - fair) / fair,
        `flow ${f}: share ${share.toFixed(3)} vs weighted ${fair.toFixed(3)}, grants ${JSON.stringify(grants)}, ${replay}`,
      ).toBeLessThanOrEqual(0.1);
    }
    const jain = jainIndex(flows.map((f) => grants[f]! / (weights[f] ?? 1)));
    expect(jain, `Jain's index, grants ${JSON.stringify(grants)}, ${replay}`).toBeGreaterThanOrEqual(0.95);
  }

  test("rule F: three backlogged flows, one with 10× the waiting requests, share limit 4 equally", async () => {
    const grants = await fairRun({ heavy: 30, "light-a": 3, "light-b": 3 }, {}, 15);
    expectFairShares(grants, {});
  });

  test("rule F: weighted flows get their weighted share of grants", async () => {
    const weights = { gold: 3, silver: 2 };
    const grants = await fairRun({ bronze: 40, silver: 4, gold: 4 }, weights, 15);
    expectFairShares(grants, weights);
  });

  /**
   * Limit 2, each grant held 2 units, one arrival every half unit: twice the capacity, for
   * `units` units. Returns the waits of the grants (store clock) and how many were answered
   * `queue-timeout` early.
   */
  async function overload(queue: GuardOptions["queue"], units: number): Promise<{ waits: number[]; timedOut: number; stats: GuardStats }> {
    const g = guardWith({ limits: { global: 2 }, ...(queue ? { queue } : {}) });
    const waiting: Pending[] = [];
    const held: { lease: Lease; until: number }[] = [];
    const waits: number[] = [];
    let timedOut = 0;
    for (let step = 0; step < 2 * units; step++) {
      waiting.push(pending(g, u, ["global"], 1000 * u));
      await target.advance(u / 2);
      for (const p of answered(waiting)) {
        const r = p.result!;
        if (r.ok) {
          waits.push(r.lease.waitedMs);
          held.push({ lease: r.lease, until: step + 4 });
        } else {
          expect(r.reason).toBe("queue-timeout");
          timedOut++;
        }
      }
      const due = held.filter((h) => h.until <= step);
      for (const h of due) held.splice(held.indexOf(h), 1);
      await Promise.all(due.map((h) => h.lease.release()));
    }
    return { waits, timedOut, stats: await g.stats() };
  }

  test("rule D: codel under sustained 2× overload keeps the wait of granted requests near the target", async () => {
    const codel = { discipline: "codel" as const, targetMs: u, intervalMs: 4 * u };
    const { waits, timedOut, stats } = await overload(codel, 40);
    const fifo = await overload({ discipline: "fifo" }, 40);
    const figure = `codel waits p50 ${quantile(waits, 0.5)} p90 ${quantile(waits, 0.9)} max ${Math.max(...waits)} ms (${waits.length} granted, ${timedOut} dropped); fifo p50 ${quantile(fifo.waits, 0.5)} p90 ${quantile(fifo.waits, 0.9)} max ${Math.max(...fifo.waits)} ms`;
    // Standing needs one interval above the target; the drops then keep every wait under about
    // target + interval, where fifo's grow with the backlog (about 20 units by the end).
    expect(quantile(waits, 0.9), figure).toBeLessThanOrEqual(codel.intervalMs + 3 * u);
    expect(Math.max(...fifo.waits), figure).toBeGreaterThan(2 * (codel.intervalMs + 3 * u));
    expect(timedOut, figure).toBeGreaterThan(0);
    expect(fifo.timedOut, figure).toBe(0);
    // Every queue-timeout answered was a drop (a drop may still be on its way to its waiter).
    const s = stats.scopes.global!;
    expect(s.codel_dropped, figure).toBeGreaterThanOrEqual(timedOut);
    expect(s.queue_timeouts).toBe(0);
  });

  test("rule D: adaptive lifo serves the newest waiters first while the queue stands, fifo before", async () => {
    const g = guardWith({ limits: { global: 1 }, queue: { discipline: "lifo", targetMs: u, intervalMs: 3 * u } });
    let holder = leaseOf(await g.acquire({ scopes: ["global"] }));
    const named = new Map<Pending, string>();
    const queue: Pending[] = [];
    const add = (name: string) => {
      const p = pending(g, u, ["global"], 1000 * u);
      named.set(p, name);
      queue.push(p);
    };
    for (const name of ["W1", "W2", "W3"]) add(name);
    await target.advance(2 * u);
    const order: string[] = [];
    const handOff = async () => {
      await holder.release();
      await target.settle();
      const served = answered(queue);
      expect(served.map((p) => named.get(p))).toHaveLength(1);
      order.push(named.get(served[0]!)!);
      holder = leaseOf(served[0]!.result);
    };
    await handOff(); // not standing yet: the oldest, W1, after 2 units (≥ the target): above since now
    for (const name of ["X1", "X2", "X3"]) {
      add(name);
      await target.settle();
      await target.advance(u);
    }
    await target.advance(2 * u); // now 5 units after W1's grant: standing
    for (let i = 0; i < 5; i++) await handOff();
    expect(order).toEqual(["W1", "X3", "X2", "X1", "W3", "W2"]);
    const s = await g.stats();
    expect(s.queue).toEqual({ discipline: "lifo", standing: false }); // the queue is empty
  });

  test("rule E: behind a standing queue, an early acquire with a short timeout is rejected at once with retryAfterMs near its wait", async () => {
    const g = guardWith({ limits: { global: 1 } });
    let holder = leaseOf(await g.acquire({ scopes: ["global"] }));
    const queue: Pending[] = [];
    for (let i = 0; i < 4; i++) queue.push(pending(g, u, ["global"], 1000 * u));
    await target.settle();
    const handOff = async (refill: boolean) => {
      await target.advance(2 * u);
      await holder.release();
      await target.settle();
      const served = answered(queue);
      expect(served).toHaveLength(1);
      holder = leaseOf(served[0]!.result);
      if (refill) queue.push(pending(g, u, ["global"], 1000 * u));
      await target.settle();
    };
    // A steady hand-off every ~2 units, 4 tickets always waiting.
    for (let i = 0; i < 6; i++) await handOff(true);
    const started = Date.now();
    const early = await g.acquire({ scopes: ["global"], queueTimeoutMs: 2 * u, queueTimeoutEarly: true });
    const took = Date.now() - started;
    expect(early).toMatchObject({ ok: false, reason: "queue-timeout" });
    expect(took).toBeLessThan(u);
    const retryAfterMs = (early as { retryAfterMs: number }).retryAfterMs;
    // The same acquire without `early`, at the same place in the queue: the wait it would have had.
    const twin = pending(g, u, ["global"], 1000 * u);
    queue.push(twin);
    for (let i = 0; i < 10 && twin.result === undefined; i++) await handOff(false);
    const waited = leaseOf(twin.result).waitedMs;
    const figure = `retryAfterMs ${retryAfterMs}, wait it would have had ${waited} ms`;
    expect(retryAfterMs, figure).toBeGreaterThanOrEqual(waited / 2);
    expect(retryAfterMs, figure).toBeLessThanOrEqual(waited * 2);
    expect((await g.stats()).scopes.global).toMatchObject({ rejected_early: 1, queue_timeouts: 0 });
  });
}
