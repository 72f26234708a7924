// Fair queuing on the Redis store through a guard (docs/semantics.md rule F), what the shared
// suites do not reach: flow names of any bytes (braces, newlines, NUL, a lone surrogate, 1,024
// characters, "__proto__") as weights in the spec and as acquire options, the grant order they
// give, the flows of stats, and a flows hash that empties with the queue.
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuard } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys, KEY_SUFFIXES } from "../../src/stores/redis/keys.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";

let server: RedisProcess | undefined;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe("fair queuing on Redis", () => {
  it.each([
    ["a lone surrogate", "\ud800", "{x}"],
    ["newline and NUL", "a\nb\0c", "__proto__"],
    ["1,024 characters", "z".repeat(1024), "tenant:{a}"],
  ])("flows named with %s: weighted start-time order, stats, and nothing left once the queue is empty", async (_label, heavy, light) => {
    const group = `fair-${Math.random().toString(36).slice(2)}`;
    const guard = createGuard({
      store: createRedisStore({ redis }),
      group,
      limits: { global: 1 },
      queue: { flowWeights: { [heavy]: 2 } },
    });
    try {
      const holder = await guard.acquire({ scopes: ["global"] });
      if (!holder.ok) throw new Error("expected a grant");
      // Four tickets of the weight-2 flow, then four of the other: tags 0, ½, 1, 1½ (×10⁶) and 0, 1, 2, 3.
      const order: string[] = [];
      const done: Promise<void>[] = [];
      const names: [string, string][] = [1, 2, 3, 4].map((i): [string, string] => [heavy, `A${i}`]);
      for (const i of [1, 2, 3, 4]) names.push([light, `B${i}`]);
      for (const [flow, label] of names) {
        done.push(
          guard.acquire({ scopes: ["global"], queueTimeoutMs: 20_000, flow }).then(async (r) => {
            if (!r.ok) throw new Error(`${label}: ${r.reason}`);
            order.push(label);
            await r.lease.release();
          }),
        );
        await sleep(2);
      }
      for (let i = 0; i < 100 && (await guard.stats()).scopes.global!.queued < 8; i++) await sleep(10);
      const stats = await guard.stats();
      expect(stats.flows).toEqual({ [heavy]: { waiting: 4, granted: 0 }, [light]: { waiting: 4, granted: 0 } });
      expect(Object.getPrototypeOf(stats.flows)).toBeNull();
      await holder.lease.release();
      await Promise.all(done);
      expect(order).toEqual(["A1", "B1", "A2", "A3", "B2", "A4", "B3", "B4"]);
      expect((await guard.stats()).flows).toBeUndefined();
      const keys = groupKeys("slotgate:", group);
      expect(await redis.hlen(keys[KEY_SUFFIXES.indexOf("flows")]!)).toBe(0);
      // V went back to 0 with the empty queue.
      expect(await redis.hget(keys[KEY_SUFFIXES.indexOf("sc")]!, "\0vt")).toBe("0");
    } finally {
      await guard.close();
    }
  });
});
