// SPEC §2 rules 10 and 12 on a Redis Cluster of 3 masters with a replica each, failing over the
// master of the group's hash tag while its slots are held: a manual CLUSTER FAILOVER (nothing is
// lost), and a replica that stopped replicating (SIGSTOP) taken over after its master was killed
// (the writes it missed are lost). Every holder lives in this process, so the test counts them
// itself; fences are compared across the failover.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { createGuard, type GuardEvent } from "../../src/index.js";
import type { LimitsOption } from "../../src/core/spec.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { sendCommand, startRedisCluster, type RedisClusterProcess, type RedisProcess } from "../harness/redis.js";
import { waitUntil } from "../support/redis-fleet.js";
import {
  expectHeldPastLearningWindow,
  expectWaitersGrantedAfterRelease,
  granted,
  Holders,
  readyCluster,
  stopsAfterEach,
  track,
  type GuardNode,
} from "./helpers.js";

/** Lease TTL of every holder here: renewals every TTL/3, and the learning window one TTL. */
const TTL_MS = 900;

const stops = stopsAfterEach();

let seq = 0;
const newGroup = (what: string) => `failover-${what}-${process.pid}-${++seq}`;

/** A node of a fleet: its own Cluster client, store and guard on the group. */
async function node(
  cluster: RedisClusterProcess,
  group: string,
  limits: LimitsOption,
  timers = { sweepIntervalMs: 100, safetyRecheckMs: 200 },
): Promise<GuardNode> {
  const redis = await readyCluster(cluster);
  redis.on("error", () => undefined); // refused connections to a killed node are expected here
  stops.push(() => redis.disconnect());
  const events: GuardEvent[] = [];
  const guard = createGuard({
    store: createRedisStore({ redis, ...timers, commandTimeoutMs: 1_000 }),
    group,
    limits,
    defaults: { leaseTtlMs: TTL_MS },
    onEvent: (e) => events.push(e),
  });
  stops.push(() => guard.close());
  return { guard, events };
}

async function cluster3x2(): Promise<RedisClusterProcess> {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  stops.push(() => cluster.stop());
  return cluster;
}

/** The master that serves the group's hash tag, and its replica. */
async function shardOf(cluster: RedisClusterProcess, group: string): Promise<{ master: RedisProcess; replica: RedisProcess }> {
  const master = await cluster.masterOf(groupKeys("slotgate:", group)[0]!);
  const [replica] = cluster.replicasOf(master);
  if (!replica) throw new Error("the group's master has no replica");
  return { master, replica };
}

/** Until the replica has applied everything its master has written so far. */
async function replicated(master: RedisProcess, replica: RedisProcess): Promise<void> {
  const offset = async (port: number, field: string) =>
    Number(new RegExp(`${field}:(\\d+)`).exec(String(await sendCommand(port, ["INFO", "replication"])))?.[1]);
  const target = await offset(master.port, "master_repl_offset");
  await waitUntil("the replica has caught up", async () => (await offset(replica.port, "slave_repl_offset")) >= target, 2_000, 10);
}

/**
 * The replica stops replicating. SIGSTOP alone is not enough: what the master writes next waits in
 * the kernel's socket buffers, and the replica applies all of it on SIGCONT, even after the master
 * is gone. So the master also drops the link, which the stopped replica cannot re-establish.
 */
async function cutOff(master: RedisProcess, replica: RedisProcess): Promise<void> {
  await replicated(master, replica);
  replica.pause();
  await sendCommand(master.port, ["CLIENT", "KILL", "TYPE", "replica"]);
}

/** The master dies, the replica comes back and takes its slots over; resolves with the ms from kill to agreement. */
async function takeOver(cluster: RedisClusterProcess, master: RedisProcess, replica: RedisProcess): Promise<number> {
  await master.kill9();
  const killedAt = Date.now();
  replica.resume();
  await cluster.failover(replica, "TAKEOVER");
  return Date.now() - killedAt;
}

const count = (events: readonly GuardEvent[], type: GuardEvent["type"]) => events.filter((e) => e.type === type).length;

