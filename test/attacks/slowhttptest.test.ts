// slowhttptest (the real tool, Debian package `slowhttptest`) against a frontend with maxconn 50:
// slow bodies (-B, "R-U-Dead-Yet") and slow heads (-H, slowloris) from hundreds of connections,
// while a legitimate client keeps sending requests. Asserted: the legitimate requests keep being
// served, the attack's connections hold no slot beyond timeout.http_request, nothing leaks.

import { spawn, spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { expectAllFree, origin, request, startNode, type Started } from "../support/edge.js";

const ATTACK_SECONDS = 6;

function requireSlowhttptest(): void {
  const probe = spawnSync("slowhttptest", ["-h"], { encoding: "utf8" });
  if (probe.error) throw new Error("slowhttptest is not installed (Debian: apt-get install -y slowhttptest); .ci/run installs it");
}

/** Runs slowhttptest for ATTACK_SECONDS; resolves with its exit code. */
function attack(mode: "-B" | "-H", url: string): Promise<number | null> {
  const args = [mode, "-c", "300", "-r", "150", "-i", "1", "-x", "8", "-s", "8192", "-p", "2", "-l", String(ATTACK_SECONDS), "-u", url];
  const child = spawn("slowhttptest", args, { stdio: ["ignore", "ignore", "ignore"] });
  const killer = setTimeout(() => child.kill("SIGKILL"), (ATTACK_SECONDS + 20) * 1000);
  return new Promise((resolve) => {
    child.once("exit", (code) => {
      clearTimeout(killer);
      resolve(code);
    });
  });
}

interface Legit {
  sent: number;
  served: number;
  worstMs: number;
}

/** Sequential legitimate requests until `until` resolves (bounded: at most 5,000). */
async function legitimateLoad(s: Started, until: Promise<unknown>): Promise<Legit> {
  let done = false;
  void until.then(() => (done = true));
  const out: Legit = { sent: 0, served: 0, worstMs: 0 };
  await sleep(1_000); // let the attack open its connections first
  while (!done && out.sent < 5_000) {
    out.sent++;
    const r = await request(`${s.url}/legit`).catch(() => undefined);
    if (r?.status === 200) out.served++;
    if (r) out.worstMs = Math.max(out.worstMs, r.ms);
    await sleep(20);
  }
  return out;
}

describe.each([
  ["body received before the slot (defaults)", {}],
  ["body streamed, timeout.http_request 1s", { buffer_request: false, timeout: { http_request: "1s" } }],
])("slowhttptest against maxconn 50: %s", (_name, frontend) => {
  it.each(["-B", "-H"] as const)(
    "%s: legitimate requests keep being served, no slot held past http_request",
    async (mode) => {
      requireSlowhttptest();
      const o = await origin({ delayMs: 2 });
      const s = await startNode({ servers: { a: { address: o.address } }, frontend: { maxconn: 50, ...frontend } });
      let peakHolders = 0;
      const running = attack(mode, `${s.url}/upload`);
      const sampler = (async () => {
        let finished = false;
        void running.then(() => (finished = true));
        while (!finished) {
          peakHolders = Math.max(peakHolders, (await s.stats()).holders);
          await sleep(20);
        }
      })();
      const legit = await legitimateLoad(s, running);
      expect(await running).toBe(0);
      await sampler;
      console.log(
        `[slowhttptest ${mode}] legitimate ${legit.served}/${legit.sent} served, slowest ${Math.round(legit.worstMs)} ms; peak slots held ${peakHolders}/50`,
      );
      expect(legit.served / legit.sent).toBeGreaterThanOrEqual(0.95);
      const streamedBodies = "buffer_request" in frontend && mode === "-B";
      if (!streamedBodies) {
        // Neither slow heads nor bodies up to buffer_request ever take a slot: served at once. (The
        // sample count only has to be large enough to mean something: slowhttptest ends early once
        // the node has cut all its heads, so how many fit depends on the machine's load.)
        expect(legit.sent).toBeGreaterThan(30);
        expect(legit.worstMs).toBeLessThan(1_000);
        expect(peakHolders).toBeLessThanOrEqual(2);
      } else {
        // Streamed, every slow body takes a slot, but holds it only for timeout.http_request (1s),
        // then is answered 408: the slots turn over and the queue (FIFO) moves, so a legitimate
        // request waits behind the attack but is served within timeout.queue (5s).
        expect(legit.sent).toBeGreaterThan(5);
        expect(legit.worstMs).toBeLessThan(5_000);
        expect(s.node.nodeStats().frontends.web?.rejected["client-timeout"] ?? 0).toBeGreaterThanOrEqual(50);
      }
      await expectAllFree(s);
    },
    40_000,
  );
});
