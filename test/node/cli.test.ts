// The `slotgate` command as a user runs it: `node bin/slotgate.js …` in a child process, against
// the built package (dist/, rebuilt here when a source file is newer than it).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { closedPort, startOrigin, type Origin } from "../support/origin.js";
import { collectJsonLines } from "../support/json-lines.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(ROOT, "bin", "slotgate.js");
const CLI = join(ROOT, "dist", "node", "cli.js");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

beforeAll(() => {
  if (!existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(join(ROOT, "src"))) {
    // tsc emits even when another part of the tree does not type-check; only dist matters here.
    spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "ignore" });
  }
  if (!existsSync(CLI)) throw new Error("dist/node/cli.js is missing after the build");
}, 120_000);

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "slotgate-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
function run(args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Server {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Starts a long-running command (serve, demo --no-load) and parses its JSON log lines. */
function start(args: readonly string[]): Server {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const lines = collectJsonLines(child.stdout!);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async waitFor(msg, timeoutMs = 10_000) {
      const t0 = Date.now();
      for (;;) {
        const found = lines.find((l) => l.msg === msg);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before "${msg}": ${stderr}`);
        if (Date.now() - t0 > timeoutMs) throw new Error(`no "${msg}" within ${timeoutMs}ms`);
        await sleep(10);
      }
    },
  };
}

async function writeConfig(name: string, config: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, toYaml(config));
  return file;
}

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
          priority: [{ if: { path_reg: "^/api/(?=v1)" }, class: 1 }, { if: { path_reg: "^/(\\w+)/\\1$" }, class: 2 }, { if: { path_reg: "^/x++" }, class: 3 }],
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
    const bad = await writeConfig("bad.yaml", { frontends: {} , backends: 3 });
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

  it("prints the fleet's numbers from the store while a node serves", async () => {
    redis = await startRedis();
    const o = await origin();
    const port = await closedPort();
    const file = await writeConfig("redis-serve.yaml", {
      store: { type: "redis", url: redis.url },
      group: "cli-redis",
      frontends: { web: { bind: `127.0.0.1:${port}`, default_backend: "app" } },
      backends: { app: { timeout: { queue: "8s" }, servers: { a: { address: o.address, maxconn: 1 } } } },
    });
    const server = start(["serve", "-c", file, "--grace", "2s"]);
    await server.waitFor("edge node started");
    // The first request holds the only slot for 3 s; the two others queue behind it.
    const replies = [get(`http://127.0.0.1:${port}/1?delay=3000`)];
    const t0 = Date.now();
    while (o.current === 0) {
      if (Date.now() - t0 > 5000) throw new Error("no request reached the origin");
      await sleep(5);
    }
    replies.push(get(`http://127.0.0.1:${port}/2`), get(`http://127.0.0.1:${port}/3`));
    await sleep(100);
    const stats = await run(["stats", "-c", file]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain("group cli-redis · store redis");
    expect(stats.stdout).toMatch(/server:app\/a\s+1\/1/);
    expect(stats.stdout).toMatch(/backend:app\s+1\/-\s+2\s/);
    const json = await run(["stats", "-c", file, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ stats: { group: "cli-redis", scopes: { "server:app/a": { max: 1 } } } });
    expect((await Promise.all(replies)).map((r) => r.status)).toEqual([200, 200, 200]);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
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
