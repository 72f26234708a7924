// Forwarding headers a client forges: `x-forwarded-for`, `Forwarded`, `x-forwarded-proto/host`.
// From a peer that is not a trusted proxy the node replaces them with what it saw; from a trusted
// one it keeps them and appends its own hop. Limits and conditions on `src` use the socket's
// address whatever the headers say.

import { describe, expect, it } from "vitest";
import { expectAllFree, origin, request, startNode, until } from "../support/edge.js";

const FORGED = {
  "x-forwarded-for": "203.0.113.9",
  forwarded: "for=203.0.113.9;proto=https",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "admin.internal",
  host: "shop.example",
};

describe("forwarding headers", () => {
  it("from an untrusted client: forged values are replaced, not appended to", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } } });
    expect((await request(`${s.url}/f`, { headers: FORGED })).status).toBe(200);
    const seen = o.requests[0]!.headers;
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen.forwarded).toBe('for=127.0.0.1;host="shop.example";proto=http');
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("shop.example");
    await expectAllFree(s);
  });

  it("from a trusted proxy (forwarded_for.trusted): kept, with this hop appended", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { forwarded_for: { trusted: ["127.0.0.0/8"] } } });
    expect((await request(`${s.url}/f`, { headers: FORGED })).status).toBe(200);
    const seen = o.requests[0]!.headers;
    expect(seen["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(seen.forwarded).toBe('for=203.0.113.9;proto=https, for=127.0.0.1;host="shop.example";proto=http');
    expect(seen["x-forwarded-proto"]).toBe("https");
    expect(seen["x-forwarded-host"]).toBe("admin.internal");
    await expectAllFree(s);
  });

  it("a keyed limit on src uses the socket's address: rotating x-forwarded-for gets no new slots", async () => {
    const o = await origin();
    const s = await startNode({
      servers: { a: { address: o.address } },
      frontend: { forwarded_for: { trusted: ["10.0.0.0/8"] }, limits: [{ name: "ip", key: { src: true }, maxconn: 1 }] },
      backend: { timeout: { queue: 0, connect: "1s", server: "5s" } },
    });
    const held = request(`${s.url}/hold?delay=400`, { headers: { "x-forwarded-for": "198.51.100.1" } });
    await until(() => o.current === 1, 2_000);
    for (const ip of ["198.51.100.2", "198.51.100.3", "2001:db8::1"]) {
      const r = await request(`${s.url}/more`, { headers: { "x-forwarded-for": ip, forwarded: `for="${ip}"` } });
      expect(r.status).toBe(503);
      expect(r.headers["x-slotgate-reason"]).toBe("full");
    }
    expect((await held).status).toBe(200);
    await expectAllFree(s);
  });
});
