// Behaviour of the Redis store beyond the conformance suite, on standalone Redis and on a
// 3-master cluster: push wake-ups, the safety re-check and local deadline when a wake-up is lost,
// grants that race an abort, close(), reclaiming a crashed holder's slots with no other traffic,
// and failing fast instead of queueing in ioredis when Redis is unreachable.
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createGuard, type AcquireResult, type Guard, type GuardOptions } from "../../src/index.js";
import { createRedisStore, type RedisSlotStore, type RedisStoreOptions } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { LIBRARY, SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis, startRedisCluster, type RedisClusterProcess, type RedisProcess } from "../harness/redis.js";
import { readyCluster } from "./helpers.js";

type Client = Redis | Cluster;

interface Target {
  name: string;
  start(): Promise<{ client(): Promise<Client>; coldClient(): Client; stop(): Promise<void>; standalone?: RedisProcess }>;
}

const targets: Target[] = [
  {
    name: "standalone",
    async start() {
      const server = await startRedis();
      return {
        standalone: server,
        async client() {
          const c = new Redis(server.url);
          await c.ping();
          return c;
        },
        coldClient: () => new Redis(server.url),
        stop: () => server.stop(),
      };
    },
  },
  {
    name: "cluster",
    async start() {
      const cluster: RedisClusterProcess = await startRedisCluster();
      return { client: () => readyCluster(cluster), coldClient: () => new Cluster([...cluster.nodes]), stop: () => cluster.stop() };
    },
  },
];

let seq = 0;

