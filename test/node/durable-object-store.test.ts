/**
 * The Durable Object store over the Worker's slot API, from Node: `wrangler dev` runs the Worker
 * (real workerd, the SlotGroup object in local SQLite) on a free 127.0.0.1 port, with the slot API
 * token and an edge config in front of a Node origin. Then:
 * - the shared store conformance suite, unchanged, against createDurableObjectHttpStore;
 * - a wrong or missing token is refused (401) and changes nothing;
 * - one fleet, two runtimes: a Node guard and the Worker's proxy share the same limits;
 * - the Node edge node's `store: { type: durable-object, url, token }`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuard } from "../../src/index.js";
import { createDurableObjectHttpStore, type FetchLike } from "../../src/stores/durable-object/index.js";
import type { GroupSpec } from "../../src/index.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createLogger } from "../../src/node/logger.js";
import { openStore } from "../../src/node/store.js";
import { runConformance } from "../conformance/store.case.js";
import { closedPort, startOrigin, type Origin } from "../support/origin.js";

const TOKEN = "node-test-slot-api-token-0123456789";
const START_TIMEOUT_MS = 45_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let wrangler: ChildProcess | undefined;
let output = "";
let url = "";
let origin: Origin;
let tmp = "";

/** The config the Worker proxies with (the origin's port is known only at start). */
const edgeConfig = (originAddress: string) => ({
  group: "node-fleet",
  frontends: { web: { default_backend: "app" } },
  backends: { app: { maxconn: 2, timeout: { queue: 0 }, servers: { o: { address: originAddress } } } },
});

