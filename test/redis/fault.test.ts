// Redis killed (SIGKILL) and restarted on the same port while three node processes
// (test/support/redis-worker.ts) run load against one group, once per outage policy (SPEC §2
// rule 11). The restarted server comes back EMPTY (`--save ""`): the store pushes its spec again,
// tickets that lived in the old server end through the policy (SLOTGATE_STORE_UNAVAILABLE).
//
// Checked: no node crashes (no unhandled rejection, no uncaught exception: each exits 0 at the
// end); during the outage the policy decides (fail-closed: `unavailable`, counted in
// fallback.fail_closed; local: at most floor(max × localShare) local holders per process,
// counted in fallback.local) and every decision is counted and reported; ioredis reconnects
// with its default retryStrategy, the wake-up subscriptions come back and sweeps succeed again;
// after recovery the limit holds again (measured by the probe counter, see redis-worker.ts); and
// once the load stops, nothing is held or queued after one lease TTL plus a sweep.
//
// First, the data-loss case on its own, deterministically: ticket ids must not repeat when a
// group's data starts afresh, or a waiter of the old data claims a new ticket's grant (two holders
// of one lease; before the fix, ids restarted at 1 and that happened after every empty restart).
// Since rule 12 the new data grants nothing for one learning window (one lease TTL, kept short
// here), while the holder re-registers its lease; test/redis/state-loss.test.ts covers that.
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createGuard, type AcquireResult, type Guard, type StoreErrorPolicy } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { sendCommand, startRedis, type RedisProcess } from "../harness/redis.js";
import { killAllNodes, startFleet, waitUntil, type FleetNode } from "../support/redis-fleet.js";
import { OUTCOME, type LoadReport, type NodeStats, type Progress, type TimelineEntry } from "../support/redis-worker-protocol.js";

const PROCESSES = 3;
const WORKERS = 10;
const LIMIT = 5;
const LOCAL_SHARE = 0.4;
const LOCAL_MAX = Math.floor(LIMIT * LOCAL_SHARE); // 2
const TTL_MS = 1_500;
const SWEEP_MS = 250;
const OUTAGE_MS = 1_500;
const POST_WINDOW_MS = 2_000;

let server: RedisProcess | undefined;
let admin: Redis | undefined;

afterEach(async () => {
  await killAllNodes();
  admin?.disconnect();
  admin = undefined;
  await server?.stop();
  server = undefined;
});

describe("redis data loss (restart with an empty server, FLUSHALL)", () => {
  it("ticket ids stay unique: a waiter whose ticket was lost never takes a new ticket's grant", async () => {
    server = await startRedis();
    admin = new Redis(server.url);
    const group = `fault-ids-${process.pid}`;
    const clients: Redis[] = [];
    const guards: Guard[] = [];
    const nodeGuard = async (safetyRecheckMs: number) => {
      const redis = new Redis(server!.url);
      clients.push(redis);
      await redis.ping();
      const guard = createGuard({ store: createRedisStore({ redis, safetyRecheckMs }), group, limits: { global: 1 }, defaults: { leaseTtlMs: 600 } });
      guards.push(guard);
      return guard;
    };
    try {
      const b = await nodeGuard(100);
      const c = await nodeGuard(60_000);
      const granted = (r: AcquireResult) => {
        if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
        return r.lease;
      };
      const held = granted(await c.acquire({ scopes: ["global"] }));
      const old = b.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 }); // ticket 1 of the old data
      await waitUntil("B's ticket is queued", async () => (await c.stats()).scopes.global?.queued === 1, 2_000);
      await admin.flushall();
      // The fleet carries on with the new, empty data: C queues another acquire, which gets a
      // ticket of the new data (and waits out the learning window, and then the holder).
      const waiting = c.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
      await waitUntil("C's ticket is queued", async () => (await c.stats()).scopes.global?.queued === 1, 2_000);
      await sleep(900); // B's re-checks run meanwhile; the holder re-registers; the window ends
      expect(held.held).toBe(true);
      await held.release(); // grants C's ticket
      const [oldResult, newResult] = await Promise.all([old, waiting]);
      const holders = [oldResult, newResult].filter((r) => r.ok).map((r) => (r.ok ? r.lease.id : ""));
      console.log(
        `[fault data loss] old waiter: ${JSON.stringify(oldResult.ok ? { ok: true, lease: oldResult.lease.id } : oldResult)}, new waiter: ${JSON.stringify(newResult.ok ? { ok: true, lease: newResult.lease.id } : newResult)}`,
      );
      // Limit 1: one holder at most. The old waiter's ticket is gone: it ends through the policy.
      expect(holders).toHaveLength(1);
      expect(newResult.ok).toBe(true);
      expect(oldResult).toMatchObject({ ok: false, reason: "unavailable" });
    } finally {
      await Promise.all(guards.map((g) => g.close()));
      for (const r of clients) r.disconnect();
    }
  });
});

