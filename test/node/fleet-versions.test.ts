// Spec versions (SPEC §2 rule 13) end to end, over real processes: `slotgate serve` child
// processes of different config versions on one redis-server, in front of an origin that records
// its own concurrency. What is asserted is what the origin sees and what clients get:
// - `slotgate stats -c OTHER_FILE` (other limits, a renamed frontend) changes nothing;
// - a node with the same version and other limits does not start, and says what differs;
// - a node with a higher version switches the fleet: a running old node enforces the new limit;
// - a node with a lower version runs under the fleet's spec; its frontend that the newer spec
//   renamed answers deny_status with `x-slotgate-reason: unavailable`, never a 500, logged once.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { ROOT, ensureBuilt, httpRequest, startFleetNode, until, writeYaml, type FleetNode } from "../support/fleet.js";
import { startOrigin, type Origin } from "../support/origin.js";

const DELAY_MS = 300;

let dir = "";
let bin = "";
let redis: RedisProcess | undefined;
let origin: Origin;
const nodes: FleetNode[] = [];

/** A fleet file: frontend `web` and a second frontend (`old`, renamed `new` in version 2), one server of `maxconn`. */
function fleetConfig(version: number | undefined, maxconn: number, second: "old" | "new") {
  return {
    store: { type: "redis", url: redis!.url },
    group: "versions",
    ...(version === undefined ? {} : { version }),
    frontends: {
      web: { bind: "127.0.0.1:0", default_backend: "app" },
      [second]: { bind: "127.0.0.1:0", default_backend: "app", deny_status: 429 },
    },
    backends: { app: { timeout: { queue: "10s" }, servers: { a: { address: origin.address, maxconn } } } },
    stats: { bind: "127.0.0.1:0" },
  };
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `n` concurrent slow requests through one frontend; the statuses, and the origin's highest concurrency meanwhile. */
async function burst(node: FleetNode, frontend: string, n: number): Promise<{ statuses: number[]; originMax: number }> {
  origin.resetCounters();
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => httpRequest(`${node.url(frontend)}/r${i}?delay=${DELAY_MS}`)));
  return { statuses: replies.map((r) => r.status), originMax: origin.max };
}

async function start(name: string, file: string): Promise<FleetNode> {
  const node = await startFleetNode(file, { name, bin });
  nodes.push(node);
  return node;
}

beforeAll(async () => {
  bin = await ensureBuilt();
}, 180_000);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "slotgate-versions-"));
  [redis, origin] = await Promise.all([startRedis(), startOrigin({ delayMs: DELAY_MS })]);
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await origin?.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("spec versions across a fleet of slotgate serve processes on one redis-server", () => {
  let a: FleetNode;

  it("version 1: the fleet's limit holds at the origin", async () => {
    a = await start("a-v1", await writeYaml(dir, "v1.yaml", fleetConfig(1, 1, "old")));
    const r = await burst(a, "web", 4);
    expect(r.statuses).toEqual([200, 200, 200, 200]);
    expect(r.originMax).toBe(1);
  });

  it("slotgate stats -c OTHER_FILE (other limits, other names, higher version) changes nothing", async () => {
    const other = await writeYaml(dir, "other.yaml", {
      ...fleetConfig(9, 5, "new"),
      frontends: { renamed: { bind: "127.0.0.1:0", default_backend: "app" } },
    });
    const stats = await runCli(["stats", "-c", other]);
    expect(stats.code, stats.stderr).toBe(0);
    // The numbers are the fleet's, under the fleet's spec (the table lists OTHER_FILE's frontend, without numbers).
    expect(stats.stdout).toMatch(/server:app\/a\s+0\/1/);
    const json = await runCli(["stats", "-c", other, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const scopes = (JSON.parse(json.stdout) as { stats: { scopes: Record<string, { max: number | null }> } }).stats.scopes;
    expect(scopes["server:app/a"]).toMatchObject({ max: 1 });
    expect(scopes["frontend:renamed"]).toBeUndefined();
    const r = await burst(a, "web", 4);
    expect(r.statuses).toEqual([200, 200, 200, 200]);
    expect(r.originMax).toBe(1);
    expect((await httpRequest(`${a.url("old")}/still-there`)).status).toBe(200);
  });

  it("the same version with other limits does not start, names what differs, and changes nothing", async () => {
    const file = await writeYaml(dir, "v1-other.yaml", fleetConfig(1, 2, "old"));
    await expect(startFleetNode(file, { name: "b-v1-conflict", bin })).rejects.toThrow(
      /exited \(3\) before it started: .*server:app\/a max 1 \(stored\) vs 2 \(this node\)/,
    );
    const r = await burst(a, "web", 4);
    expect(r.statuses).toEqual([200, 200, 200, 200]);
    expect(r.originMax).toBe(1);
  });

  it("a higher version switches the fleet: the running version-1 node enforces the new limit; its renamed frontend answers unavailable", async () => {
    const c = await start("c-v2", await writeYaml(dir, "v2.yaml", fleetConfig(2, 2, "new")));
    const viaOld = await burst(a, "web", 4);
    expect(viaOld.statuses).toEqual([200, 200, 200, 200]);
    expect(viaOld.originMax).toBe(2);
    expect((await burst(c, "new", 2)).statuses).toEqual([200, 200]);
    // `old` was renamed `new` by version 2: node a answers its deny_status, never a 500.
    const renamed = await Promise.all([1, 2, 3].map((i) => httpRequest(`${a.url("old")}/x${i}`)));
    expect(renamed.map((r) => r.status)).toEqual([429, 429, 429]);
    expect(renamed.map((r) => r.headers["x-slotgate-reason"])).toEqual(["unavailable", "unavailable", "unavailable"]);
    // The node's log line travels through its stdout pipe: it may trail the responses.
    await until(() => a.lines.some((l) => l.event === "scope-unavailable"), 5_000, 10, "the scope-unavailable log line");
    expect(a.lines.filter((l) => l.event === "scope-unavailable" && l.scope === "frontend:old")).toHaveLength(1);
  });

  it("a lower version starts and runs under the fleet's spec; what version 2 renamed answers unavailable, logged once", async () => {
    const d = await start("d-v1-late", await writeYaml(dir, "v1-late.yaml", fleetConfig(1, 1, "old")));
    expect(d.lines.find((l) => typeof l.msg === "string" && l.msg.startsWith("the fleet runs spec version 2"))).toMatchObject({
      level: "warn",
      storedVersion: 2,
      version: 1,
    });
    const r = await burst(d, "web", 4);
    expect(r.statuses).toEqual([200, 200, 200, 200]);
    expect(r.originMax).toBe(2);
    const renamed = await Promise.all([1, 2, 3].map((i) => httpRequest(`${d.url("old")}/y${i}`)));
    expect(renamed.map((x) => [x.status, x.headers["x-slotgate-reason"]])).toEqual([
      [429, "unavailable"],
      [429, "unavailable"],
      [429, "unavailable"],
    ]);
    await until(() => d.lines.some((l) => l.event === "scope-unavailable"), 5_000, 10, "the scope-unavailable log line");
    expect(d.lines.filter((l) => l.event === "scope-unavailable")).toHaveLength(1);
    const spec = (await d.statsJson()).stats.spec;
    expect(spec).toMatchObject({ version: 1, superseded: true, unavailable: 3 });
  });
});
