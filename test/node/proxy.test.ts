// The edge node's HTTP and TCP proxies, in process, on the memory store, over real loopback
// sockets. Every wait is bounded; timings are checked with generous margins.

import http from "node:http";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { SlotgateError, createMemoryStore, type GroupStore, type SlotStore } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createEdgeNode } from "../../src/node/edge-node.js";
import { upstreamPath } from "../../src/edge/forwarding.js";
import { closedPort, startBlackhole, startTcpEcho } from "../support/origin.js";
import { cleanups, expectAllFree, origin, raw, request, startNode, until, type Reply } from "../support/edge.js";

// ── HTTP ─────────────────────────────────────────────────────────────────────────────────────────

describe("http proxy: slots", () => {
  it("keeps every origin at or under its server maxconn with 50 concurrent clients", async () => {
    const a = await origin({ delayMs: 30 });
    const b = await origin({ delayMs: 30 });
    const s = await startNode({ servers: { a: { address: a.address, maxconn: 3 }, b: { address: b.address, maxconn: 3 } } });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => request(`${s.url}/item/${i}`)));
    expect(replies.map((r) => r.status)).toEqual(new Array(50).fill(200));
    expect(a.max).toBeLessThanOrEqual(3);
    expect(b.max).toBeLessThanOrEqual(3);
    expect(a.max + b.max).toBe(6); // saturated: the limit, not the load, was the bound
    expect(a.served + b.served).toBe(50);
    expect((await s.scope("server:app/a")).peak_in_use).toBe(3);
    await expectAllFree(s);
  });

  it("serves priority class 1 (/checkout/) before class 2 under overload", async () => {
    const o = await origin({ delayMs: 40 });
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } } });
    const first = request(`${s.url}/warm?delay=250`);
    await until(() => o.current === 1);
    const pending: Array<Promise<Reply>> = [];
    for (let i = 0; i < 4; i++) {
      pending.push(request(`${s.url}/browse/${i}`));
      await sleep(5);
    }
    for (let i = 0; i < 4; i++) {
      pending.push(request(`${s.url}/checkout/${i}`));
      await sleep(5);
    }
    await until(async () => (await s.scope("backend:app")).queued === 8);
    expect((await Promise.all([first, ...pending])).every((r) => r.status === 200)).toBe(true);
    const order = o.requests.slice(1).map((r) => r.url);
    expect(order).toEqual(["/checkout/0", "/checkout/1", "/checkout/2", "/checkout/3", "/browse/0", "/browse/1", "/browse/2", "/browse/3"]);
    expect(o.max).toBe(1);
  });

  it("answers a queued request with deny_status, Retry-After and x-slotgate-reason at timeout queue", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, backend: { timeout: { queue: "400ms", connect: "1s", server: "10s" } } });
    const hanging = http.get(`${s.url}/hang`, { agent: false });
    hanging.on("error", () => undefined);
    cleanups.push(async () => hanging.destroy());
    await until(() => o.current === 1);
    const r = await request(`${s.url}/checkout/late`);
    expect(r.status).toBe(503);
    expect(r.headers["x-slotgate-reason"]).toBe("queue-timeout");
    expect(r.headers["retry-after"]).toBe("1");
    expect(r.body).toContain("queue-timeout");
    expect(r.ms).toBeGreaterThan(400 - 100);
    expect(r.ms).toBeLessThan(400 + 100);
    expect((await s.scope("backend:app")).queue_timeouts).toBe(1); // a balanced ticket waits on its backend
    const line = s.logs.find((l) => l.msg === "request rejected");
    expect(line).toMatchObject({ frontend: "web", reason: "queue-timeout", status: 503, path: "/checkout/late" });
    expect(s.node.nodeStats().frontends.web!.rejected["queue-timeout"]).toBe(1);
  });

  it("takes a client that disconnects while queued out of the queue at once", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } } });
    const hanging = http.get(`${s.url}/hang`, { agent: false });
    hanging.on("error", () => undefined);
    cleanups.push(async () => hanging.destroy());
    await until(() => o.current === 1);
    const queued = http.get(`${s.url}/queued`, { agent: false });
    queued.on("error", () => undefined);
    await until(async () => (await s.scope("backend:app")).queued === 1);
    expect(s.node.nodeStats().frontends.web!.queued).toBe(1);
    queued.destroy();
    const ms = await until(async () => (await s.scope("backend:app")).queued === 0, 1000, 1);
    expect(ms).toBeLessThan(100);
    expect((await s.scope("backend:app")).aborted).toBe(1);
    await until(() => s.node.nodeStats().frontends.web!.rejected.aborted === 1, 1000);
    expect(s.node.nodeStats().frontends.web!.queued).toBe(0);
    expect(o.requests.map((r) => r.url)).toEqual(["/hang"]); // never reached the origin
    hanging.destroy();
    await expectAllFree(s);
  });

  it("releases the lease when the response finishes and when the client goes away mid-response", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 2 } } });
    const ok = await request(`${s.url}/one`);
    expect(ok.status).toBe(200);
    await until(async () => (await s.scope("server:app/a")).in_use === 0, 500, 1);

    const gotFirstChunk = new Promise<http.ClientRequest>((resolve) => {
      const req = http.get(`${s.url}/stream?chunks=100&interval=20`, { agent: false }, (res) => res.once("data", () => resolve(req)));
      req.on("error", () => undefined);
    });
    const req = await gotFirstChunk;
    expect((await s.scope("server:app/a")).in_use).toBe(1);
    req.destroy();
    const ms = await until(async () => (await s.scope("server:app/a")).in_use === 0, 1000, 1);
    expect(ms).toBeLessThan(200);
    await o.waitForCurrent(0, 1000); // the upstream request was cut too
    await expectAllFree(s);
  });

  it("keeps a long response's lease alive by renewing it (lease_ttl 1s, 2.4s response)", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, backend: { lease_ttl: "1s" } });
    const r = await request(`${s.url}/stream?chunks=24&interval=100&size=10`);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(240);
    const st = await s.scope("server:app/a");
    expect(st.expired).toBe(0);
    expect(st.released).toBe(1);
    expect(s.logs.filter((l) => l.msg === "lease lost while the response was still running")).toEqual([]);
  });

  it("reuses keep-alive connections on both sides", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 5 } } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    const replies: Reply[] = [];
    for (let i = 0; i < 5; i++) replies.push(await request(`${s.url}/k/${i}`, { agent }));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(replies.map((r) => r.reused)).toEqual([false, true, true, true, true]);
    expect(o.connections).toBe(1);
    expect(new Set(o.requests.map((r) => r.remotePort)).size).toBe(1);
  });

  it("drops hop-by-hop headers both ways and sets x-forwarded-*", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } } });
    const r = await request(`${s.url}/hop`, {
      headers: {
        connection: "keep-alive, x-drop-me",
        "x-drop-me": "1",
        "keep-alive": "timeout=30",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "proxy-connection": "keep-alive",
        te: "trailers",
        upgrade: "h2c",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        host: "shop.example:8080",
        "x-end-to-end": "kept",
      },
    });
    expect(r.status).toBe(200);
    const seen = o.requests[0]!.headers;
    for (const name of ["x-drop-me", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade"]) expect(seen[name], name).toBeUndefined();
    expect(seen.connection).not.toContain("x-drop-me");
    expect(seen["x-end-to-end"]).toBe("kept");
    // The client is no trusted proxy: what it wrote in x-forwarded-* is replaced, not appended to.
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("shop.example:8080");
    expect(seen.forwarded).toBe('for=127.0.0.1;host="shop.example:8080";proto=http');
    expect(seen.host).toBe("shop.example:8080"); // host:port servers get the client's Host
    // The origin's response: its hop-by-hop headers stop at the node.
    expect(r.headers["x-hop-secret"]).toBeUndefined();
    expect(r.headers["proxy-authenticate"]).toBeUndefined();
    expect(r.headers.trailer).toBeUndefined();
    expect(r.headers["x-end-to-end"]).toBe("kept");
    expect(r.headers.connection).not.toContain("x-hop-secret");
  });

  it("sends a URL server its base path and its own Host", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: `http://${o.address}/base` } } });
    const r = await request(`${s.url}/p/q?x=1`, { headers: { host: "shop.example" } });
    expect(r.status).toBe(200);
    expect(o.requests[0]).toMatchObject({ url: "/base/p/q?x=1", headers: { host: o.address, "x-forwarded-host": "shop.example" } });
  });

  it("streams a request body to the origin and back", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } } });
    const body = "x".repeat(300_000);
    const r = await request(`${s.url}/echo`, { method: "POST", body, headers: { "content-type": "text/plain" } });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(body.length);
    await expectAllFree(s);
  });

  it("rejects locally at node.maxconn, before any store round trip", async () => {
    const o = await origin();
    const s = await startNode({ top: { node: { maxconn: 2 } }, servers: { a: { address: o.address, maxconn: 10 } } });
    const hanging = [http.get(`${s.url}/hang`, { agent: false }), http.get(`${s.url}/hang`, { agent: false })];
    for (const h of hanging) {
      h.on("error", () => undefined);
      cleanups.push(async () => h.destroy());
    }
    await until(() => o.current === 2);
    expect(s.node.nodeStats().nodeInUse).toBe(2);
    const r = await request(`${s.url}/third`);
    expect(r.status).toBe(503);
    expect(r.headers["x-slotgate-reason"]).toBe("full");
    expect(r.ms).toBeLessThan(100);
    const web = await s.scope("frontend:web");
    expect(web.rejected_full).toBe(0); // the store never saw it
    expect(web.granted).toBe(2);
    expect(s.logs.find((l) => l.msg === "request rejected")).toMatchObject({ reason: "full", limit: "node.maxconn" });
    for (const h of hanging) h.destroy();
    await expectAllFree(s);
  });

  it("answers with deny_status 429 when configured", async () => {
    const o = await origin();
    const s = await startNode({
      frontend: { deny_status: 429 },
      servers: { a: { address: o.address, maxconn: 1 } },
      backend: { timeout: { queue: 0, connect: "1s", server: "10s" } },
    });
    const hanging = http.get(`${s.url}/hang`, { agent: false });
    hanging.on("error", () => undefined);
    cleanups.push(async () => hanging.destroy());
    await until(() => o.current === 1);
    const r = await request(`${s.url}/x`);
    expect(r.status).toBe(429);
    expect(r.headers["x-slotgate-reason"]).toBe("full");
    expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });
});