describe("redis data loss: fencing (rule 10)", () => {
  it("fences after a data loss stay above every fence issued before it, on the fast and the general path", async () => {
    server ??= await startRedis();
    admin ??= new Redis(server.url);
    const redis = new Redis(server.url);
    await redis.ping(); // the store fails fast (unavailable) while its client is still connecting
    // Short leases: after each loss the group learns for one lease TTL before it grants again.
    const guard = createGuard({
      store: createRedisStore({ redis }),
      group: `fault-fence-${process.pid}`,
      limits: { global: 2, tenant: { perKey: 1 } },
      defaults: { leaseTtlMs: 300, queueTimeoutMs: 5_000 },
    });
    try {
      const fences: number[] = [];
      const take = async (scopes: string[]) => {
        const r = await guard.acquire({ scopes });
        if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
        fences.push(r.lease.fence);
        await r.lease.release();
      };
      for (let i = 0; i < 3; i++) await take(["global"]); // named scopes: the fast path
      await take(["global", "tenant:a"]); // keyed: the general path
      await admin.flushall();
      await take(["global"]);
      await take(["global", "tenant:b"]);
      await admin.flushall();
      await take(["global", "tenant:c"]);
      await take(["global"]);
      for (let i = 1; i < fences.length; i++) expect(fences[i]!, `fence ${i} of ${JSON.stringify(fences)}`).toBeGreaterThan(fences[i - 1]!);
      for (const f of fences) expect(Number.isSafeInteger(f)).toBe(true);
    } finally {
      await guard.close();
      redis.disconnect();
    }
  });
});

const inWindow = (t: TimelineEntry, from: number, to: number) => t[0] >= from && t[1] <= to;

