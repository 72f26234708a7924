/**
 * @module
 * slotgate/redis: the Redis store. Every group's state lives in Redis under one hash tag and
 * changes only inside Lua scripts that run on the Redis clock, so any number of edge nodes share
 * the same limits. Works with a standalone `Redis` and with a `Cluster` (sharded pub/sub).
 *
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { createGuard } from "slotgate";
 * import { createRedisStore } from "slotgate/redis";
 *
 * const guard = createGuard({ store: createRedisStore({ redis: new Redis(url) }), group: "shop", limits: { global: 100 } });
 * ```
 */
export { createRedisStore, REDIS_STORE_DEFAULTS } from "./redis-store.js";
export type { RedisStoreOptions, RedisSlotStore, RedisStoreFaults } from "./redis-store.js";
