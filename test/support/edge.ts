// An edge node in process, on the memory store (or a given one), in front of test origins over
// real loopback sockets; and the clients that talk to it (http.request, raw bytes). Every wait is
// bounded. A test file's cleanups run after each of its tests.

import http from "node:http";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, expect } from "vitest";
import type { GuardStats, ScopeStats, SlotStore } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createEdgeNode, type EdgeNode } from "../../src/node/edge-node.js";
import { createLogger } from "../../src/node/logger.js";
import { startOrigin, type Origin } from "./origin.js";

export const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

export interface Started {
  node: EdgeNode;
  port: number;
  url: string;
  logs: Array<Record<string, unknown>>;
  stats(): Promise<GuardStats>;
  scope(name: string): Promise<ScopeStats>;
}

export interface NodeOptions {
  store?: SlotStore;
  servers?: Record<string, Record<string, unknown>>;
  backend?: Record<string, unknown>;
  frontend?: Record<string, unknown>;
  top?: Record<string, unknown>;
}

export async function startNode(opts: NodeOptions): Promise<Started> {
  const config = validateEdgeConfig({
    group: "t",
    ...opts.top,
    frontends: {
      web: {
        bind: "127.0.0.1:0",
        default_backend: "app",
        priority: [{ if: { path_beg: "/checkout/" }, class: 1 }, { class: 2 }],
        ...opts.frontend,
      },
    },
    backends: { app: { balance: "leastconn", timeout: { queue: "5s", connect: "1s", server: "10s" }, ...opts.backend, servers: opts.servers } },
  });
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: "debug", destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const node = await createEdgeNode(config, opts.store ? { logger, store: opts.store } : { logger });
  await node.start();
  cleanups.push(() => node.stop(0));
  const port = node.addresses.web!.port;
  const stats = () => node.guard.stats();
  return {
    node,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    stats,
    scope: async (name) => {
      const s = (await stats()).scopes[name];
      if (!s) throw new Error(`no scope ${name}`);
      return s;
    },
  };
}

export async function origin(options?: Parameters<typeof startOrigin>[0]): Promise<Origin> {
  const o = await startOrigin(options);
  cleanups.push(() => o.close());
  return o;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
  reused: boolean;
}

export function request(
  url: string,
  init: { method?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent | false; body?: string } = {},
): Promise<Reply> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? "GET", headers: init.headers, agent: init.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("latin1"),
          ms: performance.now() - t0,
          reused: req.reusedSocket,
        }),
      );
      res.once("error", reject);
    });
    req.once("error", reject);
    req.end(init.body);
  });
}

/** Sends raw bytes and resolves with whatever comes back before the server closes (or `ms` passes). */
export function raw(port: number, bytes: Buffer | string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("close", done);
    socket.once("error", done);
    socket.write(bytes);
  });
}

export async function until(check: () => Promise<boolean> | boolean, timeoutMs = 3000, stepMs = 5): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs}ms`);
    await sleep(stepMs);
  }
  return performance.now() - t0;
}

/** Every scope back to zero: nothing held, nothing queued. */
export async function expectAllFree(s: Started): Promise<void> {
  await until(async () => {
    const st = await s.stats();
    return st.holders === 0 && st.tickets === 0;
  }, 2000);
  for (const [name, row] of Object.entries((await s.stats()).scopes)) {
    expect({ name, in_use: row.in_use, queued: row.queued }).toEqual({ name, in_use: 0, queued: 0 });
  }
  expect(s.node.nodeStats().nodeInUse).toBe(0);
}

export interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/**
 * Splits complete HTTP/1.1 responses off the front of `data` (framed by content-length or
 * chunked; a response without either runs to the end of the data).
 */
export function parseResponses(data: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = data;
  for (;;) {
    const headEnd = rest.indexOf("\r\n\r\n");
    if (headEnd === -1) return out;
    const head = rest.slice(0, headEnd);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    let body: string;
    let next: number;
    if (length !== undefined) {
      next = headEnd + 4 + Number(length);
      if (rest.length < next) return out;
      body = rest.slice(headEnd + 4, next);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const end = rest.indexOf("\r\n0\r\n\r\n", headEnd);
      if (end === -1) return out;
      next = end + 7;
      body = rest.slice(headEnd + 4, end);
    } else {
      next = rest.length;
      body = rest.slice(headEnd + 4);
    }
    out.push({ status, head, body });
    rest = rest.slice(next);
  }
}

/**
 * Sends raw bytes on one connection and resolves once `responses` complete responses came back,
 * the server closed, or `ms` passed, whichever is first.
 */
export function rawExchange(
  port: number,
  bytes: Buffer | string,
  responses = 1,
  ms = 3000,
): Promise<{ responses: RawResponse[]; closed: boolean; data: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let data = "";
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses: parseResponses(data), closed, data });
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (c: Buffer) => {
      data += c.toString("latin1");
      if (parseResponses(data).length >= responses) done();
    });
    socket.once("close", () => {
      closed = true;
      done();
    });
    socket.once("error", done);
    socket.write(bytes);
  });
}