describe("http proxy: hostile input", () => {
  it("never crashes and never leaks a slot on oversized, garbage or non-UTF-8 input", async () => {
    const o = await origin();
    const s = await startNode({
      frontend: { limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 2 }] },
      servers: { a: { address: o.address, maxconn: 5 } },
    });
    // A key value longer than the store accepts: 431 from the planner, no slot taken.
    const long = await request(`${s.url}/a`, { headers: { "x-api-key": "k".repeat(10_000) } });
    expect(long.status).toBe(431);
    // A 10 kB value in a header that is not a key passes through.
    const big = await request(`${s.url}/b`, { headers: { "x-note": "n".repeat(10_000) } });
    expect(big.status).toBe(200);
    // Braces, colons, percent signs in a key.
    const braces = await request(`${s.url}/c`, { headers: { "x-api-key": "{tag}:a:b%00" } });
    expect(braces.status).toBe(200);
    // Non-UTF-8 bytes in a key and in the path, sent raw.
    const latin = await raw(
      s.port,
      Buffer.concat([
        Buffer.from("GET /d/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: ", "latin1"),
        Buffer.from([0xff, 0xfe, 0x80, 0x41]),
        Buffer.from("\r\n\r\n"),
      ]),
    );
    expect(latin).toMatch(/^HTTP\/1\.1 (200|400) /);
    // Garbage: not HTTP, broken header lines, NUL bytes, a head over maxHeaderSize, a bare LF.
    const answers = await Promise.all([
      raw(s.port, "GARBAGE\r\n\r\n"),
      raw(s.port, "GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"),
      raw(s.port, "GET / HTTP/1.1\r\nHost: x\r\nx-api-key: a\x00b\r\n\r\n"),
      raw(s.port, `GET / HTTP/1.1\r\nHost: x\r\nx-big: ${"z".repeat(20_000)}\r\n\r\n`),
      raw(s.port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      raw(s.port, "GET /{}\n\n"),
      raw(s.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00])), // a TLS ClientHello
    ]);
    expect(answers[0]).toMatch(/^HTTP\/1\.1 400 /);
    expect(answers[1]).toMatch(/^HTTP\/1\.1 400 /);
    expect(answers[2]).toMatch(/^HTTP\/1\.1 400 /);
    expect(answers[3]).toMatch(/^HTTP\/1\.1 431 /);
    expect(answers[4]).toMatch(/^HTTP\/1\.1 400 /);
    for (const a of answers) expect(a === "" || /^HTTP\/1\.1 [45]\d\d /.test(a)).toBe(true);
    // Still serving, nothing held, nothing queued, counts intact.
    expect((await request(`${s.url}/after`, { headers: { "x-api-key": "ok" } })).status).toBe(200);
    await expectAllFree(s);
    const apikey = await s.scope("frontend:web:apikey");
    expect(apikey.released).toBe(apikey.granted);
  });
});

