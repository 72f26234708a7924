// The `slotgate` command as a user runs it: `node bin/slotgate.js …` in a child process, against
// the built package (dist/, rebuilt here when a source file is newer than it).

import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { createGuard, createMemoryStore, type GuardStats } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { formatStatsTable } from "../../src/node/stats-table.js";
import { sendCommand, startRedis, type RedisProcess } from "../harness/redis.js";
import { run, start, useCliTests } from "../support/cli.js";
import { closedPort, startOrigin, type Origin } from "../support/origin.js";

const { writeConfig, cleanups } = useCliTests();

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.once("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .once("error", reject);
  });
}

async function origin(delayMs = 0): Promise<Origin> {
  const o = await startOrigin({ delayMs });
  cleanups.push(() => o.close());
  return o;
}

describe("slotgate check", () => {
  it("accepts examples/demo.yaml and examples/edge.yaml with a summary", async () => {
    const demo = await run(["check", "-c", "examples/demo.yaml"]);
    expect(demo.code).toBe(0);
    expect(demo.stdout).toMatch(/^ok: examples\/demo\.yaml\n/);
    expect(demo.stdout).toContain("frontend web: http on 127.0.0.1:8080");
    const edge = await run(["check", "--config=examples/edge.yaml"]);
    expect(edge.code).toBe(0);
    expect(edge.stdout).toContain("frontend echo: tcp on 127.0.0.1:8000");
  });

  it("warns (exit 0) when a shared store is used without a version", async () => {
    const base = {
      frontends: { web: { bind: "127.0.0.1:8080", default_backend: "app" } },
      backends: { app: { servers: { a: { address: "127.0.0.1:9001" } } } },
    };
    for (const store of [
      { type: "redis", url: "redis://127.0.0.1:6379" },
      { type: "redis-cluster", urls: ["redis://127.0.0.1:7000"] },
      { type: "durable-object", url: "https://slots.example.com", token: "a-slot-api-token-0123456789" },
    ]) {
      const unversioned = await run(["check", "-c", await writeConfig(`unversioned-${store.type}.yaml`, { ...base, store })]);
      expect(unversioned.code).toBe(0);
      expect(unversioned.stdout).toMatch(/^ok: /);
      expect(unversioned.stderr).toMatch(new RegExp(`^warning: .*store ${store.type} is shared by the fleet, and the config has no version`));
      const versioned = await run(["check", "-c", await writeConfig(`versioned-${store.type}.yaml`, { ...base, store, version: 3 })]);
      expect(versioned.code).toBe(0);
      expect(versioned.stderr).toBe("");
      expect(versioned.stdout).toContain("version 3 · store");
    }
    const memory = await run(["check", "-c", await writeConfig("memory.yaml", base)]);
    expect(memory.code).toBe(0);
    expect(memory.stderr).toBe("");
  });

  it("prints every problem with its path and exits 1", async () => {
    const file = await writeConfig("broken.yaml", {
      frontends: { web: { bind: "127.0.0.1:8080", default_backend: "web_servers", deny_status: 404 } },
      backends: { web_servers: { servers: { web1: { address: "127.0.0.1:9001", maxconn: -1 } } } },
    });
    const r = await run(["check", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("backends.web_servers.servers.web1.maxconn: expected a positive integer, got -1");
    expect(r.stderr).toContain("frontends.web.deny_status:");
    expect(r.stdout).toBe("");
  });

  it("names the regex construct RE2 refuses, with its path", async () => {
    const file = await writeConfig("regex.yaml", {
      frontends: {
        web: {
          bind: "127.0.0.1:8080",
          default_backend: "b",
          priority: [
            { if: { path_reg: "^/api/(?=v1)" }, class: 1 },
            { if: { path_reg: "^/(\\w+)/\\1$" }, class: 2 },
            { if: { path_reg: "^/x++" }, class: 3 },
          ],
        },
      },
      backends: { b: { servers: { s: { address: "127.0.0.1:9001" } } } },
    });
    const r = await run(["check", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('frontends.web.priority[0].if.path_reg: RE2 does not support lookahead (?=…), got "^/api/(?=v1)"');
    expect(r.stderr).toContain("frontends.web.priority[1].if.path_reg: RE2 does not support backreferences \\1");
    expect(r.stderr).toContain("frontends.web.priority[2].if.path_reg: RE2 does not support possessive quantifiers");
  });

  it("never prints a store password", async () => {
    const file = await writeConfig("redis.yaml", {
      store: { type: "redis", url: "redis://user:hunter2-secret@127.0.0.1:6379" },
      frontends: { web: { bind: "127.0.0.1:8080", default_backend: "b" } },
      backends: { b: { servers: { s: { address: "127.0.0.1:9001" } } } },
    });
    const r = await run(["check", "-c", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("redis://user:***@127.0.0.1:6379");
    expect(r.stdout).not.toContain("hunter2");
  });

  it("reports usage errors with exit 2, and help with exit 0", async () => {
    expect((await run(["check"])).code).toBe(2);
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["serve", "-c", "x.yaml", "--bogus"])).code).toBe(2);
    const help = await run(["serve", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: slotgate serve -c FILE");
    expect((await run(["--help"])).stdout).toContain("Exit codes:");
  });
});

describe("slotgate serve", () => {
  it("proxies, then on SIGTERM refuses new connections, completes the in-flight request and exits 0", async () => {
    const o = await origin();
    const port = await closedPort();
    const statsPort = await closedPort();
    const file = await writeConfig("serve.yaml", {
      group: "cli",
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "app" } },
      backends: { app: { servers: { a: { address: o.address, maxconn: 2 } } } },
      stats: { bind: `127.0.0.1:${statsPort}` },
    });
    const server = start(["serve", "-c", file, "--grace", "5s"]);
    await server.waitFor("edge node started");
    expect((await get(`http://127.0.0.1:${port}/hello`)).status).toBe(200);

    // `slotgate stats` on a memory-store node asks its stats listener.
    const stats = await run(["stats", "-c", file]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/server:app\/a\s+0\/2/);
    expect(stats.stdout).toContain("web: active 0 · queued 0 · requests 1");

    const inflight = get(`http://127.0.0.1:${port}/slow?delay=700`);
    const t0 = Date.now();
    while (o.current === 0) {
      if (Date.now() - t0 > 5000) throw new Error("the slow request never reached the origin");
      await sleep(5);
    }
    server.child.kill("SIGTERM");
    await server.waitFor("stopping: no new connections, draining");
    await expect(get(`http://127.0.0.1:${port}/late`)).rejects.toThrow();
    expect(await inflight).toMatchObject({ status: 200 });
    expect(await server.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(server.lines.find((l) => l.msg === "edge node stopped")).toMatchObject({ drained: true });
  });

  it("exits 3 when the address is taken, and 1 on an invalid config", async () => {
    const o = await origin();
    const taken = http.createServer();
    await new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0 }, () => resolve()));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const port = (taken.address() as { port: number }).port;
    const file = await writeConfig("taken.yaml", {
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "app" } },
      backends: { app: { servers: { a: { address: o.address } } } },
    });
    const r = await run(["serve", "-c", file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("EADDRINUSE");
    const bad = await writeConfig("bad.yaml", { frontends: {}, backends: 3 });
    expect((await run(["serve", "-c", bad])).code).toBe(1);
  });

  it("serves on the durable-object store and fails closed while its slot API is unreachable, never printing the token", async () => {
    const o = await origin();
    const port = await closedPort();
    const apiPort = await closedPort();
    const file = await writeConfig("do.yaml", {
      store: { type: "durable-object", url: `http://127.0.0.1:${apiPort}`, token: "0123456789abcdef0123" },
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "b" } },
      backends: { b: { servers: { s: { address: o.address } } } },
    });
    const server = start(["serve", "-c", file, "--grace", "1s"]);
    await server.waitFor("edge node started");
    const r = await get(`http://127.0.0.1:${port}/x`);
    expect(r.status).toBe(503);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(JSON.stringify(server.lines) + server.stderr()).not.toContain("0123456789abcdef0123");
  });
});

