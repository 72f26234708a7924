// One app of the middleware benchmark (forked by ../middleware.ts with `--import tsx`): the same
// one-route app on hono (@hono/node-server), express or fastify, with slotgate's middleware on the
// memory store or without it. Listens on 127.0.0.1 port 0 and sends its port to the parent, and
// its CPU time when asked.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { createGuard } from "../../../src/index.js";
import { slotgate as expressSlotgate } from "../../../src/middleware/express.js";
import fastifySlotgate from "../../../src/middleware/fastify.js";
import { slotgate as honoSlotgate } from "../../../src/middleware/hono.js";

const [framework, mode] = process.argv.slice(2) as ["hono" | "express" | "fastify", "bare" | "noop" | "guarded"];
// A limit no run reaches: the figure is the middleware's own cost, never a queue's.
const options = { guard: createGuard({ limits: { global: 100_000 } }), scopes: ["global"] };
const guarded = mode === "guarded";
/** An async middleware that does nothing but wait one promise: what any async middleware costs. */
const noop = mode === "noop";

async function hono(): Promise<number> {
  const app = new Hono();
  if (guarded) app.use("/api/*", honoSlotgate(options));
  if (noop) app.use("/api/*", async (_c, next) => next());
  app.get("/api/x", (c) => c.text("ok"));
  return new Promise((resolve) => serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => resolve(info.port)));
}

async function expressApp(): Promise<number> {
  const app = express();
  if (guarded) app.use("/api", expressSlotgate(options));
  if (noop) app.use("/api", (_req, _res, next) => void Promise.resolve().then(() => next()));
  app.get("/api/x", (_req, res) => void res.send("ok"));
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

async function fastify(): Promise<number> {
  const app = Fastify();
  if (guarded) await app.register(fastifySlotgate, options);
  if (noop) app.addHook("onRequest", async () => undefined);
  app.get("/api/x", async () => "ok");
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as AddressInfo).port;
}

const port = await { hono, express: expressApp, fastify }[framework]();
process.send?.({ port });
// The parent asks for this process's CPU time around a run: CPU per request holds up on a busy
// machine, where requests per second do not.
process.on("message", () => process.send?.({ cpu: process.cpuUsage() }));
process.on("disconnect", () => process.exit(0));
