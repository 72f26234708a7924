// Hostile fair_by values over real sockets (issue 13): a client that invents a new tenant for
// every request, names tenants after object keys, or sends a tenant too long to keep. The defences:
// flow state never outgrows the queue and is gone when the queue drains; the origin never sees
// more than maxconn; no raw tenant value reaches the stats listener or the logs; an over-long
// value is refused before any slot is taken.

import { describe, expect, it } from "vitest";
import { origin, raw, request, startNode, until } from "../support/edge.js";

const HOSTILE = ["__proto__", "constructor", "toString", "{t}:x", "a b\tc", "%00", "k".repeat(1024)];

describe("fair_by under hostile tenant values", () => {
  it("a new tenant per request: flow state stays within the queue, drains to nothing, and no value is shown", async () => {
    const o = await origin({ delayMs: 20 });
    const s = await startNode({
      servers: { s1: { address: o.address, maxconn: 1 } },
      backend: { timeout: { queue: "10s", connect: "1s", server: "10s" } },
      frontend: { priority: [], fair_by: { header: "x-tenant" } },
      top: { stats: { bind: "127.0.0.1:0" } },
    });
    const listener = `http://127.0.0.1:${s.node.statsAddress!.port}`;
    const tenants = [...HOSTILE, ...Array.from({ length: 33 }, (_, i) => `rotating-${i}`)];
    const replies = tenants.map((t, i) => request(`${s.url}/r/${i}`, { headers: { "x-tenant": t } }));
    // While they wait: one flow entry per waiting ticket at most, and the page shows digests only.
    await until(async () => (await s.stats()).tickets >= 10, 5000);
    const mid = await s.stats();
    expect(Object.keys(mid.flows ?? {}).length).toBeLessThanOrEqual(mid.tickets);
    for (const path of ["/stats", "/stats.json", "/metrics"]) {
      const shown = (await request(`${listener}${path}`)).body;
      for (const t of HOSTILE.slice(3)) expect(shown, path).not.toContain(t);
      for (const t of ["rotating-0", "rotating-32"]) expect(shown, path).not.toContain(t);
    }
    const all = await Promise.all(replies);
    expect(all.map((r) => r.status)).toEqual(new Array(tenants.length).fill(200));
    expect(o.max).toBe(1);
    const after = await s.stats();
    expect(after.tickets).toBe(0);
    expect(after.flows ?? {}).toEqual({});
    const logged = JSON.stringify(s.logs);
    for (const t of HOSTILE.slice(3)) expect(logged).not.toContain(t);
  }, 30_000);

  it("an over-long tenant header is refused with 431 before a slot is taken; the origin never sees it", async () => {
    const o = await origin();
    const s = await startNode({
      servers: { s1: { address: o.address, maxconn: 1 } },
      frontend: { priority: [], fair_by: { header: "x-tenant" } },
    });
    const reply = await raw(s.port, `GET /long HTTP/1.1\r\nHost: x\r\nX-Tenant: ${"a".repeat(1025)}\r\nConnection: close\r\n\r\n`);
    expect(reply.startsWith("HTTP/1.1 431")).toBe(true);
    expect(o.requests.length).toBe(0);
    const stats = await s.stats();
    expect(stats.holders).toBe(0);
    expect(stats.flows ?? {}).toEqual({});
  });
});