describe("slotgate stats on Redis", () => {
  let redis: RedisProcess | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  /** A node serving FILE (a Redis store, one server of maxconn 1), with a request holding that slot for 3 s. */
  async function serveHolding(name: string, group: string, top: Record<string, unknown>, backend: Record<string, unknown>) {
    redis ??= await startRedis();
    const o = await origin();
    const port = await closedPort();
    const file = await writeConfig(name, {
      store: { type: "redis", url: redis.url },
      group,
      ...top,
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "app" } },
      backends: { app: { ...backend, servers: { a: { address: o.address, maxconn: 1 } } } },
    });
    const server = start(["serve", "-c", file, "--grace", "2s"]);
    await server.waitFor("edge node started");
    const replies = [get(`http://127.0.0.1:${port}/1?delay=3000`)];
    const t0 = Date.now();
    while (o.current === 0) {
      if (Date.now() - t0 > 5000) throw new Error("no request reached the origin");
      await sleep(5);
    }
    return { file, port, server, replies };
  }

  it("prints the fleet's numbers from the store while a node serves", async () => {
    const { file, port, server, replies } = await serveHolding("redis-serve.yaml", "cli-redis", {}, { timeout: { queue: "8s" } });
    // The first request holds the only slot for 3 s; the two others queue behind it.
    replies.push(get(`http://127.0.0.1:${port}/2`), get(`http://127.0.0.1:${port}/3`));
    await sleep(100);
    const stats = await run(["stats", "-c", file]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain("group cli-redis · store redis");
    expect(stats.stdout).toMatch(/server:app\/a\s+1\/1/);
    expect(stats.stdout).toMatch(/backend:app\s+1\/-\s+2\s/);
    expect(stats.stdout).toContain("\nstate loss (cluster-wide): re-registered 0 · lost 0 · learning until none\n");
    // Read straight from the store: no node's spec to show.
    expect(stats.stdout).not.toContain("spec (this node)");
    const json = await run(["stats", "-c", file, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ stats: { group: "cli-redis", scopes: { "server:app/a": { max: 1 } } } });
    expect((await Promise.all(replies)).map((r) => r.status)).toEqual([200, 200, 200]);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  });

  it("prints the leases re-registered after the store lost its state (FLUSHALL), read from the store", async () => {
    // The held request's lease is renewed every third of a second.
    const { file, server, replies } = await serveHolding("redis-loss.yaml", "cli-loss", { version: 2 }, { lease_ttl: "1s" });
    await sendCommand(redis!.port, ["FLUSHALL"]);
    await server.waitFor("lease re-registered after the store lost its state", 5_000);
    const stats = await run(["stats", "-c", file]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(
      /\nstate loss \(cluster-wide\): re-registered 1 · lost 0 · learning until (none|\d{4}-\d\d-\d\dT[\d:.]+Z \([\d.]+m?s left\))\n/,
    );
    // --json carried stateLoss already; kept here so that table and JSON stay the same numbers.
    const json = JSON.parse((await run(["stats", "-c", file, "--json"])).stdout) as { stats: GuardStats };
    expect(json.stats.stateLoss).toMatchObject({ reregistered: 1, lost: 0 });
    expect((await Promise.all(replies)).map((r) => r.status)).toEqual([200]);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  });
});

