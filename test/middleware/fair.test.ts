// The middleware's `flow` and `queueTimeoutEarly` options (issue 13) in hono (@hono/node-server),
// express and fastify, in process on the memory store, over real loopback HTTP: a tenant header
// read by the app's own function becomes the acquire's flow, and an early rejection answers with
// a Retry-After from the store's estimate.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { createGuard, type Guard } from "../../src/index.js";
import { slotgate as expressSlotgate } from "../../src/middleware/express.js";
import fastifySlotgate from "../../src/middleware/fastify.js";
import { slotgate as honoSlotgate } from "../../src/middleware/hono.js";
import { request, until, type Reply } from "../support/edge.js";

type Framework = "hono" | "express" | "fastify";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface App {
  url: string;
  guard: Guard;
  /** The tenants whose handlers ran, in the order they started. */
  served: string[];
}

/**
 * One app: `GET /work?delay=MS` under the middleware (one scope `global` of limit 1), the tenant
 * from `x-tenant` as its flow. The handler notes its tenant, then waits `delay` ms.
 */
async function startApp(framework: Framework, options: { queueTimeoutMs: number; queueTimeoutEarly?: boolean }): Promise<App> {
  const guard = createGuard({ group: `fair-${framework}`, limits: { global: 1 } });
  cleanups.push(() => guard.close());
  const served: string[] = [];
  const work = async (tenant: string | undefined, delay: string | undefined) => {
    served.push(tenant ?? "-");
    await sleep(Number(delay ?? 0));
    return "ok";
  };
  const common = { guard, scopes: ["global"], queueTimeoutMs: options.queueTimeoutMs, queueTimeoutEarly: options.queueTimeoutEarly ?? false };
  let port: number;
  if (framework === "hono") {
    const app = new Hono();
    app.use("/work", honoSlotgate({ ...common, flow: (c) => c.req.header("x-tenant") }));
    app.get("/work", async (c) => c.text(await work(c.req.header("x-tenant"), c.req.query("delay"))));
    port = await new Promise<number>((resolve) => {
      const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => resolve(info.port));
      cleanups.push(() => new Promise((done) => server.close(done)));
    });
  } else if (framework === "express") {
    const app = express();
    app.use("/work", expressSlotgate({ ...common, flow: (req) => req.get("x-tenant") }));
    app.get("/work", async (req, res) => {
      res.send(await work(req.get("x-tenant"), typeof req.query.delay === "string" ? req.query.delay : undefined));
    });
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise((done) => server.close(done)));
    port = (server.address() as AddressInfo).port;
  } else {
    const app = Fastify();
    await app.register(fastifySlotgate, { ...common, flow: (req) => (typeof req.headers["x-tenant"] === "string" ? req.headers["x-tenant"] : undefined) });
    app.get("/work", async (req) => work(req.headers["x-tenant"] as string | undefined, (req.query as Record<string, string | undefined>).delay));
    await app.listen({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => app.close());
    port = (app.server.address() as AddressInfo).port;
  }
  return { url: `http://127.0.0.1:${port}`, guard, served };
}

describe.each(["hono", "express", "fastify"] as const)("slotgate/%s: flow and queueTimeoutEarly", (framework) => {
  it("serves two tenants' waiting requests in fair order: the flow comes from the app's function", async () => {
    const app = await startApp(framework, { queueTimeoutMs: 10_000 });
    const replies: Array<Promise<Reply>> = [request(`${app.url}/work?delay=500`, { headers: { "x-tenant": "gate" } })];
    await until(() => app.served.length === 1);
    let queued = 0;
    const enqueue = async (tenant: string) => {
      replies.push(request(`${app.url}/work?delay=5`, { headers: { "x-tenant": tenant } }));
      queued++;
      await until(async () => (await app.guard.stats()).tickets === queued, 2000);
    };
    for (let i = 0; i < 6; i++) await enqueue("heavy");
    await enqueue("light");
    await enqueue("light");
    expect((await Promise.all(replies)).map((r) => r.status)).toEqual(new Array(9).fill(200));
    // FIFO would be gate, 6 × heavy, light, light.
    expect(app.served.slice(0, 6)).toEqual(["gate", "heavy", "light", "heavy", "light", "heavy"]);
  }, 15_000);

  it("answers an over-long flow 400 without reaching the handler; an empty one is no flow", async () => {
    const app = await startApp(framework, { queueTimeoutMs: 1000 });
    const long = await request(`${app.url}/work`, { headers: { "x-tenant": "t".repeat(1025) } });
    expect(long.status).toBe(400);
    expect(long.body).not.toContain("tttt");
    expect((await request(`${app.url}/work`, { headers: { "x-tenant": "" } })).status).toBe(200);
    expect((await request(`${app.url}/work`, { headers: { "x-tenant": "t".repeat(1024) } })).status).toBe(200);
    expect(app.served).toHaveLength(2);
  });

  it("rejects at once, with a Retry-After from the estimate, a request that would wait past its timeout", async () => {
    const DELAY = 300;
    const app = await startApp(framework, { queueTimeoutMs: 1500, queueTimeoutEarly: true });
    // Learn the hand-off rate: one holds the slot, two are handed it from the queue.
    const learnt = await Promise.all([0, 1, 2].map(() => request(`${app.url}/work?delay=${DELAY}`)));
    expect(learnt.map((r) => r.status)).toEqual([200, 200, 200]);
    const replies: Array<Promise<Reply>> = [];
    let rejected: Reply | undefined;
    for (let i = 0; i < 10 && rejected === undefined; i++) {
      const reply = request(`${app.url}/work?delay=${DELAY}`);
      replies.push(reply);
      // Served (its handler ran) or queued: together, every request of the backlog sent so far.
      const inside = until(async () => app.served.length - 3 + (await app.guard.stats()).tickets >= i + 1, 2000).then(() => undefined);
      const settled = await Promise.race([reply, inside]);
      if (settled !== undefined && settled.status === 503) rejected = settled;
    }
    expect(rejected, "no request was rejected early").toBeDefined();
    expect(rejected!.headers["x-slotgate-reason"]).toBe("queue-timeout");
    expect(rejected!.ms).toBeLessThan(500);
    expect(Number(rejected!.headers["retry-after"])).toBeGreaterThanOrEqual(2);
    expect((await app.guard.stats()).scopes.global!.rejected_early).toBeGreaterThanOrEqual(1);
    await Promise.all(replies);
  }, 20_000);
});
