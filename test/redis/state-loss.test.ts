// SPEC §2 rule 12 over real redis-server processes: when a group's state is lost (FLUSHALL) or
// replaced (a replica that missed writes is promoted), the store grants nothing new until its
// holders have had one learning window to re-register their leases; a lease that cannot be
// re-registered is reported lost through lease.signal; fences never go back; and the edge node
// stops a request whose lease was lost, so the origin never serves two holders of one slot.
//
// Each test holds a slot on a small limit, makes the state go away under it, and checks that no
// second holder appears (counted by the test, which knows every holder) and what the counters say.
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createGuard, type GuardEvent, type GuardOptions } from "../../src/index.js";
import { buildGroupSpec, type BackendsOption, type LimitsOption } from "../../src/core/spec.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { sendCommand, startRedis, startRedisReplica, type RedisProcess } from "../harness/redis.js";
import { cleanups, origin, startNode } from "../support/edge.js";
import { waitUntil } from "../support/redis-fleet.js";
import { expectHeldPastLearningWindow, expectWaitersGrantedAfterRelease, granted, Holders, stopsAfterEach, track, type GuardNode } from "./helpers.js";

/** Lease TTL of every holder here: renewals every TTL/3, and the learning window one TTL. */
const TTL_MS = 900;

const stops = stopsAfterEach();

let seq = 0;
const newGroup = (what: string) => `loss-${what}-${process.pid}-${++seq}`;

async function client(port: number): Promise<Redis> {
  const redis = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
  stops.push(() => redis.disconnect());
  await redis.ping();
  return redis;
}

/** A node of a fleet: its own connection, store and guard on the group. */
async function node(port: number, group: string, options: Omit<GuardOptions, "store" | "group">): Promise<GuardNode> {
  const redis = await client(port);
  const events: GuardEvent[] = [];
  const guard = createGuard({
    store: createRedisStore({ redis, sweepIntervalMs: 100, safetyRecheckMs: 200, commandTimeoutMs: 1_000 }),
    group,
    defaults: { leaseTtlMs: TTL_MS },
    onEvent: (e) => events.push(e),
    ...options,
  });
  stops.push(() => guard.close());
  return { guard, events };
}

/**
 * FLUSHALL and a new spec in one MULTI, as a fleet member with other limits would push it right
 * after the loss; atomic, so that no renewal can slip in between and push the old spec again.
 */
async function flushAndConfigure(admin: Redis, group: string, limits: LimitsOption, backends: BackendsOption = {}): Promise<void> {
  createRedisStore({ redis: admin }); // registers the scripts on the admin connection
  const spec = buildGroupSpec(limits, backends);
  const multi = admin.multi().flushall() as unknown as { slotgateConfigure(...args: string[]): { exec(): Promise<unknown> } };
  await multi.slotgateConfigure(...groupKeys("slotgate:", group), JSON.stringify(spec)).exec();
}

/** What a client reaches Redis through, so that a test can point it at another server (a failover's address switch). */
class Forwarder {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  target: number;

  private constructor(server: net.Server, target: number) {
    this.#server = server;
    this.target = target;
  }