describe("slotgate stats: spec versions", () => {
  it("prints the serving node's spec version through its stats listener (memory store), state loss as —", async () => {
    const o = await origin();
    const port = await closedPort();
    let statsPort = await closedPort();
    for (let i = 0; i < 5 && statsPort === port; i++) statsPort = await closedPort();
    const file = await writeConfig("memory-version.yaml", {
      version: 7,
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "app" } },
      backends: { app: { servers: { a: { address: o.address } } } },
      stats: { bind: `127.0.0.1:${statsPort}` },
    });
    const server = start(["serve", "-c", file, "--grace", "1s"]);
    await server.waitFor("edge node started");
    const stats = await run(["stats", "-c", file]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain("\nspec (this node): version 7 · unavailable 0 · superseded no\n");
    expect(stats.stdout).toContain("\nstate loss (cluster-wide): re-registered — · lost — · learning until —\n");
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  });

  it("formats a superseded node's spec, and a snapshot without spec or state loss (an older node's JSON), without crashing", async () => {
    const config = validateEdgeConfig({
      version: 1,
      frontends: { web: { bind: "127.0.0.1:8080", default_backend: "app" }, old: { bind: "127.0.0.1:8081", default_backend: "app" } },
      backends: { app: { servers: { a: { address: "127.0.0.1:9001" } } } },
    });
    const store = createMemoryStore();
    const { limits, backends } = toGuardOptions(config);
    const newer = createGuard({ store, version: 2, limits: { "frontend:web": limits!["frontend:web"]! }, backends });
    const older = createGuard({ ...toGuardOptions(config), store });
    try {
      await newer.open();
      await older.open();
      expect(await older.acquire({ scopes: ["frontend:old"], backend: "app" })).toMatchObject({ ok: false, reason: "unavailable" });
      const node = { nodeMaxconn: null, nodeInUse: 0, frontends: {} };
      const table = formatStatsTable(await older.stats(), config, node);
      expect(table).toContain(
        "\nspec (this node): version 1 · unavailable 1 · superseded yes (this node runs an older version; the store decides its requests under a newer spec)\n",
      );
      const bare = { ...(await older.stats()) } as Partial<GuardStats>;
      delete bare.spec;
      delete bare.stateLoss;
      const old = formatStatsTable(bare as GuardStats, config, node);
      expect(old).not.toContain("spec (this node)");
      expect(old).toContain("\nstate loss (cluster-wide): re-registered — · lost — · learning until —\n");
    } finally {
      await older.close();
      await newer.close();
    }
  });
});

