// Shared by the Redis test files (not a test file itself).
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
import { afterEach, expect } from "vitest";
import type { AcquireOptions, AcquireResult, Guard, GuardEvent, GuardStats, Lease } from "../../src/index.js";
import type { RedisClusterProcess } from "../harness/redis.js";

/**
 * Timing of the conformance suite on real time, chosen for a loaded 2-core machine running
 * several test files at once. `settle` must cover a script call plus the pub/sub wake-up it
 * triggers (normally a few ms), yet stay well below the suite's "not yet" windows (rule 9 checks
 * at 3 units + settle that a 6-unit lease has not expired: 260 ms against 360 ms here).
 */
export const REAL_TIME = {
  unitMs: 60,
  advance: (ms: number) => sleep(ms),
  settle: () => sleep(80),
} as const;

/** A Cluster client that is ready (slots known), so the first command does not fail fast. */
export async function readyCluster(cluster: RedisClusterProcess): Promise<Cluster> {
  const redis = new Cluster([...cluster.nodes]);
  await redis.ping();
  if (redis.status !== "ready") await new Promise((resolve) => redis.once("ready", resolve));
  return redis;
}

export function granted(r: AcquireResult): Lease {
  if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
  return r.lease;
}

/** Holders the test knows of, and the most it ever saw at once. */
export class Holders {
  now = 0;
  max = 0;
  /** The fences of the leases take() was granted, in order. */
  readonly fences: number[] = [];
  /** Acquires on `guard` (queueing by default: it must be granted), holds the lease and records its fence. */
  async take(guard: Guard, options: Omit<AcquireOptions, "scopes"> = {}): Promise<Lease> {
    const lease = this.hold(granted(await guard.acquire({ scopes: ["global"], ...options })));
    this.fences.push(lease.fence);
    return lease;
  }
  hold(lease: Lease): Lease {
    this.max = Math.max(this.max, ++this.now);
    lease.signal.addEventListener("abort", () => this.now--, { once: true });
    return lease;
  }
  async release(lease: Lease): Promise<void> {
    if (lease.held) this.now--;
    await lease.release();
  }
}

/** A promise and whether it has settled yet. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; done: boolean } {
  const t = { promise, done: false };
  void promise.then(
    () => (t.done = true),
    () => (t.done = true),
  );
  return t;
}

/** Cleanups that run after each test of the file, last first; failures are ignored. Call once per file. */
export function stopsAfterEach(): Array<() => Promise<unknown> | unknown> {
  const stops: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    while (stops.length > 0) await Promise.resolve(stops.pop()!()).catch(() => undefined);
  });
  return stops;
}

/** A node of a fleet as a test sees it: its guard on the group and the events it emitted. */
export interface GuardNode {
  guard: Guard;
  events: GuardEvent[];
}

/**
 * What a failover to a lagging replica must show, on a promoted standalone replica as on a
 * cluster: `first` and `second` (the lease the replica never saw, re-registered) hold both slots,
 * `waiting` (on node `a`, which re-registered) and `waitingFresh` (on a node with no history of the
 * group) are still queued, and fences stay above `highest`. Checked past the learning window;
 * returns `a`'s stats for the topology's own checks.
 */
export async function expectHeldPastLearningWindow(
  a: GuardNode,
  [first, second]: readonly [Lease, Lease],
  [waiting, waitingFresh]: readonly [{ done: boolean }, { done: boolean }],
  highest: number,
): Promise<GuardStats> {
  expect(waiting.done).toBe(false);
  expect(waitingFresh.done).toBe(false);
  expect(first.held && second.held).toBe(true);
  const stats = await a.guard.stats();
  expect(stats.scopes.global).toMatchObject({ in_use: 2, queued: 2 });
  // The second lease, and the first too if its stale expiry on the replica had passed.
  expect(stats.stateLoss?.reregistered).toBeGreaterThanOrEqual(1);
  expect(stats.fence).toBeGreaterThanOrEqual(highest);
  return stats;
}

/** Then both holders release: each waiter is granted a fence above every earlier one, and never more than two hold. */
export async function expectWaitersGrantedAfterRelease(
  holders: Holders,
  [first, second]: readonly [Lease, Lease],
  [waiting, waitingFresh]: readonly [{ promise: Promise<AcquireResult> }, { promise: Promise<AcquireResult> }],
  highest: number,
): Promise<void> {
  await holders.release(first);
  await holders.release(second);
  const after = [granted(await waiting.promise), granted(await waitingFresh.promise)].map((l) => holders.hold(l));
  for (const l of after) expect(l.fence).toBeGreaterThan(highest);
  expect(new Set([...holders.fences, ...after.map((l) => l.fence)]).size).toBe(holders.fences.length + 2);
  expect(holders.max).toBeLessThanOrEqual(2);
  for (const l of after) await holders.release(l);
}
