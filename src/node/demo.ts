/**
 * `slotgate demo`: a first look in one command. An edge node on the memory store in front of two
 * built-in slow origins (node:http on 127.0.0.1, 200–500 ms per request, each reporting its own
 * concurrency), and a load generator that fires mixed `/checkout/` (priority class 1) and
 * `/browse/` (class 2) traffic for a few seconds, then prints what happened: requests served per
 * class, rejections by reason, queue wait per class, and each origin's highest concurrency next to
 * its maxconn. With `load: false` it keeps serving so one can curl it.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { EdgeConfig } from "../edge/config/schema.js";
import { validateEdgeConfig } from "../edge/config/schema.js";
import { createEdgeNode, type EdgeNode } from "./edge-node.js";
import type { Logger } from "./logger.js";

export interface DemoOrigin {
  readonly name: string;
  readonly port: number;
  /** Requests being answered right now. */
  readonly current: number;
  /** Highest `current` seen. */
  readonly max: number;
  readonly served: number;
  close(): Promise<void>;
}

export const DEMO_SERVER_MAXCONN = 2;
export const DEMO_QUEUE_TIMEOUT = "3s";

/** A slow origin: 200–500 ms per request (uniform), reporting its concurrency. */
export async function startDemoOrigin(name: string, minMs = 200, maxMs = 500): Promise<DemoOrigin> {
  let current = 0;
  let max = 0;
  let served = 0;
  const server = http.createServer((req, res) => {
    current++;
    max = Math.max(max, current);
    const serviceMs = Math.round(minMs + Math.random() * (maxMs - minMs));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      current--;
    };
    res.once("close", finish);
    const timer = setTimeout(() => {
      served++;
      const body = `${JSON.stringify({ origin: name, path: req.url, serviceMs, concurrency: current })}\n`;
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "x-demo-origin": name,
        "x-demo-service-ms": String(serviceMs),
        "x-demo-concurrency": String(current),
      });
      res.end(body, finish);
    }, serviceMs);
    res.once("close", () => clearTimeout(timer));
    req.resume();
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    get current() {
      return current;
    },
    get max() {
      return max;
    },
    get served() {
      return served;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The demo's config: examples/demo.yaml with the origins' real ports. */
export function demoConfig(options: { port: number; statsPort: number | null; origins: readonly DemoOrigin[] }): EdgeConfig {
  const servers: Record<string, unknown> = {};
  for (const o of options.origins) servers[o.name] = { address: `127.0.0.1:${o.port}`, maxconn: DEMO_SERVER_MAXCONN };
  return validateEdgeConfig({
    store: { type: "memory" },
    group: "demo",
    frontends: {
      web: {
        bind: `127.0.0.1:${options.port}`,
        mode: "http",
        maxconn: 100,
        default_backend: "app",
        priority: [{ if: { path_beg: "/checkout/" }, class: 1 }, { class: 2 }],
      },
    },
    backends: {
      app: { balance: "leastconn", maxqueue: 100, timeout: { queue: DEMO_QUEUE_TIMEOUT, connect: "2s", server: "30s" }, servers },
    },
    ...(options.statsPort === null ? {} : { stats: { bind: `127.0.0.1:${options.statsPort}` } }),
  });
}

export interface LoadOptions {
  /** Edge node base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  durationMs: number;
  /** Concurrent clients, each sending one request after the other. */
  clients: number;
  /** Share of /checkout/ requests, 0–1. */
  checkoutShare: number;
}

export interface ClassResult {
  path: string;
  priorityClass: number;
  served: number;
  rejected: Record<string, number>;
  /** Other failures (connection errors, unexpected statuses). */
  failed: number;
  /** Time spent waiting for a slot: latency minus the origin's own service time. */
  waitsMs: number[];
}

export interface LoadResult {
  durationMs: number;
  classes: ClassResult[];
}

/** Closed-loop load: each client sends a request, waits for its answer, sends the next, until the time is up. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.clients });
  const checkout: ClassResult = { path: "/checkout/", priorityClass: 1, served: 0, rejected: {}, failed: 0, waitsMs: [] };
  const browse: ClassResult = { path: "/browse/", priorityClass: 2, served: 0, rejected: {}, failed: 0, waitsMs: [] };
  const started = performance.now();
  const deadline = started + options.durationMs;
  let seq = 0;
  const client = async () => {
    while (performance.now() < deadline) {
      const cls = Math.random() < options.checkoutShare ? checkout : browse;
      const t0 = performance.now();
      const outcome = await get(agent, `${options.url}${cls.path}item-${++seq}`);
      const elapsed = performance.now() - t0;
      if (outcome.status === 200) {
        cls.served++;
        cls.waitsMs.push(Math.max(0, elapsed - outcome.serviceMs));
      } else if (outcome.reason !== undefined) {
        cls.rejected[outcome.reason] = (cls.rejected[outcome.reason] ?? 0) + 1;
      } else {
        cls.failed++;
        await new Promise((r) => setTimeout(r, 50)); // do not spin on a broken node
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  agent.destroy();
  return { durationMs: performance.now() - started, classes: [checkout, browse] };
}

function get(agent: http.Agent, url: string): Promise<{ status: number; serviceMs: number; reason: string | undefined }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.once("end", () => {
        const reason = res.headers["x-slotgate-reason"];
        resolve({
          status: res.statusCode ?? 0,
          serviceMs: Number(res.headers["x-demo-service-ms"] ?? 0),
          reason: typeof reason === "string" ? reason : undefined,
        });
      });
      res.on("error", () => resolve({ status: 0, serviceMs: 0, reason: undefined }));
    });
    req.on("error", () => resolve({ status: 0, serviceMs: 0, reason: undefined }));
  });
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${Math.round(ms)}ms`;
}

export interface DemoOptions {
  /** Edge node port on 127.0.0.1. @default 8080 */
  port?: number;
  /** Stats listener port; null: none. @default 8404 */
  statsPort?: number | null;
  /** Run the load generator (else keep serving until `stop`). @default true */
  load?: boolean;
  /** @default 5000 */
  durationMs?: number;
  /** @default 40 */
  clients?: number;
  /** @default 0.3 */
  checkoutShare?: number;
  logger?: Logger;
  /** Where the report goes. */
  print: (line: string) => void;
}