  static async start(target: number): Promise<Forwarder> {
    const server = net.createServer();
    const f = new Forwarder(server, target);
    server.on("connection", (socket) => {
      const upstream = net.connect({ host: "127.0.0.1", port: f.target });
      for (const s of [socket, upstream]) {
        f.#sockets.add(s);
        s.on("error", () => undefined);
        s.once("close", () => {
          f.#sockets.delete(s);
          socket.destroy();
          upstream.destroy();
        });
      }
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    stops.push(() => f.close());
    return f;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** From now on to `port`; connections open now are cut, so clients reconnect there. */
  switchTo(port: number): void {
    this.target = port;
    for (const s of this.#sockets) s.destroy();
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe("rule 12 on a standalone server: FLUSHALL", () => {
  let server: RedisProcess | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("a slot held on limit 1 across FLUSHALL: the holder re-registers, a new acquire waits for the window and then for the release", async () => {
    server = await startRedis();
    const admin = await client(server.port);
    const group = newGroup("flush");
    const a = await node(server.port, group, { limits: { global: 1 } });
    const b = await node(server.port, group, { limits: { global: 1 } });
    const holders = new Holders();
    await granted(await b.guard.acquire({ scopes: ["global"] })).release(); // B has worked with the group
    const held = holders.hold(granted(await a.guard.acquire({ scopes: ["global"] })));

    await admin.flushall();
    const flushedAt = Date.now();
    const waiting = track(b.guard.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 }));
    await waitUntil("A's lease is re-registered", () => a.events.some((e) => e.type === "lease-reregistered"), TTL_MS + 500, 10);
    // Past the learning window the queue is served again, but the re-registered holder still has the slot.
    await sleep(Math.max(0, flushedAt + TTL_MS + 300 - Date.now()));
    expect(waiting.done).toBe(false);
    expect(held.held).toBe(true);
    expect(held.signal.aborted).toBe(false);
    const stats = await a.guard.stats();
    expect(stats.scopes.global).toMatchObject({ in_use: 1, queued: 1 });
    expect(stats.stateLoss).toMatchObject({ reregistered: 1, lost: 0, learningUntil: null });
    expect(stats.fence).toBeGreaterThanOrEqual(held.fence);

    await holders.release(held);
    const next = holders.hold(granted(await waiting.promise));
    expect(next.fence).toBeGreaterThan(held.fence);
    expect(holders.max).toBe(1);
    await holders.release(next);
  });

  it("a holder whose lease cannot be re-registered learns it through lease.signal", async () => {
    server = await startRedis();
    const admin = await client(server.port);
    const group = newGroup("lost");
    const a = await node(server.port, group, { limits: { global: 2 } });
    const leases = [granted(await a.guard.acquire({ scopes: ["global"] })), granted(await a.guard.acquire({ scopes: ["global"] }))];
    const signals = leases.map((l) => l.signal);

    // The state is lost, and the fleet's limit is now 1: only one of the two fits again.
    await flushAndConfigure(admin, group, { global: 1 });
    await waitUntil("one lease lost", () => signals.some((s) => s.aborted), TTL_MS + 500, 10);
    await sleep(TTL_MS / 3 + 100); // the other's renewal has run too
    const aborted = signals.filter((s) => s.aborted);
    expect(aborted).toHaveLength(1);
    expect(aborted[0]!.reason).toMatchObject({ code: "SLOTGATE_LEASE_LOST" });
    expect(String((aborted[0]!.reason as Error).message)).toMatch(/lost with the store's state/);
    expect(a.events.filter((e) => e.type === "lease-lost")).toHaveLength(1);
    expect(a.events.filter((e) => e.type === "lease-reregistered")).toHaveLength(1);
    const stats = await a.guard.stats();
    expect(stats.scopes.global?.in_use).toBe(1);
    expect(stats.stateLoss).toMatchObject({ reregistered: 1, lost: 1 });
  });
});

describe("rule 12 on a replica promoted after it missed writes", () => {
  it("issues fences above every earlier one and admits no holder beside one it never saw", async () => {
    const master = await startRedis();
    stops.push(() => master.stop());
    const replica = await startRedisReplica(master);
    stops.push(() => replica.stop());
    const via = await Forwarder.start(master.port);
    const group = newGroup("failover");
    const a = await node(via.port, group, { limits: { global: 2 } });
    const holders = new Holders();
    const { fences } = holders;
    const take = () => holders.take(a.guard);
    const first = await take();
    await waitUntil(
      "the replica has the grant",
      async () => String(await sendCommand(replica.port, ["HGET", groupKeys("slotgate:", group)[1]!, "\0fence"])) === String(first.fence),
      2_000,
      10,
    );

    // The replica stops replicating; the old master goes on granting (higher fences) what it never sees.
    await sendCommand(replica.port, ["REPLICAOF", "NO", "ONE"]);
    for (let i = 0; i < 5; i++) await holders.release(await take());
    const second = await take(); // held on the old master only
    const highest = Math.max(...fences);

    // Failover: the old master dies, the clients are pointed at the promoted replica.
    await master.kill9();
    via.switchTo(replica.port);
    const fresh = await node(via.port, group, { limits: { global: 2 } }); // a node with no history of the group
    await waitUntil(
      "A is connected to the replica",
      async () =>
        await a.guard.stats().then(
          () => true,
          () => false,
        ),
      5_000,
      20,
    );
    // A's acquire finds the counter below fences A was granted: the group learns, nothing is granted.
    const waiting = track(a.guard.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 }));
    const waitingFresh = track(fresh.guard.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 }));
    await waitUntil("the second lease is re-registered", () => a.events.some((e) => e.type === "lease-reregistered"), TTL_MS + 1_000, 10);
    await sleep(TTL_MS + 300);
    await expectHeldPastLearningWindow(a, [first, second], [waiting, waitingFresh], highest);
    await expectWaitersGrantedAfterRelease(holders, [first, second], [waiting, waitingFresh], highest);
  }, 20_000);
});

describe("rule 12 at the edge node", () => {
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
  });