describe("http proxy: upstream failures", () => {
  it("answers 503 connect-failed when the server refuses the connection, and frees the slot", async () => {
    const s = await startNode({ servers: { a: { address: `127.0.0.1:${await closedPort()}`, maxconn: 1 } } });
    const r = await request(`${s.url}/x`);
    expect(r.status).toBe(503);
    expect(r.headers["x-slotgate-error"]).toBe("connect-failed");
    expect(r.headers["x-slotgate-reason"]).toBeUndefined();
    await expectAllFree(s);
    expect(s.node.nodeStats().frontends.web!.rejected.error).toBe(1);
  });

  it("answers 504 server-timeout when the server stays silent for timeout.server", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, backend: { timeout: { queue: "1s", connect: "1s", server: "300ms" } } });
    const r = await request(`${s.url}/hang`);
    expect(r.status).toBe(504);
    expect(r.headers["x-slotgate-error"]).toBe("server-timeout");
    expect(r.ms).toBeGreaterThan(250);
    expect(r.ms).toBeLessThan(800);
    await expectAllFree(s);
    await o.waitForCurrent(0, 1000);
  });

  it("answers 503 connect-timeout when the server does not accept within timeout.connect", async () => {
    const hole = await startBlackhole();
    try {
      const s = await startNode({
        servers: { a: { address: hole.address, maxconn: 1 } },
        backend: { timeout: { queue: "1s", connect: "300ms", server: "10s" } },
      });
      const r = await request(`${s.url}/x`);
      expect(r.status).toBe(503);
      expect(r.headers["x-slotgate-error"]).toBe("connect-timeout");
      expect(r.ms).toBeGreaterThan(250);
      expect(r.ms).toBeLessThan(800);
      await expectAllFree(s);
    } finally {
      await hole.close();
    }
  });

  it("maps the path onto a URL server's base path", () => {
    expect(upstreamPath("", "/a?b=1")).toBe("/a?b=1");
    expect(upstreamPath("/base", "/a?b=1")).toBe("/base/a?b=1");
    expect(upstreamPath("/base", "http://evil.example/x?y")).toBe("/base/x?y");
    expect(upstreamPath("", "*")).toBe("*");
  });
});

