// Shared by the Redis test files (not a test file itself).
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
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