describe("slotgate demo", () => {
  it("runs the built-in origins and load, and prints what happened", async () => {
    const r = await run(["demo", "--port", "0", "--stats-port", "0", "--duration", "1s", "--clients", "20"], 15_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("/checkout/ (class 1)");
    expect(r.stdout).toContain("/browse/ (class 2)");
    expect(r.stdout).toMatch(/origin app1: max concurrency [12] \(maxconn 2\)/);
    expect(r.stdout).toContain("✓ no origin ever saw more than its maxconn");
  });

  it("keeps serving with --no-load until SIGINT", async () => {
    const demo = start(["demo", "--no-load", "--port", "0", "--stats-port", "0"]);
    const t0 = Date.now();
    while (!demo.lines.some((l) => typeof l.text === "string" && l.text.startsWith("stop: Ctrl-C"))) {
      if (demo.child.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`demo did not start: ${demo.stderr()}`);
      await sleep(10);
    }
    const edge = demo.lines.map((l) => (typeof l.text === "string" ? /edge node\s+(http:\/\/\S+?)\/\s/.exec(l.text)?.[1] : undefined)).find(Boolean);
    const stats = demo.lines.map((l) => (typeof l.text === "string" ? /stats\s+(http:\/\/\S+)/.exec(l.text)?.[1] : undefined)).find(Boolean);
    expect(edge).toBeDefined();
    const r = await get(`${edge!}/checkout/cart`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ path: "/checkout/cart" });
    expect((await get(stats!)).status).toBe(200);
    demo.child.kill("SIGINT");
    expect(await demo.exited).toBe(0);
  });
});
