// Slow clients: a body sent a byte at a time, a head sent a byte at a time (slowloris), a client
// that stops reading its response. Each must not hold a fleet-wide slot beyond the frontend's
// timeouts (`timeout.http_request`, `timeout.client`), and a body up to `buffer_request` is
// received before any slot is taken.

import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { cleanups, expectAllFree, origin, parseResponses, request, startNode, until } from "../support/edge.js";

interface Trickle {
  /** Everything the node sent back. */
  data(): string;
  closedAt(): number | undefined;
  done: Promise<void>;
  socket: net.Socket;
}

/** Sends `head`, then `body` one byte every `everyMs` (bounded: it stops at the end of the body or when the node closes). */
function trickle(port: number, head: string, body: string, everyMs: number): Trickle {
  const socket = net.connect({ host: "127.0.0.1", port });
  cleanups.push(async () => socket.destroy());
  let data = "";
  let closedAt: number | undefined;
  const t0 = performance.now();
  socket.on("data", (c: Buffer) => (data += c.toString("latin1")));
  socket.on("error", () => undefined);
  const done = new Promise<void>((resolve) => {
    socket.once("close", () => {
      closedAt = performance.now() - t0;
      resolve();
    });
  });
  socket.write(head);
  void (async () => {
    for (const byte of body) {
      await sleep(everyMs);
      if (socket.destroyed || closedAt !== undefined) return;
      socket.write(byte);
    }
  })();
  return { data: () => data, closedAt: () => closedAt, done, socket };
}

const postHead = (length: number, path = "/upload") => `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: ${length}\r\n\r\n`;

describe("timeout.http_request", () => {
  it("a body streamed to a slot: answered 408 at http_request, the slot released, the origin request abandoned", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { buffer_request: false, timeout: { http_request: "600ms" } } });
    const t = trickle(s.port, postHead(100), "x".repeat(100), 150);
    await until(() => o.current === 1, 2_000); // granted: the body streams to the origin
    expect((await s.scope("frontend:web")).in_use).toBe(1);
    await t.done;
    const [reply] = parseResponses(t.data());
    expect(reply?.status).toBe(408);
    expect(reply?.head).toMatch(/x-slotgate-error: request-timeout/i);
    expect(t.closedAt()).toBeGreaterThan(550);
    expect(t.closedAt()).toBeLessThan(2_000);
    await o.waitForCurrent(0, 2_000);
    await expectAllFree(s);
    expect(s.node.nodeStats().frontends.web?.rejected["client-timeout"]).toBe(1);
  });

  it("a body received before the slot (buffer_request): no slot while it trickles in, then 408", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { timeout: { http_request: "600ms" } } });
    const t = trickle(s.port, postHead(100), "x".repeat(100), 100);
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      expect((await s.stats()).holders).toBe(0);
    }
    await t.done;
    expect(parseResponses(t.data())[0]?.status).toBe(408);
    expect(o.requests).toHaveLength(0);
    await expectAllFree(s);
  });

  it("time in the queue does not count: a request queued longer than http_request is served", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, frontend: { buffer_request: false, timeout: { http_request: "300ms" } } });
    const holder = request(`${s.url}/held?delay=700`);
    await until(() => o.current === 1, 2_000);
    const queued = await request(`${s.url}/upload`, { method: "POST", body: "hello" });
    expect(queued.status).toBe(200);
    expect(queued.ms).toBeGreaterThan(500);
    expect((await holder).status).toBe(200);
    await expectAllFree(s);
  });

  it("slowloris: a head sent a byte at a time is cut at http_request, without a slot", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { timeout: { http_request: "500ms" } } });
    const head = `GET /slow HTTP/1.1\r\nhost: x\r\nx-pad: ${"a".repeat(200)}\r\n\r\n`;
    const t = trickle(s.port, head.slice(0, 5), head.slice(5), 50);
    await t.done;
    // Node checks head deadlines once a second.
    expect(t.closedAt()).toBeLessThan(2_500);
    expect(t.data()).toMatch(/^HTTP\/1\.1 408 /);
    expect(o.requests).toHaveLength(0);
    await expectAllFree(s);
  });
});

describe("timeout.client", () => {
  it("a client that goes silent mid-body is answered 408 (client-timeout) and its slot released", async () => {
    const o = await origin();
    const s = await startNode({
      servers: { a: { address: o.address } },
      frontend: { buffer_request: false, timeout: { client: "400ms", http_request: "10s" } },
    });
    const t = trickle(s.port, `${postHead(100)}${"x".repeat(10)}`, "", 0);
    await until(() => o.current === 1, 2_000);
    await t.done;
    const [reply] = parseResponses(t.data());
    expect(reply?.status).toBe(408);
    expect(reply?.head).toMatch(/x-slotgate-error: client-timeout/i);
    expect(t.closedAt()).toBeLessThan(2_000);
    await o.waitForCurrent(0, 2_000);
    await expectAllFree(s);
  });

  it("a client that stops reading a long response is cut and its slot released", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { timeout: { client: "400ms" } } });
    const socket = net.connect({ host: "127.0.0.1", port: s.port });
    cleanups.push(async () => socket.destroy());
    socket.on("error", () => undefined);
    let received = 0;
    socket.on("data", (c: Buffer) => (received += c.length));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    // 64 MiB at full speed: far more than the socket buffers hold. The client does not read.
    socket.pause();
    socket.write("GET /stream?chunks=1024&interval=1&size=65536 HTTP/1.1\r\nhost: x\r\n\r\n");
    await until(async () => (await s.stats()).holders === 1, 2_000);
    const cutAfter = await until(async () => (await s.stats()).holders === 0, 5_000);
    expect(cutAfter).toBeLessThan(3_000);
    // Reading again, the client finds its connection cut, the response short.
    socket.resume();
    await Promise.race([closed, sleep(3_000)]);
    expect(socket.destroyed || socket.readableEnded).toBe(true);
    expect(received).toBeLessThan(64 * 1024 * 1024);
    expect(s.node.nodeStats().frontends.web?.rejected["client-timeout"]).toBe(1);
    await o.waitForCurrent(0, 2_000);
    await expectAllFree(s);
  });

  it("a client waiting on a slow server is not cut by timeout.client (timeout.server bounds that wait)", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } }, frontend: { timeout: { client: "300ms" } } });
    const r = await request(`${s.url}/slow?delay=900`);
    expect(r.status).toBe(200);
    await expectAllFree(s);
  });
});
