// End to end over real processes and sockets: three `slotgate serve` child processes (the built
// package, `node bin/slotgate.js serve -c FILE`) on one redis-server, with the same group and
// config, in front of slow origins that record their own concurrency. The limits must hold for
// the fleet as a whole, priorities must order the fleet's queue, queue timeouts must answer on
// time, and a node killed with SIGKILL must give its slots back within its lease TTL.
//
// Every frontend and stats listener binds port 0 (see test/support/fleet.ts, which also says which
// build runs; SLOTGATE_FLEET_BIN=/path/to/bin/slotgate.js runs another one). Each scenario has
// its own frontend, backend and origin in the one shared config, so the fleet is started once;
// the kill -9 scenario runs last because it takes a node away. Every wait is bounded; measured
// figures are printed.

import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { ROOT, ensureBuilt, httpRequest, quantile, startFleetNode, until, writeYaml, type FleetNode, type Reply } from "../support/fleet.js";
import { startOrigin, type Origin } from "../support/origin.js";
import { Random } from "../support/random.js";

const PRIORITY = [{ if: { path_beg: "/checkout/" }, class: 1 }, { class: 2 }];
const QUEUE_TIMEOUT_MS = 1_000;
const LEASE_TTL_MS = 1_000;

let dir = "";
let redis: RedisProcess | undefined;
const origins: Record<"loadA" | "loadB" | "prio" | "qt" | "crash", Origin> = {} as never;
let nodes: FleetNode[] = [];
let bin = "";

beforeAll(async () => {
  bin = await ensureBuilt();
}, 180_000);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "slotgate-fleet-"));
  const [r, loadA, loadB, prio, qt, crash] = await Promise.all([
    startRedis(),
    startOrigin({ delayMs: 100 }),
    startOrigin({ delayMs: 100 }),
    startOrigin({ delayMs: 100 }),
    startOrigin(),
    startOrigin(),
  ]);
  redis = r;
  Object.assign(origins, { loadA, loadB, prio, qt, crash });
  const timeout = (queue: string) => ({ queue, connect: "2s", server: "60s" });
  const file = await writeYaml(dir, "fleet.yaml", {
    store: { type: "redis", url: redis.url },
    group: "fleet",
    on_store_error: "fail-closed",
    frontends: {
      load: { bind: "127.0.0.1:0", default_backend: "load", priority: PRIORITY },
      prio: { bind: "127.0.0.1:0", default_backend: "prio", priority: PRIORITY },
      qt: { bind: "127.0.0.1:0", default_backend: "qt", priority: PRIORITY },
      crash: { bind: "127.0.0.1:0", default_backend: "crash" },
    },
    backends: {
      // Two servers of maxconn 2: the fleet may never send more than 2 to each origin.
      load: {
        balance: "leastconn",
        timeout: timeout("20s"),
        servers: { a: { address: loadA.address, maxconn: 2 }, b: { address: loadB.address, maxconn: 2 } },
      },
      prio: { timeout: timeout("20s"), servers: { p: { address: prio.address, maxconn: 2 } } },
      qt: { timeout: timeout(`${QUEUE_TIMEOUT_MS}ms`), servers: { q: { address: qt.address, maxconn: 1 } } },
      crash: { lease_ttl: `${LEASE_TTL_MS}ms`, timeout: timeout("20s"), servers: { k: { address: crash.address, maxconn: 2 } } },
    },
    stats: { bind: "127.0.0.1:0" },
  });
  const t0 = performance.now();
  nodes = await Promise.all(["n0", "n1", "n2"].map((name) => startFleetNode(file, { name, bin })));
  console.log(
    `[fleet] 3 nodes up in ${Math.round(performance.now() - t0)} ms (pids ${nodes.map((n) => n.pid).join(", ")}), redis ${redis.url}, running ${relative(ROOT, bin)}`,
  );
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop(5_000)));
  for (const n of nodes) {
    const lost = n.lines.filter((l) => l.msg === "lease lost while the response was still running" || l.msg === "request handler fault");
    if (lost.length > 0) console.log(`[fleet] ${n.name}: ${lost.length} unexpected log lines`, lost.slice(0, 3));
  }
  await Promise.all(Object.values(origins).map((o) => o.close()));
  await redis?.stop();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
}, 30_000);

/** A request that is expected to be cut by the test (or by a killed node): never rejects. */
function held(url: string, controller: AbortController): Promise<Reply | Error> {
  return httpRequest(url, { signal: controller.signal, timeoutMs: 30_000 }).catch((error: unknown) =>
    error instanceof Error ? error : new Error(String(error)),
  );
}