describe.each(targets)("redis store ($name)", (target) => {
  let env: Awaited<ReturnType<Target["start"]>>;
  const clients: Client[] = [];
  const guards: Guard[] = [];

  beforeAll(async () => {
    env = await target.start();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(guards.splice(0).map((g) => g.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    await env?.stop();
  });

  /** A node of the fleet: its own connection and its own store instance. */
  const node = async (options: Omit<RedisStoreOptions, "redis"> = {}) => {
    const redis = await env.client();
    clients.push(redis);
    return { redis, store: createRedisStore({ redis, ...options }) };
  };
  const guardOn = (store: RedisSlotStore, group: string, options: Omit<GuardOptions, "store" | "group"> = { limits: { global: 1 } }) => {
    const g = createGuard({ store, group, ...options });
    guards.push(g);
    return g;
  };
  const newGroup = () => `st-${target.name}-${process.pid}-${++seq}`;
  const lease = (r: AcquireResult) => {
    if (!r.ok) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
    return r.lease;
  };

  /**
   * One queue-and-wake cycle from `waiter`'s node. Afterwards that node is surely subscribed, so
   * a later test step sees only the path it sets up (a node that queues before its subscription
   * is confirmed claims once it is, which would pick up a "lost" outcome early).
   */
  const warmUp = async (holder: Guard, waiter: Guard) => {
    const held = lease(await holder.acquire({ scopes: ["global"] }));
    const waiting = waiter.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await sleep(20);
    await held.release();
    await lease(await waiting).release();
  };

  /** Points every queued ticket's wake-up at a channel nobody listens to: its messages are lost. */
  const loseWakeUps = async (redis: Client, group: string) => {
    const key = groupKeys("slotgate:", group)[6]!;
    const tickets = await redis.hgetall(key);
    expect(Object.keys(tickets).length).toBeGreaterThan(0);
    for (const [id, raw] of Object.entries(tickets)) {
      const t = JSON.parse(raw) as { ch: string };
      await redis.hset(key, id, JSON.stringify({ ...t, ch: `${t.ch}:lost` }));
    }
  };

  it("a waiter on another node is woken by the publish, with no polling", async () => {
    const group = newGroup();
    const a = await node({ safetyRecheckMs: 60_000, sweepIntervalMs: 60_000 });
    const b = await node({ safetyRecheckMs: 60_000, sweepIntervalMs: 60_000 });
    const ga = guardOn(a.store, group);
    const gb = guardOn(b.store, group);
    await warmUp(ga, gb);
    const held = lease(await ga.acquire({ scopes: ["global"] }));
    const waiting = gb.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await sleep(100);
    const releasedAt = Date.now();
    await held.release();
    const granted = lease(await waiting);
    expect(Date.now() - releasedAt).toBeLessThan(500);
    expect(granted.fence).toBeGreaterThan(held.fence);
    await granted.release();
    expect(a.store.faults).toEqual({ sweep: 0, subscriber: 0, recheck: 0, cleanup: 0 });
    expect(b.store.faults).toEqual({ sweep: 0, subscriber: 0, recheck: 0, cleanup: 0 });
  });

  it("a lost wake-up is claimed by the safety re-check", async () => {
    const group = newGroup();
    const a = await node();
    const b = await node({ safetyRecheckMs: 150 });
    const ga = guardOn(a.store, group);
    const gb = guardOn(b.store, group);
    await warmUp(ga, gb);
    const held = lease(await ga.acquire({ scopes: ["global"] }));
    const waiting = gb.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await sleep(50);
    await loseWakeUps(a.redis, group);
    await held.release();
    const granted = lease(await waiting);
    expect(granted.server).toBeUndefined();
    expect(await a.redis.hlen(groupKeys("slotgate:", group)[8]!)).toBe(0); // claimed: nothing kept
    await granted.release();
    expect((await ga.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 4, released: 4 });
  });

  it("a lost time-out is settled by the waiter's own deadline", async () => {
    const group = newGroup();
    const a = await node();
    const b = await node({ safetyRecheckMs: 60_000 });
    const ga = guardOn(a.store, group);
    const gb = guardOn(b.store, group);
    await warmUp(ga, gb);
    lease(await ga.acquire({ scopes: ["global"] }));
    const startedAt = Date.now();
    const waiting = gb.acquire({ scopes: ["global"], queueTimeoutMs: 300 });
    await sleep(50);
    await loseWakeUps(a.redis, group);
    expect(await waiting).toMatchObject({ ok: false, reason: "queue-timeout" });
    expect(Date.now() - startedAt).toBeLessThan(1_500);
    expect((await ga.stats()).scopes.global).toMatchObject({ queued: 0, queue_timeouts: 1, aborted: 0 });
  });

  it("a grant its waiter never heard of is released when the waiter aborts", async () => {
    const group = newGroup();
    const a = await node();
    const b = await node({ safetyRecheckMs: 60_000 });
    const ga = guardOn(a.store, group);
    const gb = guardOn(b.store, group);
    await warmUp(ga, gb);
    const held = lease(await ga.acquire({ scopes: ["global"] }));
    const ac = new AbortController();
    const waiting = gb.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, signal: ac.signal });
    await sleep(50);
    await loseWakeUps(a.redis, group);
    await held.release(); // granted in Redis; the waiter does not know
    expect((await ga.stats()).scopes.global?.in_use).toBe(1);
    ac.abort();
    expect(await waiting).toMatchObject({ ok: false, reason: "aborted" });
    await sleep(100);
    expect((await ga.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 4, released: 4, aborted: 0 });
  });

  it("a grant that a re-check claims while the waiter aborts is released, not leaked", async () => {
    const group = newGroup();
    // One node: holder and waiter share a connection, so Redis runs their commands in the order sent.
    const a = await node({ safetyRecheckMs: 100 });
    const ga = guardOn(a.store, group);
    const gb = guardOn(a.store, group);
    await warmUp(ga, gb);
    const held = lease(await ga.acquire({ scopes: ["global"] }));
    const ac = new AbortController();
    const waiting = gb.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, signal: ac.signal });
    await sleep(50);
    await loseWakeUps(a.redis, group);
    // The first re-check claim sent after the release takes the grant; the waiter aborts right
    // as that claim goes out, so its cancel runs next and finds nothing left to hand back.
    const claimSha = createHash("sha1").update(SCRIPTS.claim.lua).digest("hex");
    let armed = false;
    const client = a.redis as unknown as { sendCommand(command: { name: string; args: unknown[] }, ...rest: unknown[]): unknown };
    const send = client.sendCommand.bind(client);
    vi.spyOn(client, "sendCommand").mockImplementation((command, ...rest) => {
      const sent = send(command, ...rest);
      const claim = (command.name === "evalsha" && command.args[0] === claimSha) || (command.name === "fcall" && command.args[0] === LIBRARY.functions.claim);
      if (armed && claim) {
        armed = false;
        ac.abort();
      }
      return sent;
    });
    const released = held.release(); // written to the connection synchronously
    armed = true;
    expect(await waiting).toMatchObject({ ok: false, reason: "aborted" });
    await released;
    expect(armed).toBe(false);
    let global = (await ga.stats()).scopes.global;
    for (let i = 0; i < 20 && global?.in_use !== 0; i++) {
      await sleep(50);
      global = (await ga.stats()).scopes.global;
    }
    expect(global).toMatchObject({ in_use: 0, granted: 4, released: 4 });
  });

  it("closing a guard ends its waiting acquires with aborted and takes their tickets out", async () => {
    const group = newGroup();
    const a = await node();
    const ga = guardOn(a.store, group);
    const gb = guardOn(a.store, group);
    lease(await ga.acquire({ scopes: ["global"] }));
    const waiting = [1, 2].map(() => gb.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 }));
    await sleep(50);
    expect((await ga.stats()).scopes.global?.queued).toBe(2);
    await gb.close();
    for (const w of waiting) expect(await w).toMatchObject({ ok: false, reason: "aborted" });
    expect((await ga.stats()).scopes.global).toMatchObject({ queued: 0, aborted: 2 });
  });

  it("a crashed holder's slot returns within its TTL plus one sweep, with no other traffic", async () => {
    const group = newGroup();
    const crashed = await node();
    const observer = await node({ sweepIntervalMs: 200 });
    const gc = guardOn(crashed.store, group);
    guardOn(observer.store, group); // an idle node of the fleet: it only sweeps
    lease(await gc.acquire({ scopes: ["global"], leaseTtlMs: 300, autoRenew: false }));
    crashed.redis.disconnect(); // the holder is gone without releasing
    const keys = groupKeys("slotgate:", group);
    const direct = await env.client();
    clients.push(direct);
    expect(await direct.zcard(keys[3]!)).toBe(1);
    await sleep(300 + 200 + 300); // TTL + one sweep interval + slack for a loaded machine
    expect(await direct.zcard(keys[3]!)).toBe(0);
    expect(await direct.hget(keys[1]!, "global\u0000expired")).toBe("1");
    expect(await direct.hget(keys[1]!, "global\u0000in_use")).toBe("0");
  });

  it("fails fast with unavailable when the connection is not ready, and counts background faults", async () => {
    const a = await node({ sweepIntervalMs: 20 });
    a.redis.disconnect();
    const g = guardOn(a.store, newGroup());
    const startedAt = Date.now();
    expect(await g.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 })).toMatchObject({ ok: false, reason: "unavailable" });
    expect(Date.now() - startedAt).toBeLessThan(250);
    await expect(g.stats()).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true });
    await sleep(100);
    expect(a.store.faults.sweep).toBeGreaterThan(0);
  });

  it("a cold start is not an outage: the first acquire right after new Redis(url) waits for the connection and is granted", async () => {
    for (let i = 0; i < 3; i++) {
      const redis = env.coldClient();
      clients.push(redis);
      expect(redis.status).not.toBe("ready");
      const g = guardOn(createRedisStore({ redis }), newGroup());
      const r = await g.acquire({ scopes: ["global"] });
      expect(r).toMatchObject({ ok: true });
      expect((await g.stats()).fallback).toMatchObject({ fail_closed: 0, store_errors: 0 });
      await lease(r).release();
    }
  });

  it("a first connection that never comes is bounded by commandTimeoutMs, then the outage policy decides", async () => {
    // Nothing listens on a port of a server that was stopped: the client keeps reconnecting.
    const gone = await startRedis();
    await gone.stop();
    const redis = new Redis(gone.url, { retryStrategy: () => 50, maxRetriesPerRequest: 0 });
    redis.on("error", () => undefined);
    clients.push(redis);
    const g = guardOn(createRedisStore({ redis, commandTimeoutMs: 300 }), newGroup());
    const startedAt = Date.now();
    expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "unavailable" });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(250);
    expect(Date.now() - startedAt).toBeLessThan(1_500);
  });

  it("a reply that arrives after commandTimeoutMs is undone", async () => {
    const a = await node({ commandTimeoutMs: 100 });
    const group = newGroup();
    const g = guardOn(a.store, group);
    await g.stats();
    const admin = await env.client();
    clients.push(admin);
    const servers = admin instanceof Cluster ? admin.nodes("master") : [admin];
    await Promise.all(servers.map((r) => r.client("PAUSE", 800, "ALL")));
    const startedAt = Date.now();
    expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "unavailable" });
    expect(Date.now() - startedAt).toBeLessThan(600);
    await sleep(1_100); // the pause ends, the late grant arrives and is released
    expect((await g.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 1, released: 1 });
  });
});