export interface DemoHandle {
  node: EdgeNode;
  origins: DemoOrigin[];
  /** With load: resolves with the results once the load is over (the node keeps running until stop). */
  result: Promise<LoadResult | null>;
  stop(): Promise<void>;
}

/** Starts the demo: origins, edge node, and (unless `load: false`) the load generator and its report. */
export async function startDemo(options: DemoOptions): Promise<DemoHandle> {
  const print = options.print;
  const origins = [await startDemoOrigin("app1"), await startDemoOrigin("app2")];
  const statsPort = options.statsPort === undefined ? 8404 : options.statsPort;
  const config = demoConfig({ port: options.port ?? 8080, statsPort, origins });
  const node = await createEdgeNode(config, options.logger ? { logger: options.logger } : {});
  try {
    await node.start();
  } catch (error) {
    await Promise.all(origins.map((o) => o.close()));
    await node.stop(0);
    throw error;
  }
  const edge = node.addresses.web!;
  const url = `http://${edge.host}:${edge.port}`;
  const stats = node.statsAddress;
  print("slotgate demo: an edge node on the memory store in front of two slow origins");
  print(`  edge node  ${url}/  (priority class 1 for /checkout/, class 2 for the rest)`);
  if (stats) print(`  stats      http://${stats.host}:${stats.port}/stats   (also /stats.json, /metrics)`);
  print(`  origins    ${origins.map((o) => `${o.name} 127.0.0.1:${o.port}`).join(", ")}: 200–500 ms per request, maxconn ${DEMO_SERVER_MAXCONN} each`);
  print(`  queue      timeout ${DEMO_QUEUE_TIMEOUT}, then 503 with x-slotgate-reason: queue-timeout`);

  const stop = async () => {
    await node.stop(2_000);
    await Promise.all(origins.map((o) => o.close()));
  };

  if (options.load === false) {
    print("");
    print(`try:  curl -i ${url}/checkout/cart      (or fire many at once and watch the stats page)`);
    print("stop: Ctrl-C");
    return { node, origins, result: Promise.resolve(null), stop };
  }

  const durationMs = options.durationMs ?? 5_000;
  const clients = options.clients ?? 40;
  const checkoutShare = options.checkoutShare ?? 0.3;
  print("");
  print(`load: ${clients} clients for ${fmtMs(durationMs)}, ${Math.round(checkoutShare * 100)}% /checkout/, each sending one request after the other…`);
  const result = runLoad({ url, durationMs, clients, checkoutShare }).then((r) => {
    report(r, durationMs, origins, print);
    return r;
  });
  return { node, origins, result, stop };
}

function report(result: LoadResult, loadMs: number, origins: readonly DemoOrigin[], print: (line: string) => void): void {
  const rows = [["", "served", "not served", "wait p50", "wait p99"]];
  for (const c of result.classes) {
    const rejected = Object.entries(c.rejected).map(([reason, n]) => `${n} ${reason}`);
    if (c.failed > 0) rejected.push(`${c.failed} failed`);
    rows.push([
      `${c.path} (class ${c.priorityClass})`,
      String(c.served),
      rejected.length === 0 ? "0" : rejected.join(", "),
      fmtMs(quantile(c.waitsMs, 0.5)),
      fmtMs(quantile(c.waitsMs, 0.99)),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  print("");
  print(`results (load for ${fmtMs(loadMs)}, last answer after ${fmtMs(result.durationMs)}):`);
  for (const r of rows)
    print(
      `  ${r
        .map((cell, i) => (i === 0 || i === 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("   ")
        .trimEnd()}`,
    );
  print("");
  for (const o of origins) print(`  origin ${o.name}: max concurrency ${o.max} (maxconn ${DEMO_SERVER_MAXCONN}), ${o.served} served`);
  const [checkout, browse] = result.classes;
  const held = origins.every((o) => o.max <= DEMO_SERVER_MAXCONN);
  print("");
  print(held ? "  ✓ no origin ever saw more than its maxconn; the rest waited in the queue" : "  ✗ an origin saw more than its maxconn");
  if (checkout && browse && checkout.waitsMs.length > 0 && browse.waitsMs.length > 0) {
    const p1 = quantile(checkout.waitsMs, 0.5);
    const p2 = quantile(browse.waitsMs, 0.5);
    print(
      `  ${p1 <= p2 ? "✓" : "·"} class 1 (/checkout/) waited ${fmtMs(p1)} at the median, class 2 (/browse/) ${fmtMs(p2)}: the queue serves lower classes first`,
    );
  }
  const timeouts = result.classes.reduce((n, c) => n + (c.rejected["queue-timeout"] ?? 0), 0);
  if (timeouts > 0) print(`  · ${timeouts} requests waited longer than timeout queue (${DEMO_QUEUE_TIMEOUT}) and got a 503 with Retry-After`);
}