type Fault = "none" | "down" | "unknown-scope" | "bug";

/** The memory store, with acquire failing on demand the way a broken store or a bug would. */
function faultyStore(fault: { value: Fault }): SlotStore {
  const inner = createMemoryStore();
  return {
    kind: "faulty",
    open(group, spec, options): GroupStore {
      const h = inner.open(group, spec, options);
      return {
        ready: () => h.ready(),
        acquire: (request, signal) => {
          switch (fault.value) {
            case "down":
              return Promise.reject(new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", "connection refused", { retryable: true }));
            case "unknown-scope":
              return Promise.reject(new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", "unknown scope: frontend:web"));
            case "bug":
              return Promise.reject(new TypeError("cannot read properties of undefined"));
            default:
              return h.acquire(request, signal);
          }
        },
        release: (id) => h.release(id),
        renew: (id, ttl) => h.renew(id, ttl),
        configure: (sp, version) => h.configure(sp, version),
        setServerState: (b, sv, up) => h.setServerState(b, sv, up),
        stats: () => h.stats(),
        close: () => h.close(),
      };
    },
    readStats: (group) => inner.readStats(group),
  };
}

describe("http proxy: store faults and outage policies", () => {
  it("fail-closed: a store outage answers deny_status with reason unavailable, logged", async () => {
    const o = await origin();
    const fault = { value: "down" as Fault };
    const s = await startNode({ store: faultyStore(fault), servers: { a: { address: o.address, maxconn: 1 } } });
    const r = await request(`${s.url}/x`);
    expect(r.status).toBe(503);
    expect(r.headers["x-slotgate-reason"]).toBe("unavailable");
    expect(s.logs.find((l) => l.msg === "store unavailable: fail-closed")).toBeDefined();
    expect((await s.stats()).fallback.fail_closed).toBe(1);
    fault.value = "none";
    expect((await request(`${s.url}/y`)).status).toBe(200);
  });

  it("fail-open: admits, and picks a server itself (the store did not)", async () => {
    const a = await origin();
    const b = await origin();
    const s = await startNode({
      top: { on_store_error: "fail-open" },
      store: faultyStore({ value: "down" }),
      servers: { a: { address: a.address, maxconn: 1 }, b: { address: b.address, maxconn: 1 } },
    });
    const replies = await Promise.all([1, 2, 3, 4].map((i) => request(`${s.url}/${i}`)));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(a.served).toBe(2);
    expect(b.served).toBe(2);
    expect((await s.stats()).fallback.fail_open).toBe(4);
  });

  it("local: falls back to in-process limits of maxconn × local_share", async () => {
    const o = await origin({ delayMs: 100 });
    const s = await startNode({
      top: { on_store_error: "local", local_share: 0.5 },
      store: faultyStore({ value: "down" }),
      servers: { a: { address: o.address, maxconn: 4 } },
    });
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => request(`${s.url}/${i}`)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(o.max).toBe(2);
  });

  it("answers deny_status with reason unavailable (logged once) when the store does not know a scope, 500 on a bug; never leaks", async () => {
    const o = await origin();
    const fault = { value: "unknown-scope" as Fault };
    const s = await startNode({ store: faultyStore(fault), servers: { a: { address: o.address, maxconn: 1 } } });
    // The store runs a spec without frontend:web (a newer version removed it): never a 500.
    const r1 = await request(`${s.url}/x`);
    expect(r1.status).toBe(503);
    expect(r1.headers["x-slotgate-reason"]).toBe("unavailable");
    expect((await request(`${s.url}/x2`)).status).toBe(503);
    const told = s.logs.filter((l) => l.event === "scope-unavailable");
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ level: "warn", scope: "frontend:web" });
    expect((await s.stats()).spec).toMatchObject({ superseded: true, unavailable: 2 });
    fault.value = "bug";
    const r2 = await request(`${s.url}/y`);
    expect(r2.status).toBe(500);
    expect(s.logs.find((l) => l.msg === "acquire failed")).toMatchObject({ level: "error" });
    fault.value = "none";
    expect((await request(`${s.url}/z`)).status).toBe(200);
    await expectAllFree(s);
    expect(s.node.nodeStats().frontends.web!.rejected.error).toBe(1);
    expect(s.node.nodeStats().frontends.web!.rejected.unavailable).toBe(2);
  });
});

