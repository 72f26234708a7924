// The store conformance suite, unchanged, against a real 3-master Redis Cluster on real time;
// rule 12's state loss is a FLUSHALL on every master.
import type { Cluster } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { runConformance } from "../conformance/store.case.js";
import { startRedisCluster, type RedisClusterProcess } from "../harness/redis.js";
import { REAL_TIME, readyCluster } from "./helpers.js";

let cluster: RedisClusterProcess | undefined;
let redis: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = await readyCluster(cluster);
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

runConformance({
  name: "redis (cluster, 3 masters)",
  createStore: () => createRedisStore({ redis }),
  loseState: async () => {
    await Promise.all(redis.nodes("master").map((n) => n.flushall()));
  },
  ...REAL_TIME,
});