describe("rules 10 and 12 on a 3-master cluster with replicas", () => {
  it("manual CLUSTER FAILOVER under load on limit 2: holders renew across it, nothing is lost, fences rise, never more than 2 holders", async () => {
    const cluster = await cluster3x2();
    const group = newGroup("manual");
    const { replica } = await shardOf(cluster, group);
    const nodes = [await node(cluster, group, { global: 2 }), await node(cluster, group, { global: 2 })];
    const [a, b] = nodes as [GuardNode, GuardNode];
    const holders = new Holders();
    // One slot held across the failover; the other one goes round four workers on two nodes.
    const long = holders.hold(granted(await a.guard.acquire({ scopes: ["global"] })));
    const grants: Array<{ fence: number; askedAt: number; at: number }> = [{ fence: long.fence, askedAt: 0, at: Date.now() }];
    const refused: string[] = [];
    let running = true;
    const worker = async (n: GuardNode) => {
      while (running) {
        const askedAt = Date.now();
        const r = await n.guard.acquire({ scopes: ["global"], queueTimeoutMs: 3_000 });
        if (!r.ok) {
          refused.push(r.reason);
          await sleep(20);
          continue;
        }
        const lease = holders.hold(r.lease);
        grants.push({ fence: lease.fence, askedAt, at: Date.now() });
        await sleep(20);
        await holders.release(lease);
      }
    };
    const workers = [a, a, b, b].map(worker);
    await sleep(300);

    const failoverAt = Date.now();
    const failoverMs = await cluster.failover(replica);
    expect(await cluster.masterOf(groupKeys("slotgate:", group)[0]!)).toBe(replica);
    const before = grants.filter((g) => g.at < failoverAt);
    await sleep(TTL_MS + 300); // the long lease renews on the new master, three times or more
    running = false;
    await Promise.all(workers);

    const after = grants.filter((g) => g.askedAt > failoverAt + failoverMs);
    const highestBefore = Math.max(...before.map((g) => g.fence));
    expect(failoverMs).toBeLessThan(2_000);
    expect(refused).toEqual([]); // the failover is transparent: every acquire was granted
    expect(after.length).toBeGreaterThan(10);
    for (const g of after) expect(g.fence).toBeGreaterThan(highestBefore);
    expect(new Set(grants.map((g) => g.fence)).size).toBe(grants.length);
    expect(holders.max).toBe(2);
    expect(long.held).toBe(true);
    expect(long.signal.aborted).toBe(false);
    // A manual failover waits for the replica to catch up: no state is lost, so nothing is learned.
    const stats = await a.guard.stats();
    expect(stats.scopes.global?.in_use).toBe(1);
    expect(stats.stateLoss).toMatchObject({ reregistered: 0, lost: 0, learningUntil: null });
    for (const n of nodes) expect(count(n.events, "lease-lost")).toBe(0);
    await holders.release(long);
  }, 15_000);

  it("a lagging replica (SIGSTOP) taken over after its master is killed: fences above every earlier one, no second holder, and grants again after the window", async () => {
    const cluster = await cluster3x2();
    const group = newGroup("lagging");
    const { master, replica } = await shardOf(cluster, group);
    const a = await node(cluster, group, { global: 2 });
    const holders = new Holders();
    const { fences } = holders;
    const take = () => holders.take(a.guard);
    const first = await take();

    await cutOff(master, replica);
    for (let i = 0; i < 5; i++) await holders.release(await take()); // on the master only, with higher fences
    const second = await take(); // held on the master only
    const highest = Math.max(...fences);

    expect(await takeOver(cluster, master, replica)).toBeLessThan(2_000);
    // A's acquire finds the counter below fences A was granted: the group learns, nothing is granted.
    const waiting = track(a.guard.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 }));
    await waitUntil("the second lease is re-registered", () => a.events.some((e) => e.type === "lease-reregistered"), TTL_MS + 1_000, 10);
    const learningAt = Date.now();
    expect(a.events.filter((e) => e.type === "lease-reregistered").map((e) => e.leaseId)).toContain(second.id);
    // A node with no history of the group, started during the window (before it, it could not tell; see the docs).
    const fresh = await node(cluster, group, { global: 2 });
    const waitingFresh = track(fresh.guard.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 }));
    await sleep(Math.max(0, learningAt + TTL_MS + 300 - Date.now())); // past the window: the two holders still have both slots
    const stats = await expectHeldPastLearningWindow(a, [first, second], [waiting, waitingFresh], highest);
    expect(stats.stateLoss?.lost).toBe(0);

    await expectWaitersGrantedAfterRelease(holders, [first, second], [waiting, waitingFresh], highest);
  }, 15_000);

  it("a lagging replica whose stale state is full: the lease it never saw cannot come back and is reported lost; grants resume when the stale lease expires", async () => {
    const cluster = await cluster3x2();
    const group = newGroup("full");
    const { master, replica } = await shardOf(cluster, group);
    const a = await node(cluster, group, { global: 2 });
    const b = await node(cluster, group, { global: 2 });
    const holders = new Holders();
    const first = await holders.take(a.guard);
    // B's slot has a longer TTL, so that its copy on the replica outlives the learning window.
    const other = await holders.take(b.guard, { leaseTtlMs: 2 * TTL_MS });

    await cutOff(master, replica);
    await holders.release(other); // on the master only: the replica still counts it
    const second = await holders.take(a.guard); // held on the master only
    const highest = Math.max(...holders.fences);

    expect(await takeOver(cluster, master, replica)).toBeLessThan(2_000);
    const promotedAt = Date.now();
    // Second's renewal finds it missing, learns, and cannot re-create it: first and the stale copy fill the limit.
    await waitUntil("the second lease is lost", () => second.signal.aborted, TTL_MS + 1_000, 10);
    expect(second.signal.reason).toMatchObject({ code: "SLOTGATE_LEASE_LOST" });
    expect(a.events.filter((e) => e.type === "lease-lost").map((e) => "leaseId" in e && e.leaseId)).toEqual([second.id]);
    expect(count(a.events, "lease-reregistered")).toBe(0);
    expect(first.held).toBe(true);
    const waiting = track(a.guard.acquire({ scopes: ["global"], queueTimeoutMs: 6_000 }));
    const stats = await a.guard.stats();
    expect(stats.stateLoss?.lost).toBe(1);
    expect(stats.fence).toBeGreaterThanOrEqual(highest);

    // The stale copy expires on the promoted master (2 TTLs after its last renewal at most): the queue is served.
    const next = holders.hold(granted(await waiting.promise));
    expect(Date.now() - promotedAt).toBeLessThan(2 * TTL_MS + 1_000);
    expect(next.fence).toBeGreaterThan(highest);
    expect(first.held).toBe(true);
    expect(holders.max).toBeLessThanOrEqual(2);
    await holders.release(next);
    await holders.release(first);
  }, 15_000);

  it("wake-ups follow the failover: a release wakes a waiter on another node at once, not at a periodic re-check", async () => {
    const cluster = await cluster3x2();
    const group = newGroup("wake");
    const { master, replica } = await shardOf(cluster, group);
    // No re-check or sweep within the test: a waiter is only woken by its wake-up message.
    const quiet = { sweepIntervalMs: 60_000, safetyRecheckMs: 60_000 };
    const a = await node(cluster, group, { global: 1 }, quiet);
    const b = await node(cluster, group, { global: 1 }, quiet);
    const handOff = async () => {
      const lease = granted(await a.guard.acquire({ scopes: ["global"] }));
      const waiting = b.guard.acquire({ scopes: ["global"], queueTimeoutMs: 3_000 });
      await waitUntil("B queues", async () => (await a.guard.stats()).scopes.global?.queued === 1, 1_000, 10);
      const releasedAt = Date.now();
      await lease.release();
      const next = granted(await waiting);
      const ms = Date.now() - releasedAt;
      await next.release();
      return ms;
    };
    const handOffs = [await handOff()];
    await cluster.failover(replica);
    handOffs.push(await handOff());
    await cluster.waitUntilHealthy(5_000); // the old master has synced as a replica
    await cluster.failover(master); // and back
    handOffs.push(await handOff());
    for (const ms of handOffs) expect(ms).toBeLessThan(500);
  }, 15_000);
});