describe("edge node: stop", () => {
  it("drains an in-flight request, refuses new connections, and releases every lease", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 2 } } });
    const inflight = request(`${s.url}/slow?delay=300`);
    await until(() => o.current === 1);
    const stopping = s.node.stop(5_000);
    await sleep(20);
    await expect(request(`${s.url}/new`)).rejects.toThrow();
    const r = await inflight;
    expect(r.status).toBe(200);
    await stopping;
    expect(o.current).toBe(0);
  });

  it("cuts what is left after the grace period", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 2 } } });
    const inflight = request(`${s.url}/hang`);
    await until(() => o.current === 1);
    const t0 = performance.now();
    await s.node.stop(200);
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(inflight).rejects.toThrow();
    await o.waitForCurrent(0, 1000);
  });
});

// ── TCP ──────────────────────────────────────────────────────────────────────────────────────────

function connect(port: number): Promise<{ socket: net.Socket; received: () => string; closedAt: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let data = "";
    socket.on("data", (c: Buffer) => (data += c.toString()));
    socket.on("error", () => undefined);
    const closedAt = new Promise<number>((r) => socket.once("close", () => r(performance.now())));
    socket.once("connect", () => resolve({ socket, received: () => data, closedAt }));
    socket.once("error", reject);
  });
}

