// Attack: hostile paths against path_reg priority rules. A backtracking regex engine takes
// polynomial time on `^/api/.*/.*/.*/.*/x$` and exponential time on `^/(a+)+$` or `(x+x+)+y`
// when a long path almost matches; the edge node's event loop then freezes, and with it every
// other request and every lease renewal. The node runs here as users run it (`slotgate serve`, its
// own process), so a frozen node shows as a slow answer instead of a frozen test.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { ROOT, ensureBuilt } from "../support/fleet.js";
import { collectJsonLines } from "../support/json-lines.js";
import { startOrigin, type Origin } from "../support/origin.js";
import { send, until, type Answer } from "./edge.js";

const PATH_LENGTH = 4096;
const POLYNOMIAL = "^/api/.*/.*/.*/.*/x$";
const EXPONENTIAL_GROUP = "^/(a+)+$";
const EXPONENTIAL_PAIR = "(x+x+)+y";

/** Paths of 4 KiB that almost match: the worst case for a backtracking engine. */
const NEAR_MISS = {
  polynomial: `/api/${"/".repeat(PATH_LENGTH - 5)}`,
  group: `/${"a".repeat(PATH_LENGTH - 2)}!`,
  pair: `/${"x".repeat(PATH_LENGTH - 1)}`,
};
/** Paths of 4 KiB that do match. */
const MATCH = {
  polynomial: `/api/${"/".repeat(PATH_LENGTH - 6)}x`,
  group: `/${"a".repeat(PATH_LENGTH - 1)}`,
  pair: `/${"x".repeat(PATH_LENGTH - 2)}y`,
};

let dir = "";
let bin = "";
beforeAll(async () => {
  // The built package (a private build when dist/ is stale, so no other suite's dist/ is rebuilt under it).
  bin = await ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), "slotgate-attack-"));
}, 180_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const children = new Set<ChildProcess>();
const origins: Origin[] = [];
afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
  await Promise.all(origins.splice(0).map((o) => o.close()));
});

interface Served {
  url: string;
  stats: string;
}

/** `slotgate serve` with the three hostile patterns as priority rules, in front of `origin`. */
async function serve(origin: Origin, serverMaxconn: number): Promise<Served> {
  const file = join(dir, `edge-${serverMaxconn}.yaml`);
  const config = {
    group: "attack",
    frontends: {
      web: {
        bind: "127.0.0.1:0",
        default_backend: "app",
        priority: [
          { if: { path_reg: POLYNOMIAL }, class: 1 },
          { if: { path_reg: EXPONENTIAL_GROUP }, class: 2 },
          { if: { path_reg: EXPONENTIAL_PAIR }, class: 3 },
          { class: 9 },
        ],
      },
    },
    backends: { app: { timeout: { queue: "10s", connect: "1s", server: "10s" }, servers: { a: { address: origin.address, maxconn: serverMaxconn } } } },
    stats: { bind: "127.0.0.1:0" },
  };
  await writeFile(file, toYaml(config));
  const child = spawn(process.execPath, [bin, "serve", "-c", file, "--log-level", "info"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const lines = collectJsonLines(child.stdout!);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  await until(() => {
    if (child.exitCode !== null) throw new Error(`slotgate serve exited (${child.exitCode}): ${stderr}`);
    return lines.some((l) => l.msg === "edge node started");
  }, 10_000);
  const address = (msg: string) => `http://${String(lines.find((l) => l.msg === msg)!.address)}`;
  return { url: address("frontend listening"), stats: address("stats listening") };
}

async function queued(s: Served, scope: string): Promise<number> {
  const body = JSON.parse((await send(s.stats, "/stats.json")).body) as { stats: { scopes: Record<string, { queued: number }> } };
  return body.stats.scopes[scope]?.queued ?? 0;
}

describe("attack: path_reg on 4 KiB paths", () => {
  it("keeps answering a concurrent plain request within 100 ms", async () => {
    const origin = await startOrigin();
    origins.push(origin);
    const s = await serve(origin, 1000);
    await send(s.url, "/warm-up");

    const hostile: Array<Promise<Answer>> = [];
    const plain: Answer[] = [];
    // Three waves, each sent while plain requests are measured one after the other.
    for (let wave = 0; wave < 3; wave++) {
      for (const path of [...Object.values(NEAR_MISS), ...Object.values(MATCH)]) {
        const answer = send(s.url, path, {}, 5_000);
        answer.catch(() => undefined); // awaited below; a failing plain request must not leave it unhandled
        hostile.push(answer);
      }
      for (let i = 0; i < 5; i++) plain.push(await send(s.url, `/plain/${wave}/${i}`, {}, 2_000));
    }
    const answers = await Promise.all(hostile);
    expect(answers.map((a) => a.status)).toEqual(new Array(answers.length).fill(200));
    expect(plain.map((a) => a.status)).toEqual(new Array(plain.length).fill(200));
    const slowest = Math.max(...plain.map((a) => a.ms));
    expect(slowest, `slowest plain answer: ${slowest.toFixed(1)} ms`).toBeLessThan(100);
    // The hostile paths themselves were answered as fast: no request paid for the regex either.
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(1_000);
  }, 30_000);

  it("still matches: 4 KiB paths get the class of the rule they match", async () => {
    const origin = await startOrigin();
    origins.push(origin);
    const s = await serve(origin, 1);
    // One request holds the only server slot; the rest queue, then leave in priority order.
    const hold = send(s.url, "/hold?delay=300");
    await until(() => origin.current === 1);
    const order = [NEAR_MISS.pair, NEAR_MISS.group, NEAR_MISS.polynomial, MATCH.pair, MATCH.group, MATCH.polynomial];
    const pending: Array<Promise<Answer>> = [];
    for (const [i, path] of order.entries()) {
      pending.push(send(s.url, path));
      await until(async () => (await queued(s, "backend:app")) === i + 1);
    }
    const answers = await Promise.all([hold, ...pending]);
    expect(answers.map((a) => a.status)).toEqual(new Array(answers.length).fill(200));
    const served = origin.requests.slice(1).map((r) => r.url);
    // Class 1, 2 and 3 by their rule; the near misses fall through to class 9, in arrival order.
    expect(served).toEqual([MATCH.polynomial, MATCH.group, MATCH.pair, NEAR_MISS.pair, NEAR_MISS.group, NEAR_MISS.polynomial]);
  }, 30_000);
});
