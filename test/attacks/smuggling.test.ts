// Request smuggling through `Connection`: a client lists a framing header (content-length,
// transfer-encoding) or host in `Connection`, so that a proxy obeying it drops the length of a body
// it still forwards. The origin would then parse that body as a request of its own: one that took
// no slot, and that leaves the origin connection out of step, so the next client gets another
// client's response. Asserted on what the origin really parsed, in both body modes (received before
// the slot, and streamed).

import { describe, expect, it } from "vitest";
import { expectAllFree, origin, rawExchange, request, startNode, type Started } from "../support/edge.js";
import type { Origin } from "../support/origin.js";

const METHODS = ["GET", "DELETE", "OPTIONS", "POST", "PUT", "PATCH"];
/** `Connection` values that try to remove framing or the target. */
const CONNECTION_LISTS = ["content-length", "Content-Length", "TRANSFER-ENCODING", "keep-alive, content-length", "close,Transfer-Encoding , host", "Host"];
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";

function withLength(method: string, connection: string): string {
  return `${method} /outer HTTP/1.1\r\nhost: shop.example\r\nconnection: ${connection}\r\ncontent-length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`;
}

function chunked(method: string, connection: string): string {
  return `${method} /outer HTTP/1.1\r\nhost: shop.example\r\nconnection: ${connection}\r\ntransfer-encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
}

async function setup(bufferRequest: boolean): Promise<{ s: Started; o: Origin }> {
  const o = await origin();
  // One server connection slot: a desynchronised origin connection would be reused by the next client.
  const s = await startNode({
    servers: { a: { address: o.address, maxconn: 1 } },
    frontend: bufferRequest ? {} : { buffer_request: false },
  });
  return { s, o };
}

describe.each([
  ["received before the slot", true],
  ["streamed", false],
])("smuggling through Connection, body %s", (_mode, bufferRequest) => {
  it("never lets a listed content-length, transfer-encoding or host unframe a body: every method, any case, in lists", async () => {
    const { s, o } = await setup(bufferRequest);
    let sent = 0;
    for (const method of METHODS) {
      for (const connection of CONNECTION_LISTS) {
        for (const build of [withLength, chunked]) {
          const reply = await rawExchange(s.port, build(method, connection));
          sent++;
          expect(
            reply.responses.map((r) => r.status),
            `${method} / ${connection} / ${build.name}`,
          ).toEqual([200]);
          // The origin saw the outer request with its body framed, and nothing else.
          const last = o.requests.at(-1)!;
          expect({ url: last.url, method: last.method }).toEqual({ url: "/outer", method });
          const framed = last.headers["content-length"] === String(SMUGGLED.length) || last.headers["transfer-encoding"] === "chunked";
          expect(framed, `${method} / ${connection} / ${build.name}: ${JSON.stringify(last.headers)}`).toBe(true);
          expect(last.headers.host).toBe("shop.example");
        }
      }
    }
    expect(o.requests.map((r) => r.url).filter((u) => u !== "/outer")).toEqual([]);
    expect(o.requests).toHaveLength(sent);
    await expectAllFree(s);
  });

  it("keeps the origin connection in step: the next client gets its own response", async () => {
    const { s, o } = await setup(bufferRequest);
    for (const method of ["GET", "OPTIONS", "DELETE"]) {
      await rawExchange(s.port, withLength(method, "content-length"));
      const next = await request(`${s.url}/mine-${method}`);
      expect(next.status).toBe(200);
      expect((JSON.parse(next.body) as { path: string }).path).toBe(`/mine-${method}`);
    }
    expect(o.requests.some((r) => r.url === "/smuggled")).toBe(false);
    await expectAllFree(s);
  });
});