describe.each<StoreErrorPolicy>(["fail-closed", "local"])("redis kill -9 and restart under load (onStoreError: %s)", (policy) => {
  it("no node crashes, the policy decides during the outage, the limit holds after recovery, nothing leaks", async () => {
    server = await startRedis();
    const group = `fault-${policy}-${process.pid}`;
    const probeKey = (window: string) => `slotgate-test-probe:{${group}}:${window}`;
    const keys = groupKeys("slotgate:", group);
    const nodes = await startFleet(PROCESSES, {
      target: { url: server.url },
      group,
      limit: LIMIT,
      onStoreError: policy,
      localShare: LOCAL_SHARE,
      leaseTtlMs: TTL_MS,
      // Shorter than the outage: tickets queued when Redis died end (through the policy) during it,
      // so every loop also makes fresh decisions while Redis is down.
      queueTimeoutMs: 500,
      store: { sweepIntervalMs: SWEEP_MS, safetyRecheckMs: SWEEP_MS, commandTimeoutMs: 1_000 },
    });
    const all = <T>(f: (n: FleetNode) => Promise<T>) => Promise.all(nodes.map(f));
    const progress = () => all((n) => n.request({ cmd: "progress" }));
    const grantedBy = (p: Progress[]) => p.map((x) => x.granted.store);

    // ── load on a healthy store ──
    await all((n) => n.request({ cmd: "probe", key: probeKey("pre") }));
    const loads = all((n) => n.request({ cmd: "load", workers: WORKERS, quota: null, holdMaxMs: 2, retryDelayMs: 20, timeline: true, fences: false }));
    await waitUntil("every node has been granted 200 slots by the store", async () => grantedBy(await progress()).every((g) => g >= 200), 15_000);

    // ── the outage ──
    await all((n) => n.request({ cmd: "probe", key: null }));
    expect(await sendCommand(server.port, ["EXISTS", keys[0]!, probeKey("pre")])).toBe(2);
    await server.kill9();
    const killedAt = Date.now();
    await sleep(OUTAGE_MS);
    expect(nodes.every((n) => n.alive)).toBe(true);
    const restartAt = Date.now();
    await server.restart();
    const restartedAt = Date.now();

    // ── recovery: ioredis reconnects by itself, the store re-pushes its spec and grants again ──
    const atRestart = grantedBy(await progress());
    const recoveryMs = await waitUntil(
      "every node has been granted 50 more slots by the store",
      async () => grantedBy(await progress()).every((g, i) => g >= atRestart[i]! + 50),
      15_000,
      20,
    );
    await all((n) => n.request({ cmd: "probe", key: probeKey("post") }));
    const faultsAfterRecovery = (await all((n) => n.request({ cmd: "stats" }))).map((s) => s.faults);
    await sleep(POST_WINDOW_MS);
    const reports: LoadReport[] = await Promise.all([loads, all((n) => n.request({ cmd: "stop" }))]).then(([done]) => done);
    const stoppedAt = Date.now();

    // ── a holder that vanishes after recovery: only the resumed sweep can reclaim it ──
    admin = new Redis(server.url);
    expect(await admin.exists(probeKey("pre"))).toBe(0); // the server came back empty
    await nodes[0]!.request({ cmd: "abandon", leaseTtlMs: 300 });
    expect(await admin.zcard(keys[3]!)).toBe(1);
    await sleep(Math.max(TTL_MS, 300) + SWEEP_MS + 500);
    expect(await admin.zcard(keys[3]!)).toBe(0); // reclaimed with no other traffic: by a sweep
    expect(Number(await admin.hget(keys[1]!, "global\u0000expired"))).toBeGreaterThanOrEqual(1);
    const wakeChannels = await admin.pubsub("CHANNELS", `slotgate:{${group}}:wake:*`);
    const finals: NodeStats[] = await all((n) => n.request({ cmd: "stats" }));

    // ── figures ──
    const outage = reports.map((r) => r.timeline!.filter((t) => inWindow(t, killedAt, restartAt)));
    const count = (list: TimelineEntry[], code: number) => list.filter((t) => t[2] === code).length;
    const preMax = Math.max(...reports.map((r) => r.probe[probeKey("pre")]?.max ?? 0));
    const postMax = Math.max(...reports.map((r) => r.probe[probeKey("post")]?.max ?? 0));
    const postLeft = await admin.get(probeKey("post"));
    const postSamples = reports.reduce((acc, r) => acc + (r.probe[probeKey("post")]?.samples ?? 0), 0);
    console.log(
      `[fault ${policy}] outage ${restartAt - killedAt} ms, restart ${restartedAt - restartAt} ms, store grants again ` +
        `${recoveryMs} ms after restart; during the outage per process: ` +
        nodes
          .map(
            (_, i) =>
              `${count(outage[i]!, OUTCOME.store)} store / ${count(outage[i]!, OUTCOME.local)} local grants, ${count(outage[i]!, OUTCOME.unavailable)} unavailable`,
          )
          .join("; ") +
        `; local holders max per process ${reports.map((r) => r.localMax).join("/")} (bound ${LOCAL_MAX}); ` +
        `fallback counters ${finals.map((f) => JSON.stringify(f.stats.fallback)).join(" ")}; ` +
        `max holders observed before ${preMax}, after recovery ${postMax} over ${postSamples} grants (limit ${LIMIT}; ` +
        `probe errors ${reports.map((r) => r.probeErrors).join("/")}, counter left ${postLeft}); ` +
        `store faults ${finals.map((f) => JSON.stringify(f.faults)).join(" ")}; lost leases ${reports.map((r) => r.lost).join("/")}`,
    );

    // No node crashed, and every client is connected again (default retryStrategy).
    expect(nodes.every((n) => n.alive)).toBe(true);
    expect(finals.map((f) => f.clientStatus)).toEqual(nodes.map(() => "ready"));
    expect(reports.every((r) => r.clientErrors > 0)).toBe(true); // each node did see the outage
    // The wake-up subscriptions came back on the new server (one channel per node).
    expect(wakeChannels).toHaveLength(PROCESSES);
    // Sweeps succeed again: no sweep fault since recovery, and the abandoned lease was swept.
    expect(finals.map((f) => f.faults.sweep)).toEqual(faultsAfterRecovery.map((f) => f.sweep));

    // The policy decided during the outage, and every decision was counted and reported.
    for (const [i, r] of reports.entries()) {
      const fallback = finals[i]!.stats.fallback;
      expect(fallback.fail_open).toBe(0);
      expect(r.events.fallback ?? 0).toBe(fallback.fail_closed + fallback.local);
      expect(count(outage[i]!, OUTCOME.store)).toBe(0); // no store grant without a store
      expect(r.granted.failOpen).toBe(0);
      if (policy === "fail-closed") {
        expect(count(outage[i]!, OUTCOME.unavailable)).toBeGreaterThan(0);
        expect(fallback.fail_closed).toBe(r.rejected.unavailable);
        expect(fallback.local).toBe(0);
        expect(r.granted.local).toBe(0);
      } else {
        expect(count(outage[i]!, OUTCOME.local)).toBeGreaterThan(0);
        expect(r.localMax).toBeGreaterThan(0);
        expect(r.localMax).toBeLessThanOrEqual(LOCAL_MAX);
        expect(fallback.local).toBeGreaterThan(0);
        expect(fallback.fail_closed).toBe(0);
        expect(r.rejected.unavailable ?? 0).toBe(0);
      }
    }

    // The limit held before the outage and holds again after recovery (probe: every grant of the window).
    expect(preMax).toBeLessThanOrEqual(LIMIT);
    expect(postSamples).toBeGreaterThan(100);
    expect(postMax).toBeLessThanOrEqual(LIMIT);
    expect(postLeft).toBe("0");

    // Nothing leaks longer than one lease TTL (plus a sweep) after the load stopped.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(TTL_MS + SWEEP_MS);
    for (const f of finals) {
      expect(f.stats.holders).toBe(0);
      expect(f.stats.tickets).toBe(0);
      for (const [name, scope] of Object.entries(f.stats.scopes))
        expect({ name, in_use: scope.in_use, queued: scope.queued }).toEqual({ name, in_use: 0, queued: 0 });
    }

    const exits = await all((n) => n.exit());
    expect(exits).toEqual(nodes.map(() => ({ code: 0, signal: null })));
  }, 60_000);
});
