/**
 * The three limiters of the Redis benchmark behind one shape, so every phase runs the same loop
 * whichever library it measures, plus the client-side command counter. Used by the benchmark's
 * main process (single-process phases) and by its worker processes (cross-process phases).
 *
 * acquire() resolves when the slot is granted, with a function that releases it; that function
 * resolves when the library has finished releasing (its Redis round trip is done).
 */
import Bottleneck from "bottleneck";
import { Redis } from "ioredis";
import { Semaphore } from "redis-semaphore";
import { createGuard, type AcquireOptions } from "../../../src/index.js";
import { createRedisStore } from "../../../src/stores/redis/index.js";

/** "slotgate-eval": slotgate with `functions: false`, its Lua as scripts (EVALSHA) instead of Redis Functions (FCALL). */
export const LIBS = ["slotgate", "slotgate-eval", "redis-semaphore", "bottleneck"] as const;
export type LibName = (typeof LIBS)[number];

export const REDIS_HOST = "127.0.0.1";

export interface LimiterConfig {
  port: number;
  /** Key, group or limiter id; unique per phase so that no state carries over. */
  key: string;
  limit: number;
  /** slotgate leaseTtlMs, redis-semaphore lockTimeout, bottleneck job expiration. */
  leaseTtlMs: number;
  /** slotgate queueTimeoutMs, redis-semaphore acquireTimeout (bottleneck has no queue timeout). */
  queueTimeoutMs: number;
}

export type Release = () => Promise<void>;

export interface BenchLimiter {
  readonly lib: LibName;
  /** `priority`: lower runs first (slotgate priority class, bottleneck priority 0–9); redis-semaphore ignores it. */
  acquire(priority?: number): Promise<Release>;
  /** Tickets/jobs waiting cluster-wide, where the library can tell (redis-semaphore has no queue). */
  queued?(): Promise<number>;
  /** Background faults the library reported (bottleneck "error" events, redis-semaphore lost locks, slotgate store faults). */
  faults(): number;
  close(): Promise<void>;
}

// ── client-side command counting ────────────────────────────────────────────────────────────

/**
 * Every command an ioredis connection of this process writes (the libraries' own connections,
 * subscribers and duplicates included), by command name. A command is one request/response
 * exchange: none of the three libraries pipelines several commands per operation (bottleneck
 * sends each script as a pipeline of one), so commands sent = round trips.
 */
const sent = new Map<string, number>();
/** Connections of the benchmark itself (markers, admin): not counted. */
const uncounted = new WeakSet<object>();
let instrumented = false;

export function instrumentIoredis(): void {
  if (instrumented) return;
  instrumented = true;
  const proto = Redis.prototype as unknown as { sendCommand(this: object, command: { name: string }, ...rest: unknown[]): unknown };
  const original = proto.sendCommand;
  proto.sendCommand = function (this: object, command: { name: string }, ...rest: unknown[]): unknown {
    if (!uncounted.has(this)) sent.set(command.name, (sent.get(command.name) ?? 0) + 1);
    return original.call(this, command, ...rest);
  };
}

export function resetSent(): void {
  sent.clear();
}

export function sentSnapshot(): Record<string, number> {
  return Object.fromEntries([...sent.entries()].sort((a, b) => b[1] - a[1]));
}

/** A connection for the benchmark's own bookkeeping (markers, counters): its commands are not counted. */
export async function benchConnection(port: number): Promise<Redis> {
  const redis = new Redis({ host: REDIS_HOST, port, lazyConnect: true, maxRetriesPerRequest: 1 });
  uncounted.add(redis);
  await redis.connect();
  return redis;
}

async function libConnection(port: number): Promise<Redis> {
  const redis = new Redis({ host: REDIS_HOST, port, lazyConnect: true });
  await redis.connect();
  return redis;
}

// ── the libraries ────────────────────────────────────────────────────────────────────────────

export async function createLimiter(lib: LibName, cfg: LimiterConfig): Promise<BenchLimiter> {
  switch (lib) {
    case "slotgate":
      return slotgate(cfg, lib, true);
    case "slotgate-eval":
      return slotgate(cfg, lib, false);
    case "redis-semaphore":
      return redisSemaphore(cfg);
    case "bottleneck":
      return bottleneck(cfg);
  }
}

async function slotgate(cfg: LimiterConfig, lib: LibName, functions: boolean): Promise<BenchLimiter> {
  const redis = await libConnection(cfg.port);
  const store = createRedisStore({ redis, functions });
  const guard = createGuard({
    store,
    group: cfg.key,
    limits: { global: cfg.limit },
    defaults: { leaseTtlMs: cfg.leaseTtlMs, queueTimeoutMs: cfg.queueTimeoutMs },
  });
  const scopes = ["global"];
  const plain: AcquireOptions = { scopes };
  const byClass = new Map<number, AcquireOptions>();
  return {
    lib,
    async acquire(priority) {
      let options = plain;
      if (priority !== undefined) {
        options = byClass.get(priority) ?? { scopes, priority: { class: priority } };
        byClass.set(priority, options);
      }
      const result = await guard.acquire(options);
      if (!result.ok) throw new Error(`slotgate: acquire rejected (${result.reason})`);
      const lease = result.lease;
      return () => lease.release();
    },
    async queued() {
      const stats = await guard.stats();
      return stats.scopes.global?.queued ?? 0;
    },
    faults() {
      const f = store.faults;
      return f.sweep + f.subscriber + f.recheck + f.cleanup;
    },
    async close() {
      await guard.close();
      await redis.quit();
    },
  };
}

async function redisSemaphore(cfg: LimiterConfig): Promise<BenchLimiter> {
  const redis = await libConnection(cfg.port);
  let lost = 0;
  // The library's defaults (retryInterval 10 ms, refresh at 0.8 × lockTimeout), and an onLockLost
  // that counts instead of throwing from a timer.
  const options = { lockTimeout: cfg.leaseTtlMs, acquireTimeout: cfg.queueTimeoutMs, onLockLost: () => void lost++ };
  return {
    lib: "redis-semaphore",
    async acquire() {
      // One Semaphore per acquire, as the README does it: each carries its own identifier.
      const sem = new Semaphore(redis, cfg.key, cfg.limit, options);
      await sem.acquire();
      return () => sem.release();
    },
    faults: () => lost,
    async close() {
      await redis.quit();
    },
  };
}

async function bottleneck(cfg: LimiterConfig): Promise<BenchLimiter> {
  let errors = 0;
  const limiter = new Bottleneck({
    id: cfg.key,
    datastore: "ioredis",
    Redis,
    clientOptions: { host: REDIS_HOST, port: cfg.port },
    maxConcurrent: cfg.limit,
  });
  limiter.on("error", () => void errors++);
  await limiter.ready();
  return {
    lib: "bottleneck",
    acquire(priority) {
      // A job that runs until released: "granted" is when bottleneck starts it, and the release
      // resolves once the job's promise settled and bottleneck freed it in Redis (free.lua).
      return new Promise<Release>((granted, failed) => {
        let finish!: () => void;
        const job = () =>
          new Promise<void>((done) => {
            finish = done;
            granted(() => {
              finish();
              return finished;
            });
          });
        // The README's advice: an expiration on every job, or a crashed client's slots never return.
        const finished: Promise<void> = limiter.schedule({ priority: priority ?? 5, expiration: cfg.leaseTtlMs }, job).then(
          () => undefined,
          (error: unknown) => {
            failed(error);
          },
        );
      });
    },
    queued: () => limiter.clusterQueued(),
    faults: () => errors,
    async close() {
      await limiter.disconnect(true);
    },
  };
}
