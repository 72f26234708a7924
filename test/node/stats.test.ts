import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createGuard, createMemoryStore, SlotgateError, type Guard, type GuardStats, type Lease } from "../../src/index.js";
import { buildGroupSpec } from "../../src/core/spec.js";
import { parseBind, validateEdgeConfig, type EdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { startRedis } from "../harness/redis.js";
import { waitUntil } from "../support/redis-fleet.js";
import { createStatsListener, type NodeStats } from "../../src/node/stats/index.js";
import { keyDigest } from "../../src/node/stats/keys.js";
import { createStatsMetrics } from "../../src/node/stats/metrics.js";
import { renderStatsPage } from "../../src/node/stats/render-html.js";
import { parseRefresh } from "../../src/node/stats/server.js";

const TOKEN = "s3cret-token-0123456789";
/** How the key value "acme" of the limit apikey is shown by default. */
const ACME = keyDigest("shop", "frontend:web:apikey", "acme");

function edgeConfig(stats: Record<string, unknown> = { bind: "127.0.0.1:0" }, top: Record<string, unknown> = {}): EdgeConfig {
  return validateEdgeConfig({
    group: "shop",
    global: { maxconn: 50 },
    node: { maxconn: 100 },
    frontends: {
      web: {
        bind: "127.0.0.1:0",
        maxconn: 10,
        default_backend: "api",
        limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 2, maxqueue: 5 }],
      },
      echo: { bind: "127.0.0.1:0", mode: "tcp", default_backend: "api" },
    },
    backends: {
      api: {
        balance: "first",
        maxconn: 8,
        servers: {
          a1: { address: "127.0.0.1:9001", maxconn: 2 },
          a2: { address: "127.0.0.1:9002", maxconn: 5 },
          a3: { address: "127.0.0.1:9003", maxconn: 5, down: true },
        },
      },
    },
    stats,
    ...top,
  });
}

function nodeStats(): NodeStats {
  return {
    nodeMaxconn: 100,
    nodeInUse: 3,
    frontends: {
      web: { active: 3, queued: 1, requests: 42, rejected: { full: 2, "queue-full": 1 } },
      echo: { active: 0, queued: 0, requests: 0, rejected: {} },
    },
  };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Logged {
  level: "info" | "warn";
  o: object;
  msg: string | undefined;
}

async function setup(opts: { token?: string | null; guard?: Pick<Guard, "stats">; config?: EdgeConfig } = {}) {
  const config = opts.config ?? edgeConfig();
  let guard = opts.guard;
  if (!guard) {
    const g = createGuard({ ...toGuardOptions(config), store: createMemoryStore() });
    cleanups.push(() => g.close());
    guard = g;
  }
  const logs: Logged[] = [];
  const listener = createStatsListener({
    bind: config.stats!.bind,
    token: opts.token ?? null,
    guard,
    config,
    node: nodeStats,
    logger: { info: (o, msg) => logs.push({ level: "info", o, msg }), warn: (o, msg) => logs.push({ level: "warn", o, msg }) },
  });
  await listener.start();
  cleanups.push(() => listener.stop());
  const { port } = listener.address()!;
  const base = `http://127.0.0.1:${port}`;
  return { config, guard, listener, logs, base, get: (path: string, init?: RequestInit) => fetch(`${base}${path}`, init) };
}

/** Holds slots: two keys of the keyed limit, one hostile. */
async function load(guard: Guard, keys: string[]): Promise<Lease[]> {
  const leases: Lease[] = [];
  for (const key of keys) {
    const r = await guard.acquire({ scopes: ["global", "frontend:web", `frontend:web:apikey:${key}`], backend: "api" });
    if (!r.ok) throw new Error(`not granted: ${r.reason}`);
    leases.push(r.lease);
  }
  return leases;
}

// ---------------------------------------------------------------------------------------------
// A small Prometheus text-format (0.0.4) parser: strict enough to catch what a scraper rejects.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  help: string;
  type: string;
  samples: Sample[];
}

function parseProm(text: string): Map<string, Family> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map<string, Family>();
  let current: { name: string; family: Family } | null = null;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      expect(families.has(m[1]!), `family ${m[1]} declared twice`).toBe(false);
      current = { name: m[1]!, family: { help: m[2]!, type: "", samples: [] } };
      families.set(m[1]!, current.family);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      expect(current?.name, `TYPE ${m[1]} right after its HELP`).toBe(m[1]);
      expect(current!.family.type).toBe("");
      current!.family.type = m[2]!;
      continue;
    }
    expect(line.startsWith("#"), `unexpected comment: ${line}`).toBe(false);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `sample line: ${line.slice(0, 200)}`).not.toBeNull();
    const name = m![1]!;
    expect(current, `sample before any HELP/TYPE: ${line}`).not.toBeNull();
    const family = current!.family;
    expect(family.type, `TYPE before samples of ${current!.name}`).not.toBe("");
    const suffixes = family.type === "histogram" ? ["_bucket", "_sum", "_count"] : [""];
    expect(
      suffixes.map((s) => current!.name + s),
      `sample ${name} belongs to ${current!.name}`,
    ).toContain(name);
    const labels: Record<string, string> = {};
    const labelText = m![2] ?? "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
    let pos = 0;
    while (pos < labelText.length) {
      re.lastIndex = pos;
      const lm = re.exec(labelText);
      expect(lm, `label syntax in ${line.slice(0, 200)}`).not.toBeNull();
      expect(labels[lm![1]!], `duplicate label ${lm![1]}`).toBeUndefined();
      labels[lm![1]!] = lm![2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      pos = re.lastIndex;
    }
    const raw = m![3]!;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    expect(Number.isNaN(value), `value ${raw}`).toBe(false);
    family.samples.push({ name, labels, value });
  }
  return families;
}