async function startWrangler(): Promise<void> {
  const port = await closedPort();
  const inspector = await closedPort();
  tmp = mkdtempSync(join(tmpdir(), "slotgate-wrangler-"));
  wrangler = spawn(
    process.execPath,
    [
      "node_modules/wrangler/bin/wrangler.js",
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-ip",
      "127.0.0.1",
      "--inspector-port",
      String(inspector),
      "--persist-to",
      join(tmp, "state"),
      "--log-level",
      "warn",
      "--show-interactive-dev-session=false",
      "--var",
      `SLOTGATE_API_TOKEN:${TOKEN}`,
      "--var",
      `SLOTGATE_CONFIG:${JSON.stringify(edgeConfig(origin.address))}`,
    ],
    {
      cwd: process.cwd(),
      // Its own process group, so that afterAll ends wrangler and the workerd it starts, and only them.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1", XDG_CONFIG_HOME: join(tmp, "config") },
    },
  );
  wrangler.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  wrangler.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (wrangler.exitCode !== null) throw new Error(`wrangler dev exited (${wrangler.exitCode}):\n${output}`);
    try {
      const res = await fetch(`${url}/_slotgate/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`wrangler dev did not answer within ${START_TIMEOUT_MS} ms:\n${output}`);
    await sleep(200);
  }
}

async function stopWrangler(): Promise<void> {
  const child = wrangler;
  if (!child?.pid || child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  origin = await startOrigin({ delayMs: 0 });
  await startWrangler();
}, START_TIMEOUT_MS + 15_000);

afterAll(async () => {
  await stopWrangler();
  await origin?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

runConformance({
  name: "durable-object over the slot API (wrangler dev)",
  createStore: () => createDurableObjectHttpStore({ url, token: TOKEN }),
  advance: (ms) => sleep(ms),
  settle: () => sleep(120),
  // Every call crosses HTTP, wrangler's proxy and the Worker (p50 ≈ 5 ms, p99 ≈ 60 ms when the
  // machine is busy): leases of 6 units must survive a slow renew.
  unitMs: 100,
  skip: [
    {
      reason: "a Durable Object's state is durable SQLite storage: it restarts with its leases and fence, and loses them only to a storage wipe",
      tests: ["after the store lost the group's state, the holder re-registers and nothing new is granted for one lease TTL"],
    },
  ],
});

describe("slot API from Node", () => {
  const api = (path: string, init: RequestInit = {}) => fetch(`${url}/_slotgate/v1${path}`, init);
  const stats = async (group: string) => {
    const res = await api(`/groups/${group}/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await res.json()) as { value: { now?: number } };
    delete body.value.now;
    return body;
  };

  it("refuses a wrong or missing token with 401, and nothing changes", async () => {
    const group = `auth-${process.pid}-${Date.now()}`;
    const guard = createGuard({ store: createDurableObjectHttpStore({ url, token: TOKEN }), group, limits: { global: 1 } });
    const held = await guard.acquire({ scopes: ["global"] });
    expect(held.ok).toBe(true);
    const before = await stats(group);

    for (const authorization of [undefined, "Bearer wrong-token-0123456789abcdef", `Bearer ${TOKEN}-`, `Basic ${TOKEN}`]) {
      const headers: Record<string, string> = { "content-type": "application/json", ...(authorization ? { authorization } : {}) };
      const replies = await Promise.all([
        api(`/groups/${group}/stats`, { headers }),
        api(`/groups/${group}/configure`, {
          method: "POST",
          headers,
          body: JSON.stringify({ spec: { limits: { global: { max: 100, maxqueue: null, keyed: false } }, backends: {} } }),
        }),
        api(`/groups/${group}/release`, { method: "POST", headers, body: JSON.stringify({ leaseId: held.ok ? held.lease.id : "x" }) }),
        api(`/groups/${group}/acquire`, {
          method: "POST",
          headers,
          body: JSON.stringify({
            request: { scopes: ["global"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 0, leaseTtlMs: 30_000 },
            waiterId: "intruder",
          }),
        }),
      ]);
      for (const res of replies) {
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="slotgate"');
        expect(await res.json()).toEqual({ status: -5, detail: "missing or wrong bearer token" });
      }
    }
    expect(await stats(group)).toEqual(before);

    // Through the client: a coded error, which the guard turns into its outage policy.
    const wrong = createDurableObjectHttpStore({ url, token: "wrong-token-0123456789abcdef" });
    await expect(wrong.ping()).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: false });
    const intruder = createGuard({ store: wrong, group, limits: { global: 1 } });
    expect(await intruder.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "unavailable" });
    expect(await stats(group)).toEqual(before);
    await intruder.close();
    await guard.close();
  });

  it("one fleet, two runtimes: a Node guard and the Worker's proxy share the backend's maxconn", async () => {
    const config = validateEdgeConfig({ ...edgeConfig(origin.address), frontends: { web: { bind: "127.0.0.1:0", default_backend: "app" } } });
    const guard = createGuard({ ...toGuardOptions(config), store: createDurableObjectHttpStore({ url, token: TOKEN }) });
    // Node takes both slots of the backend…
    const leases = await Promise.all([guard.acquire({ backend: "app" }), guard.acquire({ backend: "app" })]);
    expect(leases.every((l) => l.ok)).toBe(true);
    // …so the Worker, whose config has no queue, turns its client away.
    const refused = await fetch(`${url}/via-worker`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("x-slotgate-reason")).toBe("full");
    await refused.text();
    for (const l of leases) if (l.ok) await l.lease.release();
    const served = await fetch(`${url}/via-worker`);
    expect(served.status).toBe(200);
    expect(((await served.json()) as { path: string }).path).toBe("/via-worker");
    await guard.close();
  });

  it("is the Node edge node's store for `store: { type: durable-object, url, token }`", async () => {
    const logger = createLogger({ level: "silent" });
    const opened = await openStore({ type: "durable-object", url, token: TOKEN }, logger);
    expect(opened.description).toContain(`durable-object ${url}`);
    expect(opened.store.kind).toBe("durable-object");
    expect(await opened.ready(5000)).toBe(true);
    await opened.close();
    const refused = await openStore({ type: "durable-object", url, token: "wrong-token-0123456789abcdef" }, logger);
    expect(await refused.ready(600)).toBe(false);
    expect(refused.description).not.toContain("wrong-token");
  });

  it("a cold start is not an outage: a process started before its slot API answers waits for it, within timeoutMs", async () => {
    // A relay on a port nobody listens on yet; it starts forwarding to wrangler dev 700 ms later.
    const port = await closedPort();
    const target = new URL(url);
    const sockets = new Set<net.Socket>();
    const relay = net.createServer((client) => {
      const upstream = net.connect({ host: target.hostname, port: Number(target.port) });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => undefined);
        s.once("close", () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    const opening = sleep(700).then(() => new Promise<void>((resolve) => relay.listen(port, "127.0.0.1", resolve)));
    try {
      const guard = createGuard({
        store: createDurableObjectHttpStore({ url: `http://127.0.0.1:${port}`, token: TOKEN, timeoutMs: 5_000 }),
        group: `cold-${process.pid}-${Date.now()}`,
        limits: { global: 1 },
      });
      const startedAt = Date.now();
      const r = await guard.acquire({ scopes: ["global"] });
      expect(r.ok).toBe(true);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(600);
      expect((await guard.stats()).fallback).toMatchObject({ fail_closed: 0, store_errors: 0 });
      await guard.close();
    } finally {
      await opening;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it("refuses options that would leak the token: plain http off loopback, credentials in the URL", () => {
    expect(() => createDurableObjectHttpStore({ url: "http://slots.example.com", token: TOKEN })).toThrow(/url: expected the slotgate Worker's https:\/\/ URL/);
    expect(() => createDurableObjectHttpStore({ url: "https://user:pw@slots.example.com", token: TOKEN })).toThrow(/url:/);
    expect(() => createDurableObjectHttpStore({ url: "https://slots.example.com", token: "short" })).toThrow(/token: expected .*\(5 characters, not shown\)/);
    expect(() => createDurableObjectHttpStore({ url: "https://slots.example.com/", token: TOKEN, retries: 11 })).toThrow(/retries/);
    expect(createDurableObjectHttpStore({ url: "https://slots.example.com/base/", token: TOKEN }).kind).toBe("durable-object");
  });
});

// ── the client's fault handling, against a scripted fetch (no server) ───────────────────────────

type Route = (body: Record<string, unknown> | undefined, init: RequestInit) => Response | Promise<Response>;

/** A fetch that answers each op (the last path segment) by script; unscripted ops answer a success Reply. */
function scripted(routes: Partial<Record<string, Route>>): { fetch: FetchLike; calls: string[] } {
  const calls: string[] = [];
  const fetch: FetchLike = async (input, init) => {
    const op = new URL(input).pathname.split("/").pop()!;
    calls.push(op);
    const body = typeof init.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : undefined;
    const route = routes[op];
    if (route) return route(body, init);
    const value = op === "release" || op === "cancel" || op === "ping" ? true : null;
    return Response.json({ status: 0, value });
  };
  return { fetch, calls };
}

const SPEC: GroupSpec = { limits: { global: { max: 1, maxqueue: null, keyed: false } }, backends: {} };
const CHAIN = { scopes: ["global"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 5_000, leaseTtlMs: 30_000 };
const fault = (retryable: boolean) => Response.json({ error: "SLOTGATE_STORE_UNAVAILABLE", detail: "object reset", retryable }, { status: 503 });

describe("HTTP store client (scripted fetch)", () => {
  const open = (routes: Partial<Record<string, Route>>, more: { retries?: number } = {}) => {
    const s = scripted(routes);
    const handle = createDurableObjectHttpStore({ url: "https://slots.example.com/base/", token: TOKEN, fetch: s.fetch, retryDelayMs: 1, ...more }).open(
      "g",
      SPEC,
    );
    return { handle, calls: s.calls };
  };

  it("retries idempotent calls on retryable faults (503 fault, network error), never an acquire", async () => {
    let failures = 2;
    const a = open({ release: () => (failures-- > 0 ? fault(true) : Response.json({ status: 0, value: true })) });
    expect(await a.handle.release("l1")).toBe(true);
    expect(a.calls).toEqual(["configure", "release", "release", "release"]);

    const b = open({ stats: () => Promise.reject(new TypeError("fetch failed")) }, { retries: 2 });
    await expect(b.handle.stats()).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true });
    expect(b.calls.filter((c) => c === "stats")).toHaveLength(3);

    const c = open({ acquire: () => fault(true) });
    await expect(c.handle.acquire(CHAIN)).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE" });
    expect(c.calls.filter((x) => x === "acquire")).toHaveLength(1);

    const d = open({ renew: () => fault(false) });
    await expect(d.handle.renew("l1", 1000)).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: false });
    expect(d.calls.filter((x) => x === "renew")).toHaveLength(1);
  });

  it("maps answers to coded errors through the one status mapping, and HTTP-only answers to unavailable", async () => {
    const h = open({
      acquire: () => Response.json({ status: -1, detail: "nope" }, { status: 422 }),
      renew: () => Response.json({ status: -5, detail: "missing or wrong bearer token" }, { status: 401 }),
      stats: () => new Response("not found\n", { status: 404 }),
      "server-state": () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example" } }),
    });
    await expect(h.handle.acquire(CHAIN)).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE", message: "unknown scope: nope" });
    await expect(h.handle.renew("l1", 1000)).rejects.toMatchObject({
      code: "SLOTGATE_STORE_UNAVAILABLE",
      retryable: false,
      message: expect.stringContaining("credentials"),
    });
    await expect(h.handle.stats()).rejects.toMatchObject({
      code: "SLOTGATE_STORE_UNAVAILABLE",
      retryable: false,
      message: expect.stringContaining("SLOTGATE_API_TOKEN"),
    });
    await expect(h.handle.setServerState("b", "s", true)).rejects.toMatchObject({
      code: "SLOTGATE_STORE_UNAVAILABLE",
      message: expect.stringContaining("redirected"),
    });
    for (const error of await Promise.all([h.handle.stats().catch((e: unknown) => e), h.handle.renew("l1", 1).catch((e: unknown) => e)])) {
      expect(String((error as Error).message)).not.toContain(TOKEN);
    }
    // A 404 is not worth another try: two stats calls, two requests.
    expect(h.calls.filter((c) => c === "stats")).toHaveLength(2);
    const garbled = open({ renew: () => new Response("{not json", { status: 200 }) });
    await expect(garbled.handle.renew("l1", 1000)).rejects.toMatchObject({ code: "SLOTGATE_STORE_PROTOCOL" });
  });

  it("sends the version with the spec, reads what the object did with it, and reads stats without configuring", async () => {
    const bodies: unknown[] = [];
    const outcomes = [
      { result: "installed", version: 4 },
      { result: "kept", version: 7 },
      { result: "conflict", version: 4, spec: { limits: { global: { max: 3, maxqueue: null, keyed: false } }, backends: {} } },
    ];
    const s = scripted({ configure: (body) => (bodies.push(body), Response.json({ status: 0, value: outcomes.shift() })) });
    const store = createDurableObjectHttpStore({ url: "https://slots.example.com", token: TOKEN, fetch: s.fetch, retryDelayMs: 1 });
    expect(await store.open("g", SPEC, { version: 4 }).ready()).toEqual({ installed: true, storedVersion: 4 });
    expect(await store.open("g", SPEC, { version: 3 }).ready()).toEqual({ installed: false, storedVersion: 7 });
    const refused = store.open("g", SPEC, { version: 4 });
    await expect(refused.ready()).rejects.toMatchObject({
      code: "SLOTGATE_SPEC_CONFLICT",
      message: expect.stringContaining("global max 3 (stored) vs 1 (this node)"),
    });
    expect(bodies).toEqual([
      { spec: SPEC, version: 4 },
      { spec: SPEC, version: 3 },
      { spec: SPEC, version: 4 },
    ]);
    s.calls.length = 0;
    expect(await store.readStats("g")).toBeNull();
    expect(s.calls).toEqual(["stats"]);
  });

  it("sends to <url>/_slotgate/v1/groups/<group>/<op> with the bearer token, never following redirects", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const store = createDurableObjectHttpStore({
      url: "https://slots.example.com/base/",
      token: TOKEN,
      fetch: (url, init) => {
        seen.push({ url, init });
        // configure answers what an object from before versions answers (null); the rest `true`.
        return Promise.resolve(Response.json({ status: 0, value: url.endsWith("/configure") ? null : true }));
      },
    });
    await store.open("shop", SPEC).release("l1");
    expect(seen.map((s) => s.url)).toEqual([
      "https://slots.example.com/base/_slotgate/v1/groups/shop/configure",
      "https://slots.example.com/base/_slotgate/v1/groups/shop/release",
    ]);
    expect(seen[1]!.init).toMatchObject({ method: "POST", redirect: "manual", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(JSON.parse(seen[1]!.init.body as string)).toEqual({ leaseId: "l1" });
  });

  it("keeps a grant's lease secret out of the lease and sends it with that lease's renew and release", async () => {
    const bodies: Record<string, unknown>[] = [];
    const h = open({
      acquire: () =>
        Response.json({
          status: 0,
          value: { ok: true, lease: { id: "l7", fence: 1, expiresAt: 0, ttlMs: 30_000, waitedMs: 0 } },
          leaseSecret: "c2VjcmV0LXNlY3JldC0xMg",
        }),
      renew: (body) => (bodies.push(body!), Response.json({ status: 0, value: { ok: true, expiresAt: 1 } })),
      release: (body) => (bodies.push(body!), Response.json({ status: 0, value: true })),
    });
    const granted = await h.handle.acquire({ ...CHAIN, queueTimeoutMs: 0 });
    expect(granted).toEqual({ ok: true, lease: { id: "l7", fence: 1, expiresAt: 0, ttlMs: 30_000, waitedMs: 0 } });
    await h.handle.renew("l7", 5000);
    await h.handle.release("l7");
    // Once released, the secret is forgotten: a second release goes without it.
    await h.handle.release("l7");
    expect(bodies).toEqual([
      { leaseId: "l7", ttlMs: 5000, leaseSecret: "c2VjcmV0LXNlY3JldC0xMg" },
      { leaseId: "l7", leaseSecret: "c2VjcmV0LXNlY3JldC0xMg" },
      { leaseId: "l7" },
    ]);
  });

  it("an abort sends cancel and waits for the object's answer; a grant that won the race is released", async () => {
    let answerAcquire!: (r: Response) => void;
    const released: unknown[] = [];
    const h = open({
      acquire: () => new Promise<Response>((resolve) => (answerAcquire = resolve)),
      cancel: () => {
        // The grant won: the object answers the acquire with a lease, and cancel finds no ticket.
        answerAcquire(Response.json({ status: 0, value: { ok: true, lease: { id: "won", fence: 1, expiresAt: 0, ttlMs: 1, waitedMs: 0 } } }));
        return Response.json({ status: 0, value: false });
      },
      release: (body) => {
        released.push(body?.leaseId);
        return Response.json({ status: 0, value: true });
      },
    });
    const ac = new AbortController();
    const pending = h.handle.acquire(CHAIN, ac.signal);
    await sleep(10);
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    expect(released).toEqual(["won"]);
    expect(h.calls).toEqual(["configure", "acquire", "cancel", "release"]);
  });
});