  it("a request in flight on limit 1 whose lease is lost with the state is cut; the origin never serves two", async () => {
    const server = await startRedis();
    stops.push(() => server.stop());
    const admin = await client(server.port);
    const o = await origin();
    const group = newGroup("edge");
    const redis = await client(server.port);
    const s = await startNode({
      store: createRedisStore({ redis, sweepIntervalMs: 100, safetyRecheckMs: 200 }),
      top: { group },
      frontend: { maxconn: 1 },
      backend: { lease_ttl: "1s", timeout: { queue: "5s", connect: "1s", server: "10s" } },
      servers: { s1: { address: o.address } },
    });
    const { limits, backends } = toGuardOptions(s.node.config);

    // A long response: 200 at once, then a chunk every 100 ms for 4 s.
    const cut = new Promise<{ status: number; bytes: number; aborted: boolean; ms: number }>((resolve) => {
      const t0 = Date.now();
      const req = net.connect({ host: "127.0.0.1", port: s.port }, () => req.write("GET /stream?chunks=40&interval=100&size=10 HTTP/1.1\r\nhost: x\r\n\r\n"));
      let data = "";
      req.on("data", (c: Buffer) => (data += c.toString("latin1")));
      req.on("error", () => undefined);
      req.once("close", () => resolve({ status: Number(data.slice(9, 12)), bytes: data.length, aborted: !data.endsWith("0\r\n\r\n"), ms: Date.now() - t0 }));
    });
    await waitUntil("the origin serves the request", () => o.current === 1, 2_000, 5);

    // The state is lost, and the fleet now allows nobody on the frontend: the lease cannot come back.
    await flushAndConfigure(admin, group, { ...limits, "frontend:web": 0 }, backends);
    const result = await cut;
    expect(result.status).toBe(200);
    expect(result.aborted).toBe(true);
    expect(result.ms).toBeLessThan(2_500); // within a renewal or two, not at the end of the 4 s stream
    await o.waitForCurrent(0, 1_000); // the request to the origin was abandoned too
    expect(s.node.nodeStats().frontends.web?.rejected["lease-lost"]).toBe(1);
    expect(s.logs.some((l) => l.msg === "lease lost mid-request: request stopped")).toBe(true);

    // The limit comes back: a new request is served (once the learning window is over), alone.
    await s.node.guard.configure({ limits });
    const reply = await fetch(`${s.url}/hello`, { signal: AbortSignal.timeout(5_000) });
    expect(reply.status).toBe(200);
    expect(o.max).toBe(1);
  }, 20_000);
});
