// One app process for the middleware tests (forked by ./middleware-fleet.ts with `--import tsx`):
// the same small app on hono (@hono/node-server), express or fastify, guarded by slotgate's
// middleware for that framework on the Redis store, listening on 127.0.0.1 port 0. It tells its
// parent its port over IPC and exits when the parent's IPC channel closes.
//
// Routes (all under the middleware, one scope "global" with the limit the parent gives):
//   GET /api/work?delay=MS                 the handler's work is a request to the parent's origin, which
//                                          records how many handlers run at once, fleet-wide
//   GET /api/stream?chunks=N&interval=MS   streams N chunks, one every MS ms
//   GET /api/throw                         the handler throws
//   GET /api/lease                         the lease the handler sees: { fence, held }
//   GET /deny/x                            a second middleware: scope "deny", no queue (rejections)
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { Redis } from "ioredis";
import { createGuard } from "../../src/index.js";
import { slotgate as expressSlotgate } from "../../src/middleware/express.js";
import fastifySlotgate from "../../src/middleware/fastify.js";
import { slotgate as honoSlotgate, type SlotgateVariables } from "../../src/middleware/hono.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import type { Lease } from "../../src/core/lease.js";

export type Framework = "hono" | "express" | "fastify";

export interface AppConfig {
  framework: Framework;
  redisUrl: string;
  group: string;
  origin: string;
  limit: number;
  queueTimeoutMs: number;
}

const config = JSON.parse(process.argv[2]!) as AppConfig;
const redis = new Redis(config.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
const guard = createGuard({ store: createRedisStore({ redis }), group: config.group, limits: { global: config.limit, deny: 1 } });
const common = { guard, scopes: ["global"], queueTimeoutMs: config.queueTimeoutMs, leaseTtlMs: 5_000 };
const denying = { guard, scopes: ["deny"], queueTimeoutMs: 0, denyStatus: 429 as const };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const num = (value: unknown, fallback: number) => (typeof value === "string" && /^\d+$/.test(value) ? Number(value) : fallback);

async function work(delay: number): Promise<string> {
  const res = await fetch(`http://${config.origin}/work?delay=${delay}`);
  return res.text();
}

/** The body of /api/stream: `chunks` lines, one every `interval` ms. */
function chunks(n: number, interval: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i > 0) await sleep(interval);
      if (i >= n) return controller.close();
      controller.enqueue(encoder.encode(`chunk ${i++}\n`));
    },
  });
}

const leaseJson = (lease: Lease | null | undefined) => JSON.stringify({ fence: lease?.fence ?? null, held: lease?.held ?? false });

async function startHono(): Promise<number> {
  const app = new Hono<{ Variables: SlotgateVariables }>();
  app.use("/api/*", honoSlotgate(common));
  app.use("/deny/*", honoSlotgate(denying));
  app.get("/api/work", async (c) => c.text(await work(num(c.req.query("delay"), 0))));
  app.get("/api/stream", (c) => c.body(chunks(num(c.req.query("chunks"), 10), num(c.req.query("interval"), 100)), 200, { "content-type": "text/plain" }));
  app.get("/api/throw", () => {
    throw new Error("handler failed");
  });
  app.get("/api/lease", (c) => c.body(leaseJson(c.get("slotgate")), 200, { "content-type": "application/json" }));
  app.get("/deny/x", async (c) => {
    await sleep(num(c.req.query("delay"), 0));
    return c.text("ok");
  });
  app.onError((_error, c) => c.text("handler failed", 500));
  return new Promise((resolve) => {
    serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => resolve(info.port));
  });
}

async function startExpress(): Promise<number> {
  const app = express();
  app.use("/api", expressSlotgate(common));
  app.use("/deny", expressSlotgate(denying));
  app.get("/api/work", async (req, res) => {
    res.type("text/plain").send(await work(num(req.query.delay, 0)));
  });
  app.get("/api/stream", async (req, res) => {
    res.type("text/plain");
    const reader = chunks(num(req.query.chunks, 10), num(req.query.interval, 100)).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      res.write(value);
    }
    res.end();
  });
  app.get("/api/throw", () => {
    throw new Error("handler failed");
  });
  app.get("/api/lease", (req, res) => {
    res.type("application/json").send(leaseJson(req.slotgate));
  });
  app.get("/deny/x", async (req, res) => {
    await sleep(num(req.query.delay, 0));
    res.send("ok");
  });
  app.use((_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send("handler failed");
  });
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

async function startFastify(): Promise<number> {
  const app = Fastify();
  await app.register(async (api) => {
    await api.register(fastifySlotgate, common);
    api.get("/api/work", async (request) => work(num((request.query as Record<string, unknown>).delay, 0)));
    api.get("/api/stream", async (request, reply) => {
      const q = request.query as Record<string, unknown>;
      return reply.type("text/plain").send(chunks(num(q.chunks, 10), num(q.interval, 100)));
    });
    api.get("/api/throw", async () => {
      throw new Error("handler failed");
    });
    api.get("/api/lease", async (request, reply) => reply.type("application/json").send(leaseJson(request.slotgate)));
  });
  await app.register(async (deny) => {
    await deny.register(fastifySlotgate, denying);
    deny.get("/deny/x", async (request) => {
      await sleep(num((request.query as Record<string, unknown>).delay, 0));
      return "ok";
    });
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as AddressInfo).port;
}

const start = { hono: startHono, express: startExpress, fastify: startFastify }[config.framework];
const port = await start();
process.send?.({ port });
// The parent went away (or closed the channel): nothing left to serve.
process.on("disconnect", () => process.exit(0));