async function startTcpNode(frontend: Record<string, unknown>, backend: Record<string, unknown> = {}) {
  const echo = await startTcpEcho();
  cleanups.push(() => echo.close());
  const config = validateEdgeConfig({
    group: "tcp",
    frontends: { echo: { bind: "127.0.0.1:0", mode: "tcp", default_backend: "echo", ...frontend } },
    backends: { echo: { timeout: { queue: 0, connect: "1s", server: "10s" }, ...backend, servers: { e1: { address: echo.address } } } },
  });
  const node = await createEdgeNode(config);
  await node.start();
  cleanups.push(() => node.stop(0));
  return { node, echo, port: node.addresses.echo!.port };
}

describe("tcp proxy", () => {
  it("holds one connection at maxconn 1 and closes a second after delay_before_close", async () => {
    const { node, echo, port } = await startTcpNode({ maxconn: 1, delay_before_close: "2s" });
    const one = await connect(port);
    one.socket.write("one");
    await until(() => one.received() === "one");
    const t0 = performance.now();
    const two = await connect(port);
    two.socket.write("two");
    const closed = (await two.closedAt) - t0;
    expect(closed).toBeGreaterThan(1900);
    expect(closed).toBeLessThan(2600);
    expect(two.received()).toBe("");
    expect(echo.max).toBe(1);
    expect(node.nodeStats().frontends.echo!.rejected.full).toBe(1);
    one.socket.write("!");
    await until(() => one.received() === "one!");
    one.socket.destroy();
    await until(async () => (await node.guard.stats()).holders === 0, 1000);
  });

  it("holds a queued connection until a slot frees, then replays what it sent", async () => {
    const { node, echo, port } = await startTcpNode({ maxconn: 1 }, { timeout: { queue: "3s", connect: "1s", server: "10s" } });
    const one = await connect(port);
    one.socket.write("a");
    await until(() => one.received() === "a");
    const two = await connect(port);
    two.socket.write("hello");
    await until(async () => (await node.guard.stats()).tickets === 1);
    await sleep(100);
    expect(two.received()).toBe("");
    expect(echo.current).toBe(1);
    one.socket.end();
    await until(() => two.received() === "hello", 1000);
    expect(echo.max).toBe(1);
    two.socket.destroy();
    await until(async () => (await node.guard.stats()).holders === 0, 1000);
  });

  it("takes a connection that closes while queued out of the queue", async () => {
    const { node, port } = await startTcpNode({ maxconn: 1 }, { timeout: { queue: "3s", connect: "1s", server: "10s" } });
    const one = await connect(port);
    one.socket.write("a");
    await until(() => one.received() === "a");
    const two = await connect(port);
    await until(async () => (await node.guard.stats()).tickets === 1);
    two.socket.destroy();
    const ms = await until(async () => (await node.guard.stats()).tickets === 0, 1000, 1);
    expect(ms).toBeLessThan(100);
    one.socket.destroy();
    await until(() => node.nodeStats().nodeInUse === 0, 1000);
  });
});
