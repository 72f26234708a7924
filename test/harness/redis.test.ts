// Proves the Redis harness itself, so that a failing Redis test points at the code under
// test and not at the servers it runs against.
import { existsSync } from "node:fs";
import { describe, it, expect, afterAll } from "vitest";
import { Redis, Cluster } from "ioredis";
import { findRedisServerBin, startRedis, startRedisCluster } from "./redis.js";
import type { RedisClusterProcess, RedisProcess } from "./redis.js";

// Cleanup runs even when an assertion fails halfway through a test.
const servers: { stop(): Promise<void> }[] = [];
const clients: { disconnect(): void }[] = [];
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
});

async function standalone(): Promise<RedisProcess> {
  const server = await startRedis();
  servers.push(server);
  return server;
}

async function cluster(): Promise<RedisClusterProcess> {
  const c = await startRedisCluster();
  servers.push(c);
  return c;
}

function client(url: string): Redis {
  const redis = new Redis(url);
  // Refused connections while a server is down are expected here; ioredis would log them.
  redis.on("error", () => {});
  clients.push(redis);
  return redis;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("findRedisServerBin", () => {
  it("finds redis-server, and says how to install it when it cannot", () => {
    expect(findRedisServerBin()).toMatch(/redis-server$/);

    const saved = { bin: process.env.REDIS_SERVER_BIN, path: process.env.PATH };
    try {
      process.env.REDIS_SERVER_BIN = "/nonexistent/redis-server";
      expect(() => findRedisServerBin()).toThrow(/apt-get install -y redis-server/);
      delete process.env.REDIS_SERVER_BIN;
      process.env.PATH = "/nonexistent";
      expect(() => findRedisServerBin()).toThrow(/apt-get install -y redis-server.*REDIS_SERVER_BIN/);
    } finally {
      if (saved.bin === undefined) delete process.env.REDIS_SERVER_BIN;
      else process.env.REDIS_SERVER_BIN = saved.bin;
      process.env.PATH = saved.path;
    }
  });
});

describe("startRedis", () => {
  it("serves ioredis on 127.0.0.1 and survives kill9 + restart on the same port", async () => {
    const server = await standalone();
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    const redis = client(server.url);
    let readyCount = 0;
    redis.on("ready", () => readyCount++);

    await redis.set("k", "v");
    expect(await redis.get("k")).toBe("v");
    expect(await redis.config("GET", "bind")).toEqual(["bind", "127.0.0.1"]);
    expect(await redis.config("GET", "save")).toEqual(["save", ""]);

    const oldPid = server.pid;
    await server.kill9();
    expect(isAlive(oldPid)).toBe(false);

    await server.restart();
    expect(server.pid).not.toBe(oldPid);
    // Same ioredis client, so it has reconnected; the data is gone because nothing persists.
    expect(await redis.ping()).toBe("PONG");
    expect(await redis.get("k")).toBeNull();
    expect(readyCount).toBeGreaterThanOrEqual(2);
  });

  it("stop() ends the process and removes its temp dir", async () => {
    const server = await standalone();
    const redis = client(server.url);
    const [, dir] = (await redis.config("GET", "dir")) as [string, string];
    redis.disconnect();
    expect(existsSync(dir)).toBe(true);

    const pid = server.pid;
    await server.stop();
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });

  it("gives servers started concurrently distinct ports", async () => {
    const started = await Promise.all(Array.from({ length: 6 }, () => standalone()));
    expect(new Set(started.map((s) => s.port)).size).toBe(started.length);
    await Promise.all(started.map((s) => s.stop()));
  });
});

describe("startRedisCluster", () => {
  it("serves an ioredis Cluster across shards, with per-node kill9 + restart", async () => {
    const c = await cluster();
    expect(c.nodes).toHaveLength(3);
    const redisCluster = new Cluster([...c.nodes]);
    redisCluster.on("error", () => {});
    clients.push(redisCluster);

    // Slots 15495, 3300 and 7365: one key per third of the slot space.
    const keys = ["{a}:key", "{b}:key", "{c}:key"];
    for (const key of keys) await redisCluster.set(key, `value of ${key}`);
    for (const key of keys) expect(await redisCluster.get(key)).toBe(`value of ${key}`);

    // Asking each node directly proves the keys really landed on different shards.
    const sizes = await Promise.all(c.nodes.map(({ port }) => client(`redis://127.0.0.1:${port}`).dbsize()));
    expect(sizes).toEqual([1, 1, 1]);

    // "{b}" hashes to the second node (slots 5461-10921).
    const node = c.processes[1];
    if (!node) throw new Error("cluster has no second node");
    await node.kill9();
    await node.restart();
    await c.waitUntilHealthy();
    await redisCluster.set("{b}:after-restart", "ok");
    expect(await redisCluster.get("{b}:after-restart")).toBe("ok");

    const pids = c.processes.map((p) => p.pid);
    await c.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});

describe("startRedisCluster with replicas", () => {
  it("3 masters + 3 replicas in sync; pause/resume, CLUSTER FAILOVER and stop", async () => {
    const c = await startRedisCluster({ replicasPerMaster: 1 });
    servers.push(c);
    expect(c.nodes).toHaveLength(6);
    const redisCluster = new Cluster([...c.nodes]);
    redisCluster.on("error", () => {});
    clients.push(redisCluster);
    expect(await redisCluster.set("{c}:key", "v")).toBe("OK");

    const master = await c.masterOf("{c}:key");
    expect(c.processes.indexOf(master)).toBe(1); // slots 5461-10921
    const [replica] = c.replicasOf(master);
    if (!replica) throw new Error("the master has no replica");
    const direct = client(replica.url);
    expect(await direct.info("replication")).toMatch(/role:slave[\s\S]*master_link_status:up/);
    // READONLY: a cluster replica serves reads of its master's slots only when asked to.
    await direct.call("READONLY");
    expect(await direct.get("{c}:key")).toBe("v");

    // A paused node answers nothing; resumed, it catches up.
    replica.pause();
    await redisCluster.set("{c}:key", "while paused");
    await expect(Promise.race([direct.ping(), new Promise((resolve) => setTimeout(() => resolve("silent"), 300))])).resolves.toBe("silent");
    replica.resume();
    await c.waitUntilHealthy(5_000);
    expect(await direct.get("{c}:key")).toBe("while paused");

    // A manual failover swaps the roles; the client follows.
    const ms = await c.failover(replica);
    expect(ms).toBeLessThan(5_000);
    expect(await c.masterOf("{c}:key")).toBe(replica);
    expect(await redisCluster.set("{c}:key", "after")).toBe("OK");
    expect(await direct.get("{c}:key")).toBe("after");
    await c.waitUntilHealthy(5_000);
    expect(await client(master.url).info("replication")).toMatch(/role:slave/);

    // A paused node is stopped too.
    c.processes[5]?.pause();
    const pids = c.processes.map((p) => p.pid);
    await c.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
