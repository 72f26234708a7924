// Hostile or broken peers around a proxied request: an upstream that switches protocols on a
// plain request, an upstream that never answers, a client that disconnects mid-body. Each must end
// with an answer (or a closed connection) and the slot released, never a slot held until a timeout
// elsewhere.

import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { cleanups, expectAllFree, origin, request, startNode, until } from "../support/edge.js";

/** A server that answers every request with `101 Switching Protocols` and keeps the socket open. */
async function startSwitcher(): Promise<{ address: string; requests: () => number }> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("data", () => {
      requests++;
      socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nraw bytes after the switch");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, requests: () => requests };
}

describe("upstream peers", () => {
  it("a 101 to a plain request is answered 502 bad-response at once, and the slot released", async () => {
    const up = await startSwitcher();
    const s = await startNode({ servers: { a: { address: up.address, maxconn: 1 } } });
    for (let i = 0; i < 3; i++) {
      const r = await request(`${s.url}/plain`);
      expect(r.status).toBe(502);
      expect(r.headers["x-slotgate-error"]).toBe("bad-response");
      expect(r.ms).toBeLessThan(1_000);
      await expectAllFree(s);
    }
    expect(up.requests()).toBe(3);
  });

  it("an upstream that never answers: 504 at timeout.server, slot released", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, backend: { timeout: { queue: "5s", connect: "1s", server: "500ms" } } });
    const r = await request(`${s.url}/hang`);
    expect(r.status).toBe(504);
    expect(r.ms).toBeGreaterThan(450);
    expect(r.ms).toBeLessThan(2_000);
    await o.waitForCurrent(0, 2_000);
    await expectAllFree(s);
  });

  it.each([
    ["streamed", { buffer_request: false }],
    ["larger than buffer_request", { buffer_request: "1k" }],
  ])("a client that disconnects mid-body (%s): the origin request is abandoned and the slot released", async (_name, frontend) => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 1 } }, frontend });
    const socket = net.connect({ host: "127.0.0.1", port: s.port });
    cleanups.push(async () => socket.destroy());
    socket.on("error", () => undefined);
    socket.write(`POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n${"x".repeat(4096)}`);
    await until(() => o.current === 1, 2_000);
    expect((await s.stats()).holders).toBe(1);
    socket.destroy();
    await o.waitForCurrent(0, 2_000);
    await expectAllFree(s);
    // The slot is free for the next client at once.
    const next = await request(`${s.url}/next`);
    expect(next.status).toBe(200);
  });

  it("a client that disconnects while its body is received before the slot: never takes one", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } } });
    const socket = net.connect({ host: "127.0.0.1", port: s.port });
    socket.on("error", () => undefined);
    socket.write(`POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n${"x".repeat(100)}`);
    await sleep(100);
    expect((await s.stats()).holders).toBe(0);
    socket.destroy();
    await sleep(100);
    expect(o.requests).toHaveLength(0);
    await expectAllFree(s);
  });
});
