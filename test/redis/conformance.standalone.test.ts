// The store conformance suite, unchanged, against a real standalone redis-server on real time;
// rule 12's state loss is a FLUSHALL.
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { runConformance } from "../conformance/store.case.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { REAL_TIME } from "./helpers.js";

let server: RedisProcess | undefined;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  await redis.ping();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

runConformance({
  name: "redis (standalone)",
  createStore: () => createRedisStore({ redis }),
  loseState: async () => {
    await redis.flushall();
  },
  ...REAL_TIME,
});
