// Keyed-limit values (API keys, tokens in a query) on the stats outputs and in the logs. Two real
// edge nodes share one memory store, as a fleet does: node A has the stats listener, node B runs
// a newer config with one more keyed limit (so A sees B's key rows as undeclared scopes). Clients
// hold slots with secret values over real sockets; then every output is read the way an operator
// (or anyone who reaches the listener) reads it: HTML, JSON, Prometheus, `slotgate stats`, logs.

import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { createMemoryStore, type SlotStore } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createEdgeNode, type EdgeNode } from "../../src/node/edge-node.js";
import { createLogger } from "../../src/node/logger.js";
import { keyDigest } from "../../src/node/stats/keys.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { run, useCliTests } from "../support/cli.js";
import { startOrigin, type Origin } from "../support/origin.js";

const HEADER_SECRET = "sk_live_HEADERSECRET_4f1d9c";
const QUERY_SECRET = "QUERYSECRET_77aa21";
const NEWER_SECRET = "NEWERSECRET_b0b0b0";
const SECRETS = [HEADER_SECRET, QUERY_SECRET, NEWER_SECRET];
const GROUP = "atk";

const { writeConfig, cleanups } = useCliTests();

let redis: RedisProcess | undefined;
afterAll(async () => {
  await redis?.stop();
});

function rawConfig(
  origin: Origin,
  opts: { newer?: boolean; stats?: Record<string, unknown>; store?: Record<string, unknown>; log?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const limits: Array<Record<string, unknown>> = [
    { name: "apikey", key: { header: "x-api-key" }, maxconn: 1 },
    { name: "tok", key: { query: "api_key" }, maxconn: 5 },
  ];
  if (opts.newer) limits.push({ name: "newkey", key: { header: "x-new-key" }, maxconn: 5 });
  return {
    group: GROUP,
    ...(opts.store ? { store: opts.store } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app", limits } },
    // timeout.queue 0: a request over a limit is rejected at once (and logged).
    backends: { app: { timeout: { queue: 0 }, servers: { a: { address: origin.address } } } },
    ...(opts.stats ? { stats: opts.stats } : {}),
  };
}

interface Node {
  node: EdgeNode;
  port: number;
  logs: string[];
}

async function startNode(raw: Record<string, unknown>, store?: SlotStore): Promise<Node> {
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", destination: { write: (line: string) => void logs.push(line) } });
  const node = await createEdgeNode(validateEdgeConfig(raw), store ? { logger, store } : { logger });
  await node.start();
  cleanups.push(() => node.stop(0));
  return { node, port: node.addresses.web!.port, logs };
}

async function origin(): Promise<Origin> {
  const o = await startOrigin();
  cleanups.push(() => o.close());
  return o;
}

/** A request through the proxy to the origin's /hang: it holds its slot until the test ends. */
function hold(port: number, path: string, headers: Record<string, string>): void {
  const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false });
  req.on("error", () => undefined);
  req.end();
  cleanups.push(async () => req.destroy());
}

/** One request through the proxy; resolves with its status. */
function send(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
    });
    req.once("error", reject);
    req.end();
  });
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await sleep(10);
  }
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return res.text();
}

function expectNoSecret(output: string, where: string): void {
  for (const secret of SECRETS) expect(output.includes(secret), `${where} shows ${secret}`).toBe(false);
}

const digest = (limit: string, value: string) => keyDigest(GROUP, `frontend:web:${limit}`, value);

/** Node A (stats listener) and node B (newer config) on one store, three secret keys held. */
async function fleetHoldingSecrets(extra: { stats?: Record<string, unknown> } = {}) {
  const o = await origin();
  const store = createMemoryStore();
  const a = await startNode(rawConfig(o, { stats: { bind: "127.0.0.1:0", ...extra.stats } }), store);
  const b = await startNode(rawConfig(o, { newer: true }), store);
  hold(a.port, `/hang?api_key=${QUERY_SECRET}`, { "x-api-key": HEADER_SECRET });
  hold(b.port, "/hang", { "x-new-key": NEWER_SECRET });
  await waitFor(() => o.current === 2, "two held requests at the origin");
  return { o, a, b, store, statsUrl: `http://127.0.0.1:${a.node.statsAddress!.port}` };
}

