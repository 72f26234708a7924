// Shared by the Redis test files (not a test file itself).
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
import { afterEach } from "vitest";
import type { AcquireOptions, AcquireResult, Guard, GuardEvent, Lease } from "../../src/index.js";
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
