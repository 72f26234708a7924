// What each middleware answers itself, in-process on the memory store: a rejection (the edge
// node's answer, or onRejected's), a key value the guard refuses (400), and a fault of the guard
// (the framework's error path). hono through app.request, fastify through inject, express over
// loopback.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import express from "express";
import Fastify, { type FastifyReply } from "fastify";
import { Hono } from "hono";
import { afterAll, describe, expect, it } from "vitest";
import { createGuard, type Lease } from "../../src/index.js";
import { slotgate as expressSlotgate } from "../../src/middleware/express.js";
import fastifySlotgate from "../../src/middleware/fastify.js";
import { slotgate as honoSlotgate } from "../../src/middleware/hono.js";

interface Reply {
  status: number;
  headers: Record<string, string | undefined>;
  body: string;
}

/** One app per framework, all with the same options; `get` sends one request. */
type Harness = { get(path: string, headers?: Record<string, string>): Promise<Reply>; close(): Promise<void> };

const guard = createGuard({ limits: { one: 1, tenant: { perKey: 1 } } });
const base = { guard, scopes: (r: unknown) => ["one", `tenant:${header(r, "x-tenant") ?? "anon"}`], queueTimeoutMs: 0 };
let held: Lease | undefined;

function header(r: unknown, name: string): string | undefined {
  const req = r as { req?: { header(n: string): string | undefined }; headers?: Record<string, string | undefined> };
  return req.req ? req.req.header(name) : req.headers?.[name];
}

async function honoHarness(onRejected: boolean): Promise<Harness> {
  const app = new Hono();
  app.use(honoSlotgate({ ...base, ...(onRejected ? { onRejected: (c, r) => c.text(`own ${r.reason}`, 429) } : {}) }));
  app.get("/x", (c) => c.text("ok"));
  app.onError((_e, c) => c.text("fault", 500));
  return {
    async get(path, headers = {}) {
      const res = await app.request(path, { headers });
      return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
    },
    close: async () => undefined,
  };
}

async function fastifyHarness(onRejected: boolean): Promise<Harness> {
  const app = Fastify();
  await app.register(fastifySlotgate, {
    ...base,
    ...(onRejected ? { onRejected: (_q: unknown, reply: FastifyReply, r: { reason: string }) => reply.code(429).send(`own ${r.reason}`) } : {}),
  });
  app.get("/x", async () => "ok");
  return {
    async get(path, headers = {}) {
      const res = await app.inject({ method: "GET", url: path, headers });
      return { status: res.statusCode, headers: res.headers as Record<string, string>, body: res.body };
    },
    close: () => app.close(),
  };
}

async function expressHarness(onRejected: boolean): Promise<Harness> {
  const app = express();
  app.use(expressSlotgate({ ...base, ...(onRejected ? { onRejected: (_q, res, r) => void res.status(429).send(`own ${r.reason}`) } : {}) }));
  app.get("/x", (_req, res) => void res.send("ok"));
  const server = app.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    async get(path, headers = {}) {
      const res = await fetch(url + path, { headers });
      return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

afterAll(async () => {
  await held?.release();
  await guard.close();
});

describe.each([
  ["hono", honoHarness],
  ["express", expressHarness],
  ["fastify", fastifyHarness],
] as const)("slotgate/%s answers", (_name, make) => {
  it("a rejection: 503 with Retry-After and x-slotgate-reason, or onRejected's answer", async () => {
    const [plain, own] = [await make(false), await make(true)];
    try {
      expect((await plain.get("/x")).status).toBe(200);
      const r = await guard.acquire({ scopes: ["one"] });
      if (!r.ok) throw new Error("the test's own slot was refused");
      held = r.lease;
      const denied = await plain.get("/x");
      expect(denied.status).toBe(503);
      expect(denied.headers["retry-after"]).toBe("1");
      expect(denied.headers["x-slotgate-reason"]).toBe("full");
      expect(denied.body).toContain("no slot (full)");
      const mine = await own.get("/x");
      expect([mine.status, mine.body]).toEqual([429, "own full"]);
    } finally {
      await held?.release();
      await Promise.all([plain.close(), own.close()]);
    }
  });

  it("a key value the guard refuses (too long): 400, and nothing held", async () => {
    const app = await make(false);
    try {
      const res = await app.get("/x", { "x-tenant": "k".repeat(2_000) });
      expect(res.status).toBe(400);
      expect((await guard.stats()).scopes.one!.in_use).toBe(0);
    } finally {
      await app.close();
    }
  });
});