describe("keyed-limit values on the stats listener", () => {
  it("are digested on /stats, /stats.json and /metrics, including a newer node's undeclared limit", async () => {
    const { statsUrl } = await fleetHoldingSecrets();
    const page = await text(`${statsUrl}/stats`);
    const json = await text(`${statsUrl}/stats.json`);
    const metrics = await text(`${statsUrl}/metrics`);
    for (const [name, out] of [
      ["/stats", page],
      ["/stats.json", json],
      ["/metrics", metrics],
    ] as const)
      expectNoSecret(out, name);

    // Each value is there, as its digest, so that operators can still tell keys apart.
    for (const out of [page, json]) {
      expect(out).toContain(`frontend:web:apikey:${digest("apikey", HEADER_SECRET)}`);
      expect(out).toContain(`frontend:web:tok:${digest("tok", QUERY_SECRET)}`);
      expect(out).toContain(`frontend:web:newkey:${digest("newkey", NEWER_SECRET)}`);
    }
    // The undeclared limit's key row reaches Prometheus as an "other" scope: digested there too.
    expect(metrics).toContain(`scope="frontend:web:newkey:${digest("newkey", NEWER_SECRET)}"`);
  });

  it("are the same digest on every node of the fleet, and a pure function of group, limit and value", async () => {
    const { o, store, statsUrl } = await fleetHoldingSecrets();
    // A second node with its own stats listener on the same store, started later.
    const c = await startNode(rawConfig(o, { stats: { bind: "127.0.0.1:0" } }), store);
    const keyRows = async (url: string) =>
      Object.keys((JSON.parse(await text(`${url}/stats.json`)) as { stats: { scopes: Record<string, unknown> } }).stats.scopes)
        .filter((n) => n.split(":").length > 3)
        .sort();
    const fromA = await keyRows(statsUrl);
    expect(fromA.length).toBeGreaterThanOrEqual(2);
    expect(await keyRows(`http://127.0.0.1:${c.node.statsAddress!.port}`)).toEqual(fromA);
    // No per-process salt: computed here, in the test's process, it names the row the nodes show,
    // so it also survives a restart. Group and limit key it: the same value differs elsewhere.
    expect(fromA).toContain(`frontend:web:apikey:${digest("apikey", HEADER_SECRET)}`);
    expect(digest("apikey", HEADER_SECRET)).toMatch(/^#[0-9a-f]{12}$/);
    expect(keyDigest("other-group", "frontend:web:apikey", HEADER_SECRET)).not.toBe(digest("apikey", HEADER_SECRET));
    expect(digest("tok", HEADER_SECRET)).not.toBe(digest("apikey", HEADER_SECRET));
  });

  it("are shown raw with stats.show_keys: true", async () => {
    const { statsUrl } = await fleetHoldingSecrets({ stats: { show_keys: true } });
    const json = await text(`${statsUrl}/stats.json`);
    expect(json).toContain(`frontend:web:apikey:${HEADER_SECRET}`);
    expect(json).toContain(`frontend:web:newkey:${NEWER_SECRET}`);
    expect(json).not.toContain(digest("apikey", HEADER_SECRET));
  });
});

describe("keyed-limit values in slotgate stats", () => {
  it("are digested in the table read from a memory node's stats listener", async () => {
    const { statsUrl, o } = await fleetHoldingSecrets();
    const port = new URL(statsUrl).port;
    const file = await writeConfig("memory-stats.yaml", rawConfig(o, { stats: { bind: `127.0.0.1:${port}` } }));
    const table = await run(["stats", "-c", file]);
    expect(table.code, table.stderr).toBe(0);
    expectNoSecret(table.stdout, "slotgate stats");
    expect(table.stdout).toContain(digest("apikey", HEADER_SECRET));
  });

  it("are digested in the table and --json read straight from a Redis store", async () => {
    redis ??= await startRedis();
    const o = await origin();
    const raw = rawConfig(o, { store: { type: "redis", url: redis.url } });
    const a = await startNode(raw);
    hold(a.port, `/hang?api_key=${QUERY_SECRET}`, { "x-api-key": HEADER_SECRET });
    await waitFor(() => o.current === 1, "the held request at the origin");
    const file = await writeConfig("redis-stats.yaml", raw);
    for (const args of [
      ["stats", "-c", file],
      ["stats", "-c", file, "--json"],
    ]) {
      const r = await run(args);
      expect(r.code, r.stderr).toBe(0);
      expectNoSecret(r.stdout, args.join(" "));
      expect(r.stdout).toContain(digest("apikey", HEADER_SECRET));
      expect(r.stdout).toContain(digest("tok", QUERY_SECRET));
    }
  });
});

describe("keyed-limit values and query strings in the logs", () => {
  it("a rejection logs the path without its query, and never a key value", async () => {
    const o = await origin();
    const a = await startNode(rawConfig(o));
    hold(a.port, `/hang?api_key=${QUERY_SECRET}`, { "x-api-key": HEADER_SECRET });
    await waitFor(() => o.current === 1, "the held request at the origin");
    // apikey allows 1 per key and nothing queues: the same key again is rejected and logged.
    expect(await send(a.port, `/orders/42?api_key=${QUERY_SECRET}&page=2`, { "x-api-key": HEADER_SECRET })).toBe(503);
    await waitFor(() => a.logs.some((l) => l.includes('"request rejected"')), "the rejection log line");
    const line = JSON.parse(a.logs.find((l) => l.includes('"request rejected"'))!) as Record<string, unknown>;
    expect(line.path).toBe("/orders/42");
    expectNoSecret(a.logs.join("\n"), "the logs");
  });

  it("with log.query: true logs the query, keyed parameters as their digest", async () => {
    const o = await origin();
    const a = await startNode(rawConfig(o, { log: { query: true } }));
    hold(a.port, "/hang", { "x-api-key": HEADER_SECRET });
    await waitFor(() => o.current === 1, "the held request at the origin");
    expect(await send(a.port, `/orders/42?page=2&api_key=${QUERY_SECRET}`, { "x-api-key": HEADER_SECRET })).toBe(503);
    await waitFor(() => a.logs.some((l) => l.includes('"request rejected"')), "the rejection log line");
    const line = JSON.parse(a.logs.find((l) => l.includes('"request rejected"'))!) as Record<string, unknown>;
    expect(line.path).toBe(`/orders/42?page=2&api_key=${digest("tok", QUERY_SECRET)}`);
    expectNoSecret(a.logs.join("\n"), "the logs");
  });
});