function sample(families: Map<string, Family>, family: string, labels: Record<string, string>): number | undefined {
  const f = families.get(family);
  return f?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

/** Each family is declared with its type. */
function expectTypes(families: Map<string, Family>, types: Record<string, string>): void {
  for (const [name, type] of Object.entries(types)) expect(families.get(name)?.type, name).toBe(type);
}

function checkHistogram(f: Family): void {
  const buckets = f.samples.filter((s) => s.name.endsWith("_bucket"));
  expect(buckets.length).toBeGreaterThan(1);
  const les = buckets.map((b) => (b.labels.le === "+Inf" ? Infinity : Number(b.labels.le)));
  for (let i = 1; i < buckets.length; i++) {
    expect(les[i]!, "le strictly increasing").toBeGreaterThan(les[i - 1]!);
    expect(buckets[i]!.value, "buckets cumulative").toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  }
  expect(buckets.at(-1)!.labels.le).toBe("+Inf");
  const count = f.samples.find((s) => s.name.endsWith("_count"))!.value;
  expect(buckets.at(-1)!.value).toBe(count);
  expect(f.samples.find((s) => s.name.endsWith("_sum"))!.value).toBeGreaterThanOrEqual(0);
}

// ---------------------------------------------------------------------------------------------

describe("stats listener endpoints", () => {
  it("serves /stats.json: the guard's stats, this node's stats and generatedAt", async () => {
    const { guard, get } = await setup();
    await load(guard as Guard, ["acme", "acme", "globex"]);
    const res = await get("/stats.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as { generatedAt: string; group: string; stats: GuardStats; node: NodeStats };
    expect(new Date(body.generatedAt).toISOString()).toBe(body.generatedAt);
    expect(body.group).toBe("shop");
    expect(body.node).toEqual(nodeStats());
    const s = body.stats;
    expect(s.store).toBe("memory");
    expect(s.scopes["global"]).toMatchObject({ in_use: 3, max: 50 });
    expect(s.scopes["frontend:web"]).toMatchObject({ in_use: 3, max: 10, granted: 3 });
    expect(s.scopes["frontend:web:apikey"]).toMatchObject({ in_use: 3, keys: 2 });
    // Key values are shown as their digest by default (stats.show_keys: false).
    expect(s.scopes[`frontend:web:apikey:${ACME}`]).toMatchObject({ in_use: 2, max: 2 });
    expect(Object.keys(s.scopes).filter((n) => n.includes("acme") || n.includes("globex"))).toEqual([]);
    expect(s.scopes["server:api/a1"]).toMatchObject({ in_use: 2, max: 2, up: true });
    expect(s.scopes["server:api/a3"]).toMatchObject({ up: false });
    expect(s.queueWaitQuantiles).toEqual({ p50: 0, p90: 0, p99: 0 });
    expect(s.fallback).toEqual({ fail_closed: 0, fail_open: 0, local: 0, store_errors: 0 });
  });

  it("serves /stats: an HTML page with a section per frontend and backend, rows, colours and auto-refresh", async () => {
    const { guard: g, get } = await setup();
    const guard = g as Guard;
    await load(guard, ["acme", "acme", "globex"]);
    // Queue a ticket on the full key, and get one rejected at once.
    const queued = guard.acquire({ scopes: ["global", "frontend:web", "frontend:web:apikey:acme"], backend: "api", queueTimeoutMs: 10_000 });
    const rejected = await guard.acquire({ scopes: ["global", "frontend:web", "frontend:web:apikey:acme"], backend: "api" });
    expect(rejected).toMatchObject({ ok: false, reason: "full" });

    const res = await get("/stats");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const page = await res.text();
    expect(page).toMatch(/^<!DOCTYPE html>/);
    expect(page).toContain('<meta http-equiv="refresh" content="5">');
    for (const id of ["summary", "histogram", "node", "global", "frontend-web", "frontend-echo", "backend-api"]) expect(page).toContain(`id="${id}"`);
    // Rows, by scope, with the expected numbers (cur, peak, limit; queue cur, peak, limit; granted; full; q-full).
    const row = (scope: string) => {
      const m = new RegExp(`<tr class="([^"]*)" data-scope="${scope.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}">(.*?)</tr>`).exec(page);
      expect(m, `row ${scope}`).not.toBeNull();
      return { classes: m![1]!.split(" "), cells: [...m![2]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, "").trim()) };
    };
    expect(row("frontend:web").cells.slice(1, 11)).toEqual(["3", "3", "10", "1", "1", "-", "3", "0", "0", "0"]);
    expect(row("frontend:web:apikey").cells.slice(1, 4)).toEqual(["3", "3", "2 per key"]);
    expect(row("frontend:web:apikey").cells.at(-1)).toBe("2 keys");
    const acme = row(`frontend:web:apikey:${ACME}`);
    expect(acme.classes).toContain("full");
    expect(acme.cells[0]).toBe(`↳ ${ACME}`);
    expect(page).not.toContain("acme");
    expect(acme.cells.slice(1, 11)).toEqual(["2", "2", "2", "1", "1", "5", "2", "1", "0", "0"]); // the full scope counts the rejection
    expect(row("server:api/a1").classes).toEqual(["server", "up", "full"]);
    expect(row("server:api/a1").cells.at(-1)).toBe("UP");
    expect(row("server:api/a3").classes).toEqual(["server", "down"]);
    expect(row("server:api/a3").cells.at(-1)).toBe("DOWN");
    expect(row("server:api/a2").classes).toEqual(["server", "up"]);
    expect(row("backend:api").cells.slice(1, 4)).toEqual(["3", "3", "8"]);
    expect(row("global").cells.slice(1, 4)).toEqual(["3", "3", "50"]);
    expect(row("frontend:echo").cells.slice(1, 4)).toEqual(["0", "0", "-"]); // unlimited frontend
    expect(row("node").cells.slice(0, 3)).toEqual(["node", "3", "100"]);
    expect(row("node:web").cells).toEqual(["web", "3", "-", "1", "42", "3", "full 2, queue-full 1"]);
    expect(page).toMatch(/<th>p50<\/th><td>0 ms<\/td>/);

    // ?refresh=N changes the interval, 0 turns it off.
    expect(await (await get("/stats?refresh=17")).text()).toContain('<meta http-equiv="refresh" content="17">');
    expect(await (await get("/stats?refresh=0")).text()).not.toContain('http-equiv="refresh"');
    await guard.close();
    await queued;
  });

  it("colours a row amber from 80 % of its limit and red at it", () => {
    const config = edgeConfig();
    const stats = fakeStats({
      "frontend:web": scopeStats({ in_use: 8, max: 10 }),
      "backend:api": scopeStats({ in_use: 7, max: 8 }),
      "server:api/a1": scopeStats({ in_use: 1, max: 2, up: true }),
      "server:api/a3": scopeStats({ in_use: 5, max: 5, up: false }),
    });
    const page = renderStatsPage({ config, node: nodeStats(), stats, generatedAt: new Date(0), refreshSeconds: 5 });
    expect(page).toContain('<tr class="frontend near" data-scope="frontend:web">');
    expect(page).toContain('<tr class="backend near" data-scope="backend:api">');
    expect(page).toContain('<tr class="server up" data-scope="server:api/a1">');
    expect(page).toContain('<tr class="server down" data-scope="server:api/a3">'); // down wins over full
  });

  it("serves /metrics in Prometheus text format from its own registry", async () => {
    const { guard, get } = await setup();
    const leases = await load(guard as Guard, ["acme", "<script>"]);
    await leases[0]!.release();
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    const families = parseProm(text);
    for (const [name, type] of Object.entries({
      slotgate_in_use: "gauge",
      slotgate_max: "gauge",
      slotgate_queued: "gauge",
      slotgate_peak_in_use: "gauge",
      slotgate_peak_queued: "gauge",
      slotgate_keys: "gauge",
      slotgate_server_up: "gauge",
      slotgate_granted_total: "counter",
      slotgate_rejected_full_total: "counter",
      slotgate_rejected_queue_full_total: "counter",
      slotgate_queue_timeouts_total: "counter",
      slotgate_aborted_total: "counter",
      slotgate_expired_total: "counter",
      slotgate_released_total: "counter",
      slotgate_holders: "gauge",
      slotgate_tickets: "gauge",
      slotgate_queue_wait_seconds: "histogram",
      slotgate_fallback_decisions_total: "counter",
      slotgate_store_errors_total: "counter",
      slotgate_store_up: "gauge",
      slotgate_node_in_use: "gauge",
      slotgate_node_maxconn: "gauge",
      slotgate_node_frontend_active: "gauge",
      slotgate_node_frontend_rejected_total: "counter",
    })) {
      expect(families.get(name)?.type, name).toBe(type);
    }
    expect(sample(families, "slotgate_in_use", { scope: "frontend:web", kind: "frontend", group: "shop" })).toBe(1);
    expect(sample(families, "slotgate_granted_total", { scope: "frontend:web" })).toBe(2);
    expect(sample(families, "slotgate_released_total", { scope: "frontend:web" })).toBe(1);
    expect(sample(families, "slotgate_max", { scope: "server:api/a1", kind: "server" })).toBe(2);
    expect(sample(families, "slotgate_max", { scope: "frontend:echo" })).toBeUndefined(); // unlimited
    expect(sample(families, "slotgate_in_use", { scope: "frontend:web:apikey", kind: "keyed_limit" })).toBe(1);
    expect(sample(families, "slotgate_keys", { scope: "frontend:web:apikey" })).toBe(1);
    expect(sample(families, "slotgate_server_up", { scope: "server:api/a3" })).toBe(0);
    expect(sample(families, "slotgate_store_up", {})).toBe(1);
    expect(sample(families, "slotgate_node_frontend_rejected_total", { frontend: "web", reason: "queue-full" })).toBe(1);
    // Cardinality: per-key rows are not exported by default.
    expect(text).not.toContain("frontend:web:apikey:");
    expect([...families.values()].flatMap((f) => f.samples).some((s) => s.labels.kind === "key")).toBe(false);
    const wait = families.get("slotgate_queue_wait_seconds")!;
    checkHistogram(wait);
    expect(wait.samples.find((s) => s.name.endsWith("_count"))!.value).toBe(2);
    expect(wait.samples.find((s) => s.labels.le === "0.001")).toBeDefined();
    // Our registry only: no default process metrics.
    expect(text).not.toContain("process_cpu");
  });

  it("exports the queue-wait histogram cumulatively, in seconds, with +Inf == count", async () => {
    const config = edgeConfig();
    const metrics = createStatsMetrics(config);
    const stats = fakeStats({});
    stats.queueWait = { bounds: [0, 1, 2, 5], counts: [3, 0, 2, 1, 4], count: 10, sumMs: 123_456 };
    const families = parseProm(await metrics.render({ stats, node: nodeStats() }));
    const wait = families.get("slotgate_queue_wait_seconds")!;
    checkHistogram(wait);
    expect(wait.samples.map((s) => [s.name.replace("slotgate_queue_wait_seconds", ""), s.labels.le ?? "", s.value])).toEqual([
      ["_bucket", "0", 3],
      ["_bucket", "0.001", 3],
      ["_bucket", "0.002", 5],
      ["_bucket", "0.005", 6],
      ["_bucket", "+Inf", 10],
      ["_sum", "", 123.456],
      ["_count", "", 10],
    ]);
    // The next scrape reflects the next snapshot, not a sum of both.
    stats.queueWait = { bounds: [0, 1, 2, 5], counts: [1, 0, 0, 0, 0], count: 1, sumMs: 0 };
    const again = parseProm(await metrics.render({ stats, node: nodeStats() }));
    expect(sample(again, "slotgate_queue_wait_seconds", { le: "+Inf" })).toBe(1);
  });

  it("exports the busiest key rows only when asked, with hostile values escaped by prom-client", async () => {
    const config = edgeConfig();
    const hostile = 'a"b\\c\nd}{e,f="g"';
    const stats = fakeStats({
      "frontend:web:apikey": scopeStats({ in_use: 5, max: 2, keys: 3 }),
      [`frontend:web:apikey:${hostile}`]: scopeStats({ in_use: 2, max: 2 }),
      "frontend:web:apikey:b": scopeStats({ in_use: 2, max: 2 }),
      "frontend:web:apikey:c": scopeStats({ in_use: 1, max: 2 }),
    });
    const none = parseProm(await createStatsMetrics(config).render({ stats, node: nodeStats() }));
    expect(none.get("slotgate_in_use")!.samples.map((s) => s.labels.scope)).toEqual(["frontend:web:apikey"]);
    const two = parseProm(await createStatsMetrics(config, { keyRows: 2 }).render({ stats, node: nodeStats() }));
    const scopes = two.get("slotgate_in_use")!.samples.map((s) => [s.labels.scope, s.labels.kind]);
    expect(scopes).toEqual([
      ["frontend:web:apikey", "keyed_limit"],
      [`frontend:web:apikey:${hostile}`, "key"],
      ["frontend:web:apikey:b", "key"],
    ]);
  });
});

describe("stats listener: auth", () => {
  it("requires the token (header or query) on every path when one is set", async () => {
    const { get } = await setup({ token: TOKEN });
    for (const path of ["/stats", "/stats.json", "/metrics", "/nope"]) {
      const res = await get(path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="slotgate stats"');
      expect(await res.text()).not.toContain(TOKEN);
    }
    const wrong = await get("/stats.json", { headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect((await get(`/stats.json?token=${TOKEN.slice(0, -1)}`)).status).toBe(401);
    expect((await get("/stats.json", { headers: { authorization: `Basic ${TOKEN}` } })).status).toBe(401);
    expect((await get(`/stats.json?token=${TOKEN}&token=${TOKEN}`)).status).toBe(401);

    expect((await get("/stats.json", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await get("/metrics", { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await get(`/stats.json?token=${encodeURIComponent(TOKEN)}`)).status).toBe(200);
    const page = await get(`/stats?token=${TOKEN}`);
    expect(page.status).toBe(200);
    // A browser that came with ?token= keeps it on the links to the other endpoints.
    expect(await page.text()).toContain(`href="/metrics?token=${TOKEN}"`);
    const viaHeader = await (await get("/stats", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(viaHeader).not.toContain(TOKEN);
  });

  it("refuses to be created off loopback without a token, and never logs the token", async () => {
    const config = edgeConfig();
    const guard = { stats: () => Promise.reject(new Error("unused")) };
    const offLoopback = parseBind("0.0.0.0:0")!;
    const create = (bind = offLoopback, token: string | null = null) => createStatsListener({ bind, token, guard, config, node: nodeStats });
    expect(() => create()).toThrow(SlotgateError);
    try {
      create();
    } catch (error) {
      expect((error as SlotgateError).code).toBe("SLOTGATE_INVALID_CONFIG");
      expect((error as Error).message).toContain("token");
    }
    // A BindAddress that claims loopback for a wildcard address is not believed.
    expect(() => create({ ...offLoopback, loopback: true })).toThrow(/token is required/);
    expect(() => create(parseBind("[::1]:0")!, "")).toThrow(SlotgateError);
    expect(() => create(offLoopback, TOKEN)).not.toThrow();
    expect(() => create(parseBind("[::1]:0")!)).not.toThrow();

    const { logs, get } = await setup({ token: TOKEN });
    await get(`/stats?token=${TOKEN}`);
    await get(`/stats?token=wrong`);
    expect(logs.some((l) => l.msg === "stats listener started")).toBe(true);
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
  });
});

describe("stats listener: methods, paths, lifecycle", () => {
  it("answers 405 to non-GET, 404 to unknown paths, HEAD without a body", async () => {
    const { get } = await setup();
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const res = await get("/stats", { method, body: method === "DELETE" ? null : "x" });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
    }
    for (const path of ["/", "/stats/", "/stats.JSON", "/metrics/x", "/favicon.ico", "/stats.json.bak"]) {
      expect((await get(path)).status, path).toBe(404);
    }
    const head = await get("/stats.json", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("starts, reports its address, stops, and frees the port", async () => {
    const config = edgeConfig();
    const guard = createGuard({ ...toGuardOptions(config), store: createMemoryStore() });
    cleanups.push(() => guard.close());
    const listener = createStatsListener({ bind: config.stats!.bind, token: null, guard, config, node: nodeStats });
    expect(listener.address()).toBeNull();
    await listener.start();
    await listener.start(); // idempotent
    const address = listener.address()!;
    expect(address.host).toBe("127.0.0.1");
    expect(address.port).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${address.port}/stats.json`)).status).toBe(200);
    await listener.stop();
    await listener.stop();
    expect(listener.address()).toBeNull();
    await expect(fetch(`http://127.0.0.1:${address.port}/stats.json`)).rejects.toThrow();
  });

  it("rejects start() when the port is taken", async () => {
    const { listener } = await setup();
    const port = listener.address()!.port;
    const config = edgeConfig({ bind: `127.0.0.1:${port}` });
    const other = createStatsListener({
      bind: config.stats!.bind,
      token: null,
      guard: { stats: () => Promise.reject(new Error("unused")) },
      config,
      node: nodeStats,
    });
    await expect(other.start()).rejects.toThrow(/EADDRINUSE/);
    expect(other.address()).toBeNull();
  });

  it("parses ?refresh=N", () => {
    expect(parseRefresh(null)).toBe(5);
    expect(parseRefresh("0")).toBeNull();
    expect(parseRefresh("30")).toBe(30);
    expect(parseRefresh("99999")).toBe(3600);
    for (const bad of ["", "-1", "1.5", "abc", "5;url=http://evil", "1e3"]) expect(parseRefresh(bad)).toBe(5);
  });
});

describe("stats listener: cluster-wide numbers and store failure", () => {
  it("shows slots held by other nodes of the same store (cluster-wide)", async () => {
    const config = edgeConfig();
    const store = createMemoryStore();
    const nodeA = createGuard({ ...toGuardOptions(config), store });
    const nodeB = createGuard({ ...toGuardOptions(config), store });
    cleanups.push(
      () => nodeA.close(),
      () => nodeB.close(),
    );
    await load(nodeA, ["acme"]);
    await load(nodeB, ["acme", "globex"]);
    const { get } = await setup({ guard: nodeB, config });
    const body = (await (await get("/stats.json")).json()) as { stats: GuardStats };
    expect(body.stats.scopes["frontend:web"]!.in_use).toBe(3);
    expect(body.stats.localHolders).toBe(2);
    const families = parseProm(await (await get("/metrics")).text());
    expect(sample(families, "slotgate_in_use", { scope: "frontend:web" })).toBe(3);
    expect(sample(families, "slotgate_local_holders", {})).toBe(2);
  });

  it("answers 503 with the error when the store is down, and still shows this node's numbers", async () => {
    let calls = 0;
    const guard = {
      stats: async (): Promise<GuardStats> => {
        calls++;
        throw new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", "redis: connect ECONNREFUSED <127.0.0.1>", { retryable: true });
      },
    };
    const { get, logs } = await setup({ guard });
    const json = await get("/stats.json");
    expect(json.status).toBe(503);
    const body = (await json.json()) as { stats: null; error: { code: string; message: string }; node: NodeStats; generatedAt: string };
    expect(body.stats).toBeNull();
    expect(body.error.code).toBe("SLOTGATE_STORE_UNAVAILABLE");
    expect(body.error.message).toContain("ECONNREFUSED");
    expect(body.node).toEqual(nodeStats());

    const page = await get("/stats");
    expect(page.status).toBe(503);
    const html = await page.text();
    expect(html).toContain('id="store-error"');
    expect(html).toContain("&lt;127.0.0.1&gt;");
    expect(html).toContain('id="node"');
    expect(html).toContain('data-scope="node"');
    expect(html).toContain('<meta http-equiv="refresh" content="5">');
    expect(html).not.toContain('id="frontend-web"');

    const metrics = await get("/metrics");
    expect(metrics.status).toBe(200);
    const families = parseProm(await metrics.text());
    expect(sample(families, "slotgate_store_up", {})).toBe(0);
    expect(sample(families, "slotgate_node_in_use", {})).toBe(3);
    expect(families.get("slotgate_in_use")!.samples).toEqual([]);
    expect(families.get("slotgate_queue_wait_seconds")!.samples).toEqual([]);

    expect(calls).toBe(3);
    // One warning for the outage, not one per request.
    expect(logs.filter((l) => l.level === "warn")).toHaveLength(1);
  });

  it("shares one guard.stats() call among concurrent requests", async () => {
    const real = createGuard({ ...toGuardOptions(edgeConfig()), store: createMemoryStore() });
    cleanups.push(() => real.close());
    let calls = 0;
    const guard = {
      stats: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 50));
        return real.stats();
      },
    };
    const { get } = await setup({ guard });
    const responses = await Promise.all([get("/stats"), get("/stats.json"), get("/metrics"), get("/stats.json")]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(calls).toBe(1);
  });
});

describe("stats listener: spec versions and state loss", () => {
  /** The cells of a `.kv` row, by the text of its first header, tags stripped. */
  function kvRow(page: string, tableId: string, header: string): { classes: string; cells: string[] } {
    const table = new RegExp(`<table class="kv" id="${tableId}">(.*?)</table>`, "s").exec(page);
    expect(table, `table ${tableId}`).not.toBeNull();
    const row = [...table![1]!.matchAll(/<tr([^>]*)>(.*?)<\/tr>/g)].find((m) => m[2]!.startsWith(`<th>${header}</th>`));
    expect(row, `row ${header} of ${tableId}`).toBeDefined();
    return { classes: row![1]!, cells: [...row![2]!.matchAll(/<(?:th|td)[^>]*>(.*?)<\/(?:th|td)>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, "").trim()) };
  }

  it("shows this node's spec version, that a newer version superseded it, and its unavailable answers", async () => {
    const store = createMemoryStore();
    // The next deploy (version 2) renamed the tcp frontend echo to stream; this node still runs version 1.
    const newerConfig = edgeConfig(undefined, {
      version: 2,
      frontends: { web: { bind: "127.0.0.1:0", maxconn: 10, default_backend: "api" }, stream: { bind: "127.0.0.1:0", mode: "tcp", default_backend: "api" } },
    });
    const newer = createGuard({ ...toGuardOptions(newerConfig), store });
    cleanups.push(() => newer.close());
    expect(await newer.open()).toEqual({ installed: true, storedVersion: 2 });
    const olderConfig = edgeConfig(undefined, { version: 1 });
    const older = createGuard({ ...toGuardOptions(olderConfig), store });
    cleanups.push(() => older.close());
    expect(await older.open()).toEqual({ installed: false, storedVersion: 2 });
    for (let i = 0; i < 2; i++) expect(await older.acquire({ scopes: ["frontend:echo"], backend: "api" })).toMatchObject({ ok: false, reason: "unavailable" });
    const oldNode = await setup({ guard: older, config: olderConfig });
    const newNode = await setup({ guard: newer, config: newerConfig });
    const unversioned = await setup();

    // JSON had these already: the other outputs below must agree with it.
    const json = (await (await oldNode.get("/stats.json")).json()) as { stats: GuardStats };
    expect(json.stats.spec).toEqual({ version: 1, superseded: true, unavailable: 2 });
    expect(json.stats.stateLoss).toBeUndefined();

    const old = parseProm(await (await oldNode.get("/metrics")).text());
    expectTypes(old, { slotgate_spec_version: "gauge", slotgate_spec_superseded: "gauge", slotgate_scope_unavailable_total: "counter" });
    expect(sample(old, "slotgate_spec_version", { group: "shop" })).toBe(1);
    expect(sample(old, "slotgate_spec_superseded", {})).toBe(1);
    expect(sample(old, "slotgate_scope_unavailable_total", {})).toBe(2);
    // The memory store cannot lose its state: no state-loss series (not zeros).
    for (const name of ["slotgate_leases_reregistered_total", "slotgate_leases_lost_total", "slotgate_learning", "slotgate_learning_remaining_seconds"]) {
      expect(old.get(name)?.samples ?? [], name).toEqual([]);
    }
    const now = parseProm(await (await newNode.get("/metrics")).text());
    expect(sample(now, "slotgate_spec_version", {})).toBe(2);
    expect(sample(now, "slotgate_spec_superseded", {})).toBe(0);
    expect(sample(now, "slotgate_scope_unavailable_total", {})).toBe(0);
    const none = parseProm(await (await unversioned.get("/metrics")).text());
    expect(none.get("slotgate_spec_version")?.samples).toEqual([]); // unversioned: absent, not 0
    expect(sample(none, "slotgate_spec_superseded", {})).toBe(0);

    const oldPage = await (await oldNode.get("/stats")).text();
    expect(oldPage).toContain('<section class="panel" id="spec-state">');
    expect(kvRow(oldPage, "spec", "version").cells).toEqual(["version", "1", "unavailable", "2"]);
    const superseded = kvRow(oldPage, "spec", "superseded");
    expect(superseded.classes).toContain('class="warn"');
    expect(superseded.cells[1]).toMatch(/^yes: this node runs an older version/);
    expect(kvRow(oldPage, "state-loss", "re-registered").cells).toEqual(["re-registered", "—", "lost", "—"]);
    expect(kvRow(oldPage, "state-loss", "learning until").cells).toEqual(["learning until", "—"]);
    const newPage = await (await newNode.get("/stats")).text();
    expect(kvRow(newPage, "spec", "version").cells).toEqual(["version", "2", "unavailable", "0"]);
    expect(kvRow(newPage, "spec", "superseded")).toEqual({ classes: ' id="spec-superseded"', cells: ["superseded", "no"] });
    const nonePage = await (await unversioned.get("/stats")).text();
    expect(kvRow(nonePage, "spec", "version").cells).toEqual(["version", "—", "unavailable", "0"]);
  });

  it("counts leases re-registered and lost after the store lost its state (FLUSHALL), and shows the learning window", async () => {
    const TTL_MS = 3_000; // renewals every second; the learning window is one TTL
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const connect = async () => {
      const c = new Redis({ host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: 1 });
      cleanups.push(async () => c.disconnect());
      await c.ping();
      return c;
    };
    const config = edgeConfig();
    const guard = createGuard({
      ...toGuardOptions(config),
      store: createRedisStore({ redis: await connect(), sweepIntervalMs: 100, safetyRecheckMs: 200, commandTimeoutMs: 1_000 }),
    });
    cleanups.push(() => guard.close());
    const { get } = await setup({ guard, config });
    const leases: Lease[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await guard.acquire({ scopes: ["global", "frontend:web"], backend: "api", leaseTtlMs: TTL_MS });
      if (!r.ok) throw new Error(`not granted: ${r.reason}`);
      leases.push(r.lease);
    }
    const before = parseProm(await (await get("/metrics")).text());
    expect(sample(before, "slotgate_leases_reregistered_total", {})).toBe(0);
    expect(sample(before, "slotgate_leases_lost_total", {})).toBe(0);
    expect(sample(before, "slotgate_learning", {})).toBe(0);
    expect(sample(before, "slotgate_learning_remaining_seconds", {})).toBe(0);

    // The state goes, and a fleet member pushes limits where only one of the two leases fits
    // (global 1), in one MULTI so that no renewal slips in between.
    const admin = await connect();
    createRedisStore({ redis: admin }); // registers the scripts on the admin connection
    const smaller = toGuardOptions(edgeConfig(undefined, { global: { maxconn: 1 } }));
    const multi = admin.multi().flushall() as unknown as { slotgateConfigure(...args: string[]): { exec(): Promise<unknown> } };
    await multi.slotgateConfigure(...groupKeys("slotgate:", "shop"), JSON.stringify(buildGroupSpec(smaller.limits, smaller.backends))).exec();
    await waitUntil(
      "one lease re-registered, one lost",
      async () => {
        const loss = (await guard.stats()).stateLoss;
        return loss !== undefined && loss.reregistered + loss.lost >= 2;
      },
      TTL_MS + 2_000,
      20,
    );

    // Within the learning window (one TTL from the first renewal that noticed the loss).
    const during = await get("/metrics");
    const duringPage = await (await get("/stats")).text();
    const m = parseProm(await during.text());
    expectTypes(m, {
      slotgate_leases_reregistered_total: "counter",
      slotgate_leases_lost_total: "counter",
      slotgate_learning: "gauge",
      slotgate_learning_remaining_seconds: "gauge",
    });
    expect(m.get("slotgate_leases_reregistered_total")?.help).toContain("cluster-wide");
    expect(sample(m, "slotgate_leases_reregistered_total", { group: "shop" })).toBe(1);
    expect(sample(m, "slotgate_leases_lost_total", {})).toBe(1);
    expect(sample(m, "slotgate_learning", {})).toBe(1);
    const left = sample(m, "slotgate_learning_remaining_seconds", {})!;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(TTL_MS / 1000);
    expect(kvRow(duringPage, "state-loss", "re-registered").cells).toEqual(["re-registered", "1", "lost", "1"]);
    expect(duringPage).toContain('<td class="warn">1</td>'); // a lost lease is a warning
    const learning = kvRow(duringPage, "state-loss", "learning until");
    expect(learning.classes).toContain('class="warn"');
    expect(learning.cells[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \([\d.]+ m?s left\)$/);

    // After the window: counters stay, learning is over.
    await waitUntil("the learning window ended", async () => (await guard.stats()).stateLoss?.learningUntil === null, TTL_MS + 2_000, 50);
    const after = parseProm(await (await get("/metrics")).text());
    expect(sample(after, "slotgate_leases_reregistered_total", {})).toBe(1);
    expect(sample(after, "slotgate_leases_lost_total", {})).toBe(1);
    expect(sample(after, "slotgate_learning", {})).toBe(0);
    expect(sample(after, "slotgate_learning_remaining_seconds", {})).toBe(0);
    const afterPage = await (await get("/stats")).text();
    expect(kvRow(afterPage, "state-loss", "learning until")).toEqual({ classes: ' id="learning"', cells: ["learning until", "none"] });
    expect(leases.filter((l) => l.signal.aborted)).toHaveLength(1);
    await Promise.all(leases.map((l) => l.release()));
  }, 20_000);
});

describe("stats page: hostile scope names", () => {
  const hostile = [
    "<script>alert(1)</script>",
    `"><img src=x onerror=alert(1)>`,
    "'; --\nnew line\r\ttab",
    "\u202eevil\u202c",
    "</td></tr></table><h1>x</h1>",
    `${"A".repeat(1000)}<b>bold</b>`,
  ];

  const TAGS = [
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "p",
    "span",
    "b",
    "a",
    "div",
    "section",
    "table",
    "caption",
    "small",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "br",
    "footer",
  ];
  const ATTRIBUTES = ["lang", "charset", "http-equiv", "content", "name", "class", "id", "title", "href", "style", "colspan", "rowspan", "data-scope"];

  /** The page is text and well-formed tags the renderer writes, with attributes it writes, nothing else. */
  function assertSafe(page: string): void {
    expect(page).not.toContain("\u202e");
    const body = page.replace(/^<!DOCTYPE html>\n/, "");
    expect(body.replace(/<[^<>]*>/g, "")).not.toMatch(/[<>]/);
    for (const [tag] of body.matchAll(/<[^<>]*>/g)) {
      const m = /^<\/?([a-z0-9]+)((?:\s+[a-z-]+="[^"<>]*")*)\s*>$/.exec(tag);
      expect(m, `malformed or unexpected tag: ${tag.slice(0, 200)}`).not.toBeNull();
      expect(TAGS, `unexpected <${m![1]}>`).toContain(m![1]);
      for (const [, attr] of m![2]!.matchAll(/([a-z-]+)="/g)) expect(ATTRIBUTES, `unexpected attribute ${attr} in ${tag.slice(0, 200)}`).toContain(attr);
    }
  }

  it("escapes key values held in a real guard, over HTTP (stats.show_keys: true)", async () => {
    const { guard, get } = await setup({ config: edgeConfig({ bind: "127.0.0.1:0", show_keys: true }) });
    const g = guard as Guard;
    for (const key of hostile) {
      const r = await g.acquire({ scopes: ["frontend:web", `frontend:web:apikey:${key}`], backend: "api" });
      expect(r.ok).toBe(true);
    }
    const page = await (await get("/stats")).text();
    assertSafe(page);
    expect(page).toContain('<span class="key">&lt;script&gt;alert(1)&lt;/script&gt;</span>');
    expect(page).toContain("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
    expect(page).toContain("&#39;; --\\nnew line\\r\\ttab");
    expect(page).toContain("\\u202eevil\\u202c");
    // The 1 kB name: cut at 120 characters, whole in the title attribute.
    const long = /<span class="key" title="(A{1000}&lt;b&gt;bold&lt;\/b&gt;)">(A+)…<\/span>/.exec(page);
    expect(long).not.toBeNull();
    expect(long![2]!.length).toBe(120);

    const json = (await (await get("/stats.json")).json()) as { stats: GuardStats };
    for (const key of hostile) expect(json.stats.scopes[`frontend:web:apikey:${key}`]).toBeDefined();
  });

  it("escapes everything the renderer prints, including undeclared scopes and error messages", () => {
    const config = edgeConfig();
    const scopes: Record<string, ReturnType<typeof scopeStats>> = {};
    for (const key of hostile) {
      scopes[`frontend:web:apikey:${key}`] = scopeStats({ in_use: 1, max: 2 });
      scopes[`other:${key}`] = scopeStats({ in_use: 1, max: 2 });
    }
    const page = renderStatsPage({
      config,
      node: { ...nodeStats(), frontends: { [hostile[0]!]: { active: 1, queued: 0, requests: 1, rejected: { [hostile[1]!]: 1 } } } },
      stats: fakeStats(scopes),
      generatedAt: new Date(0),
      refreshSeconds: 5,
      linkQuery: 'token="><script>',
    });
    assertSafe(page);
    expect(page).toContain('id="other"');
    const failed = renderStatsPage({
      config,
      node: nodeStats(),
      stats: null,
      error: { code: "SLOTGATE_STORE_UNAVAILABLE", message: hostile.join(" ") },
      generatedAt: new Date(0),
      refreshSeconds: null,
    });
    assertSafe(failed);
  });

  it("lists at most 20 keys per keyed limit, the busiest first", () => {
    const scopes: Record<string, ReturnType<typeof scopeStats>> = { "frontend:web:apikey": scopeStats({ in_use: 30, max: 2, keys: 25 }) };
    for (let i = 0; i < 25; i++) scopes[`frontend:web:apikey:k${i}`] = scopeStats({ in_use: i === 17 ? 2 : 1, max: 2 });
    const page = renderStatsPage({ config: edgeConfig(), node: nodeStats(), stats: fakeStats(scopes), generatedAt: new Date(0), refreshSeconds: 5 });
    const keys = [...page.matchAll(/data-scope="frontend:web:apikey:(k\d+)"/g)].map((m) => m[1]);
    expect(keys).toHaveLength(20);
    expect(keys[0]).toBe("k17");
    expect(page).toContain("… 5 more keys (see /stats.json)");
  });
});

// ---------------------------------------------------------------------------------------------

function scopeStats(over: Partial<GuardStats["scopes"][string]>): GuardStats["scopes"][string] {
  return {
    in_use: 0,
    max: null,
    maxqueue: null,
    queued: 0,
    peak_in_use: over.in_use ?? 0,
    peak_queued: 0,
    granted: 0,
    rejected_full: 0,
    rejected_queue_full: 0,
    queue_timeouts: 0,
    aborted: 0,
    expired: 0,
    released: 0,
    ...over,
  };
}

function fakeStats(scopes: GuardStats["scopes"]): GuardStats {
  return {
    group: "shop",
    store: "memory",
    now: 0,
    fence: 0,
    scopes,
    queueWait: { bounds: [0, 1], counts: [0, 0, 0], count: 0, sumMs: 0 },
    holders: 0,
    tickets: 0,
    queueWaitQuantiles: { p50: 0, p90: 0, p99: 0 },
    fallback: { fail_closed: 0, fail_open: 0, local: 0, store_errors: 0 },
    localHolders: 0,
    spec: { version: null, superseded: false, unavailable: 0 },
  };
}