/** Waits until the fleet's store shows `n` tickets queued on a scope (asked through node `via`). */
async function queuedOn(via: FleetNode, scope: string, n: number): Promise<void> {
  await until(async () => (await via.scope(scope)).queued === n, 5_000, 5, `${n} queued on ${scope}`);
}

async function expectScopesFree(via: FleetNode, prefix: string[]): Promise<void> {
  await until(
    async () => {
      const { stats } = await via.statsJson();
      return Object.entries(stats.scopes).every(([name, row]) => !prefix.some((p) => name.startsWith(p)) || (row.in_use === 0 && row.queued === 0));
    },
    5_000,
    20,
    `every ${prefix.join("|")} scope free`,
  );
}

describe("a fleet of three slotgate serve processes on one Redis", () => {
  it("keeps each origin at or under its server maxconn under load from all three nodes, class 1 waiting far less", async () => {
    const CLIENTS = 60;
    const DURATION_MS = 3_000;
    const DELAY_MS = 100;
    const agents = nodes.map(() => new http.Agent({ keepAlive: true }));
    const results: Array<{ cls: 1 | 2; status: number; ms: number; reason: string | undefined; node: number }> = [];
    const errors: string[] = [];
    const t0 = performance.now();
    const deadline = t0 + DURATION_MS;
    try {
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, client) => {
          const node = client % nodes.length;
          const rng = new Random(0x5eed + client);
          for (let n = 0; performance.now() < deadline; n++) {
            const cls = rng.chance(0.2) ? 1 : 2;
            const path = `${cls === 1 ? "/checkout/" : "/browse/"}${client}-${n}?delay=${DELAY_MS}`;
            try {
              const r = await httpRequest(nodes[node]!.url("load") + path, { agent: agents[node]!, timeoutMs: 25_000 });
              const reason = r.headers["x-slotgate-reason"];
              results.push({ cls, status: r.status, ms: r.ms, reason: typeof reason === "string" ? reason : undefined, node });
            } catch (error) {
              errors.push(String(error));
            }
          }
        }),
      );
    } finally {
      for (const a of agents) a.destroy();
    }
    const elapsed = performance.now() - t0;
    const waits = (cls: 1 | 2) => results.filter((r) => r.cls === cls && r.status === 200).map((r) => r.ms - DELAY_MS);
    const w1 = waits(1);
    const w2 = waits(2);
    const p = (v: number[], q: number) => Math.round(quantile(v, q));
    console.log(
      `[fleet] load: ${CLIENTS} clients over 3 nodes for ${DURATION_MS} ms (done after ${Math.round(elapsed)} ms): ${results.length} answers ` +
        `(${results.filter((r) => r.status === 200).length} × 200, per node ${[0, 1, 2].map((i) => results.filter((r) => r.node === i).length).join("/")}), ` +
        `origin max concurrency a=${origins.loadA.max} b=${origins.loadB.max} (server maxconn 2 each); ` +
        `queue wait class 1 (/checkout/, n=${w1.length}) p50 ${p(w1, 0.5)} p90 ${p(w1, 0.9)} ms · class 2 (n=${w2.length}) p50 ${p(w2, 0.5)} p90 ${p(w2, 0.9)} ms`,
    );

    const outcomes: Record<string, number> = {};
    for (const r of results) {
      const key = r.status === 200 ? "200" : `${r.status} ${r.reason ?? ""}`.trim();
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    if (outcomes["200"] !== results.length) {
      // Why the nodes refused: their first error lines.
      for (const n of nodes) console.log(`[fleet] ${n.name} errors:`, JSON.stringify(n.lines.filter((l) => l.level === "error").slice(0, 2)));
    }
    expect(errors.slice(0, 5)).toEqual([]);
    expect(outcomes).toEqual({ "200": results.length });
    expect(origins.loadA.max).toBeLessThanOrEqual(2);
    expect(origins.loadB.max).toBeLessThanOrEqual(2);
    expect(origins.loadA.max + origins.loadB.max).toBe(4); // saturated: the limit, not the load, was the bound
    const { stats, node } = await nodes[0]!.statsJson();
    expect(stats.scopes["server:load/a"]!.peak_in_use).toBe(2);
    expect(stats.scopes["server:load/b"]!.peak_in_use).toBe(2);
    expect(stats.scopes["backend:load"]!.peak_queued).toBeGreaterThan(CLIENTS / 2);
    expect(node.frontends.load!.requests).toBeGreaterThan(0);
    for (const n of nodes.slice(1)) expect((await n.statsJson()).node.frontends.load!.requests).toBeGreaterThan(0);
    // Class 1 overtakes the queue: its median wait is a fraction of class 2's.
    expect(w1.length).toBeGreaterThan(10);
    expect(w2.length).toBeGreaterThan(10);
    expect(quantile(w1, 0.5) * 4).toBeLessThan(quantile(w2, 0.5));
    await expectScopesFree(nodes[1]!, ["backend:load", "server:load/"]);
  });

  it("grants freed slots to queued class-1 requests first, whichever node they wait on", async () => {
    const o = origins.prio;
    const fills = nodes.slice(0, 2).map(() => new AbortController());
    const filling = fills.map((c, i) => held(`${nodes[i]!.url("prio")}/hang?fill=${i}`, c));
    await until(() => o.current === 2, 5_000, 5, "both prio slots taken");
    o.resetCounters();

    // 4 class-2 then 4 class-1 requests, spread over the three nodes, each queued before the next.
    const N = 4;
    const M = 4;
    const replies: Array<Promise<Reply>> = [];
    const queuedAt = new Map<string, number>();
    const send = (path: string, node: number) => {
      queuedAt.set(path, performance.now());
      replies.push(httpRequest(`${nodes[node]!.url("prio")}${path}`, { timeoutMs: 20_000 }));
    };
    for (let i = 0; i < N; i++) {
      send(`/browse/${i}`, i % 3);
      await queuedOn(nodes[(i + 1) % 3]!, "backend:prio", i + 1);
    }
    for (let i = 0; i < M; i++) {
      send(`/checkout/${i}`, (i + 2) % 3);
      await queuedOn(nodes[i % 3]!, "backend:prio", N + i + 1);
    }
    expect(o.current).toBe(2); // the fills still hold both slots: nothing was served yet
    expect(o.requests).toEqual([]);
    const released = performance.now();
    for (const c of fills) c.abort(); // the clients go away: the node releases their leases
    await Promise.all(filling);
    const answers = await Promise.all(replies);
    expect(answers.map((r) => r.status)).toEqual(new Array(N + M).fill(200));

    const order = o.requests.map((r) => r.url.replace(/\?.*$/, ""));
    const servedAfter = answers.map((r) => Math.round(r.endedAt - released));
    console.log(`[fleet] priority: origin order after release: ${order.join(" ")}; answered (ms after release) ${servedAfter.join(", ")}`);
    expect(order).toHaveLength(N + M);
    // Every class-1 request reaches the origin before any class-2 one, FIFO in pairs of the 2 slots.
    expect(new Set(order.slice(0, 2))).toEqual(new Set(["/checkout/0", "/checkout/1"]));
    expect(new Set(order.slice(2, 4))).toEqual(new Set(["/checkout/2", "/checkout/3"]));
    expect(new Set(order.slice(4, 6))).toEqual(new Set(["/browse/0", "/browse/1"]));
    expect(new Set(order.slice(6, 8))).toEqual(new Set(["/browse/2", "/browse/3"]));
    await expectScopesFree(nodes[2]!, ["backend:prio", "server:prio/"]);
  });

  it("answers a request queued on any node with 503 at timeout queue, with Retry-After and x-slotgate-reason", async () => {
    const o = origins.qt;
    const TOLERANCE_MS = 100;
    // The timing is measured from the client, across three processes and Redis on a small machine
    // that other test files load too: a round whose answers all come late (never early) is measured
    // again, at most three rounds in all. Every other property is checked on every round.
    let late: number[] = [];
    for (let round = 1; round <= 3; round++) {
      o.resetCounters();
      const fill = new AbortController();
      const filling = held(`${nodes[0]!.url("qt")}/hang`, fill);
      await until(() => o.current === 1, 5_000, 5, "the qt slot taken");
      const before = (await nodes[0]!.scope("backend:qt")).queue_timeouts;
      try {
        const replies = await Promise.all(
          nodes.map((n, i) => httpRequest(`${n.url("qt")}/${i % 2 === 0 ? "checkout/" : "browse/"}late-${i}`, { timeoutMs: 10_000 })),
        );
        console.log(
          `[fleet] queue timeout ${QUEUE_TIMEOUT_MS} ms, round ${round}: 503 after ${replies.map((r) => Math.round(r.ms)).join(", ")} ms (one request per node)`,
        );
        for (const r of replies) {
          expect(r.status).toBe(503);
          expect(r.headers["x-slotgate-reason"]).toBe("queue-timeout");
          expect(r.headers["retry-after"]).toMatch(/^[1-9]\d*$/);
          expect(r.ms).toBeGreaterThanOrEqual(QUEUE_TIMEOUT_MS - TOLERANCE_MS);
        }
        expect((await nodes[1]!.scope("backend:qt")).queue_timeouts - before).toBe(nodes.length);
        expect(o.requests.map((r) => r.url)).toEqual(["/hang"]); // no queued request reached the origin
        late = replies.map((r) => r.ms).filter((ms) => ms > QUEUE_TIMEOUT_MS + TOLERANCE_MS);
      } finally {
        fill.abort();
        await filling;
      }
      await expectScopesFree(nodes[2]!, ["backend:qt", "server:qt/"]);
      if (late.length === 0) break;
    }
    expect(late, `answers later than timeout queue + ${TOLERANCE_MS} ms in every round`).toEqual([]);
  });

  it("gives the slots of a node killed with SIGKILL back to the others within lease TTL + 1 s", async () => {
    const o = origins.crash;
    const victim = nodes[0]!;
    const [n1, n2] = [nodes[1]!, nodes[2]!];
    // The victim holds both slots with requests in flight at the origin.
    const inflight = [0, 1].map((i) => held(`${victim.url("crash")}/doomed/${i}?delay=30000`, new AbortController()));
    await until(() => o.current === 2, 5_000, 5, "both crash slots taken by the victim");
    expect((await n1.scope("server:crash/k")).in_use).toBe(2);
    // One request queued on each surviving node.
    const queued = [n1, n2].map((n, i) => httpRequest(`${n.url("crash")}/survivor/${i}?delay=0`, { timeoutMs: 15_000 }));
    await queuedOn(n1, "backend:crash", 2);

    const t0 = performance.now();
    await victim.kill9();
    const killedAfter = performance.now() - t0;
    const originOpenAtKill = o.current;
    // The store still counts the dead node's slots until their leases expire.
    const storeInUse: Array<{ ms: number; inUse: number }> = [];
    const watch = (async () => {
      for (;;) {
        const inUse = (await n1.scope("server:crash/k")).in_use;
        storeInUse.push({ ms: Math.round(performance.now() - t0), inUse });
        if (inUse < 2 || performance.now() - t0 > LEASE_TTL_MS + 3_000) return;
        await sleep(20);
      }
    })();
    const answers = await Promise.all(queued);
    const servedAfter = answers.map((r) => Math.round(r.endedAt - t0));
    await watch;
    const victimReplies = await Promise.all(inflight);
    await o.waitForCurrent(0, 2_000);
    const st = await n2.scope("server:crash/k");
    const reclaimedAt = storeInUse.find((s) => s.inUse < 2)?.ms;
    console.log(
      `[fleet] kill -9 (lease_ttl ${LEASE_TTL_MS} ms): victim gone ${Math.round(killedAfter)} ms after SIGKILL; origin had ${originOpenAtKill} of its connections open then; ` +
        `store in_use went below 2 at ${reclaimedAt} ms; queued requests on the other nodes served ${servedAfter.join(", ")} ms after the kill; expired leases ${st.expired}`,
    );
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    for (const ms of servedAfter) {
      expect(ms).toBeLessThanOrEqual(LEASE_TTL_MS + 1_000);
      // Not before the victim's lease could have expired: renewed every TTL/3, so it had ≥ 2/3 TTL left.
      expect(ms).toBeGreaterThanOrEqual((LEASE_TTL_MS * 2) / 3 - 100);
    }
    expect(o.max).toBeLessThanOrEqual(2); // the victim's connections were gone before the survivors arrived
    expect(victimReplies.every((r) => r instanceof Error)).toBe(true); // the victim's clients lost their connection
    expect(st.expired).toBe(2);
    expect(st.in_use).toBe(0);
    expect(o.requests.map((r) => r.url.replace(/\?.*$/, "")).sort()).toEqual(["/doomed/0", "/doomed/1", "/survivor/0", "/survivor/1"]);
    await expectScopesFree(n2, ["backend:crash", "server:crash/"]);
    expect(await victim.exited).toMatchObject({ signal: "SIGKILL" });
  });
});
