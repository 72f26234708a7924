// slotgate's middleware in real frameworks over loopback: hono on Node (@hono/node-server),
// express and fastify, each as 2 app processes (test/support/middleware-app.ts) sharing one limit
// of 5 on one redis-server. The handlers' work is a request to an origin that records how many
// run at once, fleet-wide. Slots and queue are read from the store through a guard of the test's
// own on the same group. Every wait is bounded.
import http from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuard, type Guard } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { httpRequest, until } from "../support/fleet.js";
import type { Framework } from "../support/middleware-app.js";
import { startApp, type AppProcess } from "../support/middleware-fleet.js";
import { startOrigin, type Origin } from "../support/origin.js";

const LIMIT = 5;
const FRAMEWORKS: Framework[] = ["hono", "express", "fastify"];

let redis: RedisProcess;
let origin: Origin;
const clients: Redis[] = [];

beforeAll(async () => {
  [redis, origin] = await Promise.all([startRedis(), startOrigin()]);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await origin?.close();
  await redis?.stop();
});

/** Opens a response and resolves once its head and first chunk are in; `destroy` cuts the connection. */
function openStream(url: string): Promise<{ first: string; rest: Promise<string>; destroy: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = "";
      let resolved = false;
      const rest = new Promise<string>((done, fail) => {
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString("utf8");
          if (!resolved) {
            resolved = true;
            resolve({ first: body, rest, destroy: () => req.destroy() });
          }
        });
        res.once("end", () => done(body));
        res.once("error", fail);
      });
      rest.catch(() => undefined);
    });
    req.once("error", reject);
  });
}

describe.each(FRAMEWORKS)("slotgate/%s: 2 processes on one Redis limit", (framework) => {
  const group = `mw-${framework}`;
  let apps: AppProcess[] = [];
  let guard: Guard;
  const scope = async (name = "global") => (await guard.stats()).scopes[name]!;
  const idle = (what: string) => until(async () => (await scope()).in_use === 0, 5_000, 20, `${what}: no slot in use`);

  beforeAll(async () => {
    const config = { framework, redisUrl: redis.url, group, origin: origin.address, limit: LIMIT, queueTimeoutMs: 10_000 };
    apps = await Promise.all([startApp(config), startApp(config)]);
    const client = new Redis(redis.url);
    clients.push(client);
    guard = createGuard({ store: createRedisStore({ redis: client }), group, limits: { global: LIMIT, deny: 1 } });
  }, 60_000);

  afterAll(async () => {
    await guard?.close();
    await Promise.all(apps.map((a) => a.stop()));
  });

  it("40 concurrent requests on a limit of 5: never more than 5 handlers running, all answered", async () => {
    origin.resetCounters();
    const before = await scope();
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => httpRequest(`${apps[i % 2]!.url}/api/work?delay=40`)));
    expect(replies.map((r) => r.status)).toEqual(Array(40).fill(200));
    expect(origin.max).toBeLessThanOrEqual(LIMIT);
    expect(origin.max).toBe(LIMIT); // saturated: the limit is reached, not just respected
    await idle("after the burst");
    const after = await scope();
    expect(after.granted - before.granted).toBe(40);
    expect(after.released - before.released).toBe(40);
    expect(after.peak_in_use).toBe(LIMIT);
  });

  it("the handler sees its lease", async () => {
    const reply = await httpRequest(`${apps[0]!.url}/api/lease`);
    const lease = JSON.parse(reply.body) as { fence: number; held: boolean };
    expect(reply.status).toBe(200);
    expect(lease.held).toBe(true);
    expect(lease.fence).toBeGreaterThan(0);
    await idle("after /api/lease");
  });

  it("requests one after another on a kept-alive connection (the first queued behind a full limit) leave no listener behind", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // 5 holders fill the limit; the connection's requests then queue (the first at least) and run one by one.
      const holders = Array.from({ length: LIMIT }, () => httpRequest(`${apps[1]!.url}/api/work?delay=300`));
      for (let i = 0; i < 20; i++) expect((await httpRequest(`${apps[0]!.url}/api/work?delay=0`, { agent })).status).toBe(200);
      expect((await Promise.all(holders)).map((r) => r.status)).toEqual(Array(LIMIT).fill(200));
      await idle("after the kept-alive requests");
      expect(apps[0]!.output()).not.toContain("MaxListenersExceeded");
    } finally {
      agent.destroy();
    }
  });

  it("a streamed response holds its slot until the stream ends", async () => {
    const t0 = performance.now();
    const stream = await openStream(`${apps[1]!.url}/api/stream?chunks=8&interval=100`);
    expect(stream.first).toContain("chunk 0");
    expect((await scope()).in_use).toBe(1);
    const body = await stream.rest;
    expect(body).toContain("chunk 7");
    await idle("after the stream");
    // Held for the stream's whole life (~700 ms), not just until the handler returned.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(650);
  });

  it("a handler that throws gives its slot back", async () => {
    const before = await scope();
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => httpRequest(`${apps[i % 2]!.url}/api/throw`)));
    expect(replies.map((r) => r.status)).toEqual(Array(6).fill(500));
    await idle("after the throws");
    const after = await scope();
    expect(after.released - before.released).toBe(6);
  });

  it("a client that disconnects mid-stream frees its slot at once", async () => {
    const before = await scope();
    // A 20 s stream: its slot must come back long before the stream would have ended.
    const stream = await openStream(`${apps[0]!.url}/api/stream?chunks=200&interval=100`);
    expect((await scope()).in_use).toBe(1);
    const t0 = performance.now();
    stream.destroy();
    await idle("after the disconnect");
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect((await scope()).released - before.released).toBe(1);
  });

  it("a client that disconnects while queued leaves the queue", async () => {
    const before = await scope();
    const holders = Array.from({ length: LIMIT }, (_, i) => httpRequest(`${apps[i % 2]!.url}/api/work?delay=1500`));
    await until(async () => (await scope()).in_use === LIMIT, 5_000, 20, "all slots taken");
    const controller = new AbortController();
    const queued = httpRequest(`${apps[1]!.url}/api/work?delay=0`, { signal: controller.signal }).catch((error: unknown) => error);
    await until(async () => (await scope()).queued === 1, 5_000, 20, "one request queued");
    controller.abort();
    await until(async () => (await scope()).queued === 0, 3_000, 20, "the queue left");
    expect(await queued).toBeInstanceOf(Error);
    expect((await scope()).in_use).toBe(LIMIT); // the holders were never disturbed
    const replies = await Promise.all(holders);
    expect(replies.map((r) => r.status)).toEqual(Array(LIMIT).fill(200));
    await idle("after the holders");
    const after = await scope();
    expect(after.aborted - before.aborted).toBe(1);
    expect(after.granted - before.granted).toBe(LIMIT);
  });

  it("a rejection answers denyStatus with Retry-After and x-slotgate-reason", async () => {
    const holder = httpRequest(`${apps[0]!.url}/deny/x?delay=500`);
    await until(async () => (await scope("deny")).in_use === 1, 5_000, 20, "the deny slot taken");
    const denied = await httpRequest(`${apps[1]!.url}/deny/x`);
    expect(denied.status).toBe(429);
    expect(denied.headers["retry-after"]).toBe("1");
    expect(denied.headers["x-slotgate-reason"]).toBe("full");
    expect((await holder).status).toBe(200);
    await until(async () => (await scope("deny")).in_use === 0, 5_000, 20, "the deny slot back");
  });
});
