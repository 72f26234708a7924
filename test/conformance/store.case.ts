/**
 * The store conformance suite: every rule of SPEC §2 and the stats of §3, by name, run through
 * the public guard API against one store. Each store's test file calls {@link runConformance}
 * with a factory and a way to move that store's clock; a store that cannot do something lists
 * the test under `skip` with a reason.
 *
 * Durations are multiples of `target.unitMs`, so a fake-clock store runs the suite instantly and
 * a real-clock store (Redis, the Durable Object) runs it with margins wide enough for real I/O.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { queueCases } from "./queue.case.js";
import {
  createGuard,
  readGroupStats,
  SlotgateError,
  SlotgateRejectedError,
  type AcquireResult,
  type Guard,
  type GuardOptions,
  type Lease,
  type SlotStore,
} from "../../src/index.js";

export interface ConformanceTarget {
  name: string;
  /** A store for one test; groups are unique per test, so a shared store is fine. */
  createStore(): SlotStore | Promise<SlotStore>;
  /** Moves the store's clock forward: fake timers advance, real-time stores sleep. */
  advance(ms: number): Promise<void>;
  /** Lets in-flight notifications arrive (a microtask flush, or a short real wait). */
  settle(): Promise<void>;
  /** Base duration in ms: 10 for a fake clock, ~50 for real I/O. */
  unitMs: number;
  beforeEach?(): void | Promise<void>;
  afterEach?(): void | Promise<void>;
  closeStore?(store: SlotStore): Promise<void>;
  /** Makes the store lose every group's state at once (rule 12), as a FLUSHALL does; stores that cannot lose it skip the rule. */
  loseState?(): Promise<void>;
  skip?: { reason: string; tests: string[] }[];
}

type Tracked<T> = { promise: Promise<T>; done: boolean; value?: T };

function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, done: false };
  void promise.then((v) => {
    t.done = true;
    t.value = v;
  });
  return t;
}

function leaseOf(r: AcquireResult | undefined): Lease {
  if (!r?.ok) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
  return r.lease;
}

let groupSeq = 0;

export function runConformance(target: ConformanceTarget): void {
  const skipped = new Map<string, string>();
  for (const s of target.skip ?? []) for (const t of s.tests) skipped.set(t, s.reason);
  const u = target.unitMs;
  let store: SlotStore;
  const guards: Guard[] = [];

  const test = (name: string, fn: () => Promise<void>) => {
    if (skipped.has(name)) it.skip(`${name} (skipped: ${skipped.get(name)})`, fn);
    else it(name, fn);
  };

  /** A guard on a fresh group of the store under test. */
  const guardWith = (options: Omit<GuardOptions, "store" | "group">, group?: string): Guard => {
    const guard = createGuard({ store, group: group ?? `conf-${process.pid}-${Date.now().toString(36)}-${++groupSeq}`, ...options });
    guards.push(guard);
    return guard;
  };

  const inUse = async (guard: Guard, scope: string) => (await guard.stats()).scopes[scope]?.in_use ?? 0;
  const freshGroup = (label: string) => `conf-${label}-${process.pid}-${Date.now().toString(36)}-${++groupSeq}`;

  describe(`store conformance: ${target.name}`, () => {
    beforeEach(async () => {
      await target.beforeEach?.();
      store = await target.createStore();
    });
    afterEach(async () => {
      await Promise.all(guards.splice(0).map((g) => g.close()));
      await target.closeStore?.(store);
      await target.afterEach?.();
    });

    describe("rule 1: atomic chain", () => {
      test("grants when every scope has room and takes one slot in each", async () => {
        const g = guardWith({ limits: { global: 3, "frontend:web": 2, tenant: { perKey: 1 } } });
        const lease = leaseOf(await g.acquire({ scopes: ["global", "frontend:web", "tenant:acme"] }));
        const s = await g.stats();
        expect(s.scopes.global?.in_use).toBe(1);
        expect(s.scopes["frontend:web"]?.in_use).toBe(1);
        expect(s.scopes["tenant:acme"]?.in_use).toBe(1);
        await lease.release();
        expect(await inUse(g, "global")).toBe(0);
      });

      test("rejects when one scope is full and takes nothing from the others", async () => {
        const g = guardWith({ limits: { global: 5, tenant: { perKey: 1 } } });
        leaseOf(await g.acquire({ scopes: ["global", "tenant:acme"] }));
        const r = await g.acquire({ scopes: ["global", "tenant:acme"] });
        expect(r).toMatchObject({ ok: false, reason: "full" });
        expect(await inUse(g, "global")).toBe(1);
        // Other keys of the same keyed limit are independent.
        leaseOf(await g.acquire({ scopes: ["global", "tenant:other"] }));
        expect(await inUse(g, "global")).toBe(2);
      });

      test("a backend's pool-wide max caps the sum over its servers", async () => {
        const g = guardWith({ backends: { api: { max: 2, servers: { a: { max: 5 }, b: { max: 5 } } } } });
        leaseOf(await g.acquire({ backend: "api" }));
        leaseOf(await g.acquire({ backend: "api" }));
        expect(await g.acquire({ backend: "api" })).toMatchObject({ ok: false, reason: "full" });
      });
    });

    describe("rule 2: server choice inside the atomic step", () => {
      test("leastconn picks the server with the fewest holders, ties in round-robin order", async () => {
        const g = guardWith({ backends: { api: { balance: "leastconn", servers: { a: {}, b: {}, c: {} } } } });
        const first = await Promise.all([1, 2, 3].map(async () => leaseOf(await g.acquire({ backend: "api" }))));
        expect(first.map((l) => l.server).sort()).toEqual(["a", "b", "c"]);
        const b = first.find((l) => l.server === "b")!;
        await b.release();
        expect(leaseOf(await g.acquire({ backend: "api" })).server).toBe("b");
      });

      test("roundrobin cycles through servers honouring weight", async () => {
        const g = guardWith({ backends: { api: { balance: "roundrobin", servers: { a: { weight: 1 }, b: { weight: 2 } } } } });
        const picks: string[] = [];
        for (let i = 0; i < 6; i++) {
          const lease = leaseOf(await g.acquire({ backend: "api" }));
          picks.push(lease.server!);
          await lease.release();
        }
        expect(picks.filter((p) => p === "b").length).toBe(4);
        expect(picks.filter((p) => p === "a").length).toBe(2);
        // Smooth: never three b in a row.
        expect(picks.join("")).not.toContain("bbb");
      });

      test("first picks the lowest-declared server with room", async () => {
        const g = guardWith({ backends: { api: { balance: "first", servers: { a: { max: 2 }, b: { max: 2 } } } } });
        const servers: string[] = [];
        for (let i = 0; i < 3; i++) servers.push(leaseOf(await g.acquire({ backend: "api" })).server!);
        expect(servers).toEqual(["a", "a", "b"]);
      });

      test("full servers are skipped and a server marked down is never chosen", async () => {
        const g = guardWith({ backends: { api: { balance: "roundrobin", servers: { a: { max: 1 }, b: { max: 5 }, c: { max: 5 } } } } });
        await g.setServerState("api", "c", "down");
        const servers: string[] = [];
        for (let i = 0; i < 4; i++) servers.push(leaseOf(await g.acquire({ backend: "api" })).server!);
        expect(servers.filter((s) => s === "a")).toHaveLength(1);
        expect(servers).not.toContain("c");
        expect(servers.filter((s) => s === "b")).toHaveLength(3);
      });

      test("marking a server up dispatches tickets waiting for the backend", async () => {
        const g = guardWith({ backends: { api: { servers: { a: { max: 1, down: true } } } } });
        const t = track(g.acquire({ backend: "api", queueTimeoutMs: 100 * u }));
        await target.settle();
        expect(t.done).toBe(false);
        await g.setServerState("api", "a", "up");
        await target.settle();
        expect(leaseOf(await t.promise).server).toBe("a");
      });

      test("an acquire may pin a server of the backend", async () => {
        const g = guardWith({ backends: { api: { servers: { a: { max: 1 }, b: { max: 1 } } } } });
        expect(leaseOf(await g.acquire({ backend: "api", server: "b" })).server).toBe("b");
        expect(await g.acquire({ server: "api/b" })).toMatchObject({ ok: false, reason: "full" });
        expect(leaseOf(await g.acquire({ backend: "api" })).server).toBe("a");
      });
    });

    describe("rule 3: queue", () => {
      test("a request that allows queueing waits; one that does not is rejected with full", async () => {
        const g = guardWith({ limits: { global: 1 } });
        leaseOf(await g.acquire({ scopes: ["global"] }));
        expect(await g.acquire({ scopes: ["global"], queueTimeoutMs: 0 })).toMatchObject({ ok: false, reason: "full", retryAfterMs: expect.any(Number) });
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.settle();
        expect(t.done).toBe(false);
        expect((await g.stats()).scopes.global?.queued).toBe(1);
      });

      test("maxqueue on any scope of the chain rejects with queue-full", async () => {
        const g = guardWith({ limits: { global: 1, tenant: { perKey: 1, maxqueue: 1 } }, backends: { api: { maxqueue: 1, servers: { a: { max: 1 } } } } });
        leaseOf(await g.acquire({ scopes: ["global", "tenant:t"] }));
        const queued = track(g.acquire({ scopes: ["global", "tenant:t"], queueTimeoutMs: 100 * u }));
        expect(await g.acquire({ scopes: ["tenant:t"], queueTimeoutMs: 100 * u })).toMatchObject({ ok: false, reason: "queue-full" });
        leaseOf(await g.acquire({ backend: "api" }));
        const queuedApi = track(g.acquire({ backend: "api", queueTimeoutMs: 100 * u }));
        expect(await g.acquire({ backend: "api", queueTimeoutMs: 100 * u })).toMatchObject({ ok: false, reason: "queue-full" });
        await target.settle();
        expect(queued.done).toBe(false);
        expect(queuedApi.done).toBe(false);
        const s = await g.stats();
        expect(s.scopes["tenant:t"]?.rejected_queue_full).toBe(1);
        expect(s.scopes["backend:api"]?.rejected_queue_full).toBe(1);
      });
    });

    describe("rule 4: order", () => {
      const grantOrder = async (g: Guard, entries: { label: string; cls?: number; offsetMs?: number; delay?: number }[]) => {
        const holder = leaseOf(await g.acquire({ scopes: ["global"] }));
        const order: string[] = [];
        const waits: Promise<void>[] = [];
        for (const e of entries) {
          if (e.delay) await target.advance(e.delay);
          const p = g.acquire({ scopes: ["global"], queueTimeoutMs: 1000 * u, priority: { class: e.cls ?? 0, offsetMs: e.offsetMs ?? 0 } });
          await target.settle();
          waits.push(
            p.then(async (r) => {
              order.push(e.label);
              await leaseOf(r).release();
            }),
          );
        }
        await holder.release();
        await Promise.all(waits);
        return order;
      };

      test("FIFO within a priority class", async () => {
        const g = guardWith({ limits: { global: 1 } });
        expect(
          await grantOrder(
            g,
            ["a", "b", "c", "d"].map((label) => ({ label, delay: 1 })),
          ),
        ).toEqual(["a", "b", "c", "d"]);
      });

      test("a lower priority class goes first", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const order = await grantOrder(g, [
          { label: "c2", cls: 2, delay: 1 },
          { label: "c1", cls: 1, delay: 1 },
          { label: "cm1", cls: -1, delay: 1 },
          { label: "c1b", cls: 1, delay: 1 },
        ]);
        expect(order).toEqual(["cm1", "c1", "c1b", "c2"]);
      });

      test("the priority offset shifts arrival time within a class", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const order = await grantOrder(g, [
          { label: "early", delay: 1 },
          { label: "late-but-boosted", offsetMs: -60_000, delay: 1 },
          { label: "penalised", offsetMs: 60_000, delay: 1 },
          { label: "last", delay: 1 },
        ]);
        expect(order).toEqual(["late-but-boosted", "early", "last", "penalised"]);
      });
    });

    describe("rule 5: dispatch", () => {
      test("a release grants the next ticket", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const holder = leaseOf(await g.acquire({ scopes: ["global"] }));
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.settle();
        await holder.release();
        const lease = leaseOf(await t.promise);
        expect(lease.fence).toBeGreaterThan(holder.fence);
      });

      test("no head-of-line blocking: a ticket for server A does not hold up one for server B", async () => {
        const g = guardWith({ backends: { api: { servers: { a: { max: 1 }, b: { max: 1 } } } } });
        leaseOf(await g.acquire({ server: "api/a" }));
        const hb = leaseOf(await g.acquire({ server: "api/b" }));
        const forA = track(g.acquire({ server: "api/a", queueTimeoutMs: 100 * u }));
        await target.settle();
        const forB = track(g.acquire({ server: "api/b", queueTimeoutMs: 100 * u }));
        await target.settle();
        await hb.release();
        await target.settle();
        expect(leaseOf(await forB.promise).server).toBe("b");
        expect(forA.done).toBe(false);
      });

      test("no overtaking on a shared full scope: a later ticket needing it waits its turn", async () => {
        const g = guardWith({ limits: { global: 1, tenant: { perKey: 5 } } });
        const holder = leaseOf(await g.acquire({ scopes: ["global"] }));
        const first = track(g.acquire({ scopes: ["global", "tenant:a"], queueTimeoutMs: 100 * u }));
        await target.settle();
        const second = track(g.acquire({ scopes: ["global", "tenant:b"], queueTimeoutMs: 100 * u }));
        await target.settle();
        await holder.release();
        await target.settle();
        expect(first.done).toBe(true);
        expect(second.done).toBe(false);
      });

      test("raising a limit dispatches as many tickets as now fit", async () => {
        const g = guardWith({ limits: { global: 1 } });
        leaseOf(await g.acquire({ scopes: ["global"] }));
        const waiting = [1, 2, 3].map(() => track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u })));
        await target.settle();
        await g.configure({ limits: { global: 3 } });
        await target.settle();
        expect(waiting.map((w) => w.done)).toEqual([true, true, false]);
      });
    });

    describe("reconfiguring: limits, backends and servers removed", () => {
      test("a removed limit is unknown to new acquires; its holders still release; its tickets time out", async () => {
        const g = guardWith({ limits: { global: 5, old: 1 } });
        const holder = leaseOf(await g.acquire({ scopes: ["global", "old"] }));
        const waiting = track(g.acquire({ scopes: ["old"], queueTimeoutMs: 6 * u }));
        await target.settle();
        await g.configure({ limits: { global: 5 } });
        await expect(g.acquire({ scopes: ["old"] })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
        await holder.release();
        await target.settle();
        expect(waiting.done).toBe(false);
        await target.advance(10 * u);
        await target.settle();
        expect(await waiting.promise).toMatchObject({ ok: false, reason: "queue-timeout" });
        const s = await g.stats();
        expect(s.scopes.old).toBeUndefined();
        expect(s.scopes.global).toMatchObject({ in_use: 0 });
      });

      test("a removed server is never chosen and a removed backend is unknown", async () => {
        const g = guardWith({ backends: { api: { servers: { a: { max: 1 }, b: { max: 1 } } }, old: { servers: { x: {} } } } });
        const onB = leaseOf(await g.acquire({ server: "api/b" }));
        await g.configure({ backends: { api: { servers: { a: { max: 1 } } } } });
        expect(leaseOf(await g.acquire({ backend: "api" })).server).toBe("a");
        expect(await g.acquire({ backend: "api" })).toMatchObject({ ok: false, reason: "full" });
        await expect(g.acquire({ backend: "old" })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
        await onB.release();
        expect((await g.stats()).scopes["backend:api"]).toMatchObject({ in_use: 1 });
      });
    });

    describe("rule 13: spec versions", () => {
      test("a higher version replaces the spec; a running lower-version guard then runs under it", async () => {
        const group = freshGroup("v-higher");
        const v1 = guardWith({ version: 1, limits: { global: 1, old: 5 } }, group);
        expect(await v1.open()).toEqual({ installed: true, storedVersion: 1 });
        const held = leaseOf(await v1.acquire({ scopes: ["global", "old"] }));
        // The first node of a rolling deploy switches the fleet.
        const v2 = guardWith({ version: 2, limits: { global: 2, new: 5 } }, group);
        expect(await v2.open()).toEqual({ installed: true, storedVersion: 2 });
        leaseOf(await v2.acquire({ scopes: ["global", "new"] }));
        expect(await v2.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
        // The old node enforces the new limits, and a scope the new spec removed is unavailable, not a fault.
        expect(await v1.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
        expect(await v1.acquire({ scopes: ["old"] })).toMatchObject({ ok: false, reason: "unavailable" });
        expect((await v1.stats()).spec).toMatchObject({ version: 1, superseded: true, unavailable: 1 });
        await held.release();
        const s = await v2.stats();
        expect(s.scopes.global).toMatchObject({ in_use: 1, max: 2 });
        expect(s.scopes.old).toBeUndefined();
      });

      test("the same version with another spec is refused with a coded error naming what differs; the stored spec stays", async () => {
        const group = freshGroup("v-conflict");
        const first = guardWith({ version: 3, limits: { global: 1, "frontend:web": 10 } }, group);
        await first.open();
        const other = guardWith({ version: 3, limits: { global: 1, "frontend:web": 20, "frontend:api": 5 } }, group);
        const error = await other.open().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(SlotgateError);
        expect(error).toMatchObject({ code: "SLOTGATE_SPEC_CONFLICT" });
        const message = (error as Error).message;
        expect(message).toContain("frontend:web max 10 (stored) vs 20 (this node)");
        expect(message).toContain("frontend:api only in this node's spec");
        // Its first call fails the same way; nothing was taken.
        await expect(other.acquire({ scopes: ["global"] })).rejects.toMatchObject({ code: "SLOTGATE_SPEC_CONFLICT" });
        leaseOf(await first.acquire({ scopes: ["frontend:web"] }));
        const s = await first.stats();
        expect(s.scopes["frontend:web"]).toMatchObject({ in_use: 1, max: 10 });
        expect(s.scopes["frontend:api"]).toBeUndefined();
        // A reconfigure under the same version is refused too: raise the version to change limits.
        await expect(first.configure({ limits: { global: 2, "frontend:web": 10 } })).rejects.toMatchObject({ code: "SLOTGATE_SPEC_CONFLICT" });
        expect((await first.stats()).scopes.global?.max).toBe(1);
        expect(await first.configure({ limits: { global: 2, "frontend:web": 10 }, version: 4 })).toEqual({ installed: true, storedVersion: 4 });
        expect((await first.stats()).scopes.global?.max).toBe(2);
      });

      test("the same version with the same spec is fine, whatever the key order", async () => {
        const group = freshGroup("v-equal");
        const a = guardWith(
          { version: 4, limits: { global: 2, tenant: { perKey: 1 } }, backends: { api: { max: 5, servers: { x: { max: 1 }, y: {} } } } },
          group,
        );
        await a.open();
        const b = guardWith(
          { version: 4, backends: { api: { servers: { x: { max: 1 }, y: {} }, max: 5 } }, limits: { tenant: { perKey: 1 }, global: 2 } },
          group,
        );
        expect(await b.open()).toEqual({ installed: true, storedVersion: 4 });
        leaseOf(await a.acquire({ scopes: ["global", "tenant:t"] }));
        expect(await b.acquire({ scopes: ["tenant:t"] })).toMatchObject({ ok: false, reason: "full" });
        leaseOf(await b.acquire({ scopes: ["global"] }));
        expect(await a.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
      });

      test("a lower version runs under the stored spec; a scope only it names answers unavailable, counted", async () => {
        const group = freshGroup("v-lower");
        const newer = guardWith({ version: 6, limits: { global: 1, "frontend:renamed": 5 } }, group);
        await newer.open();
        const events: unknown[] = [];
        const older = guardWith({ version: 5, limits: { global: 3, "frontend:web": 5 }, onEvent: (e) => events.push(e) }, group);
        expect(await older.open()).toEqual({ installed: false, storedVersion: 6 });
        leaseOf(await older.acquire({ scopes: ["global"] }));
        expect(await older.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
        expect(await older.acquire({ scopes: ["frontend:web"] })).toMatchObject({ ok: false, reason: "unavailable" });
        expect(await older.acquire({ scopes: ["frontend:web"] })).toMatchObject({ ok: false, reason: "unavailable" });
        expect(events.filter((e) => (e as { type: string }).type === "scope-unavailable")).toEqual([{ type: "scope-unavailable", scope: "frontend:web" }]);
        expect((await older.stats()).spec).toEqual({ version: 5, superseded: true, unavailable: 2 });
        const s = await newer.stats();
        expect(s.scopes.global).toMatchObject({ in_use: 1, max: 1 });
        expect(s.scopes["frontend:web"]).toBeUndefined();
        // An unversioned guard never replaces a versioned spec either.
        const unversioned = guardWith({ limits: { global: 9 } }, group);
        expect(await unversioned.open()).toEqual({ installed: false, storedVersion: 6 });
        expect((await newer.stats()).scopes.global?.max).toBe(1);
      });

      test("reading stats is read-only: no spec is written, and a group nobody opened is not created", async () => {
        const group = freshGroup("v-read");
        const before = await readGroupStats(store, group);
        // Undefined where the store can tell; otherwise (a Durable Object) an empty group.
        if (before !== undefined) expect(Object.keys(before.scopes)).toEqual([]);
        const g = guardWith({ version: 2, limits: { global: 1 } }, group);
        leaseOf(await g.acquire({ scopes: ["global"] }));
        const read = await readGroupStats(store, group);
        expect(read?.scopes.global).toMatchObject({ in_use: 1, max: 1 });
        expect(read).toMatchObject({ group, store: store.kind });
        // The group still runs its spec, version included: an equal version with other limits is still refused.
        const other = guardWith({ version: 2, limits: { global: 7 } }, group);
        await expect(other.open()).rejects.toMatchObject({ code: "SLOTGATE_SPEC_CONFLICT" });
        expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
      });
    });

    describe("rule 6: no barging", () => {
      test("a new acquire never takes a slot a queued ticket waits for", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const holder = leaseOf(await g.acquire({ scopes: ["global"] }));
        const waiter = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.settle();
        // Release and immediately try to barge in, without yielding in between.
        const released = holder.release();
        const barger = g.acquire({ scopes: ["global"] });
        await released;
        expect(await barger).toMatchObject({ ok: false, reason: "full" });
        expect(leaseOf(await waiter.promise)).toBeDefined();
      });
    });

    describe("rule 7: queue timeout", () => {
      test("a ticket not granted within its queue timeout ends with queue-timeout", async () => {
        const g = guardWith({ limits: { global: 1 } });
        leaseOf(await g.acquire({ scopes: ["global"] }));
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 10 * u }));
        await target.advance(5 * u);
        await target.settle();
        expect(t.done).toBe(false);
        await target.advance(10 * u);
        await target.settle();
        expect(await t.promise).toMatchObject({ ok: false, reason: "queue-timeout" });
        const s = await g.stats();
        expect(s.scopes.global).toMatchObject({ queued: 0, queue_timeouts: 1 });
      });

      test("a timed-out ticket leaves no slot behind", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const holder = leaseOf(await g.acquire({ scopes: ["global"] }));
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 4 * u }));
        await target.advance(8 * u);
        await target.settle();
        expect(await t.promise).toMatchObject({ reason: "queue-timeout" });
        await holder.release();
        expect(await inUse(g, "global")).toBe(0);
        leaseOf(await g.acquire({ scopes: ["global"] }));
      });

      test("a grant that races an abort: exactly one wins, and a grant that lost is released, never leaked", async () => {
        const g = guardWith({ limits: { global: 1 } });
        // Each round frees the slot the ticket waits for and aborts the ticket in the same tick:
        // release first (the store grants the ticket while its abort is on the way: the grant
        // must be given back), then abort first (the ticket leaves before the slot frees).
        for (const releaseFirst of [true, false, true, false]) {
          const holder = leaseOf(await g.acquire({ scopes: ["global"], leaseTtlMs: 1000 * u }));
          const ac = new AbortController();
          const waiter = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u, leaseTtlMs: 1000 * u, signal: ac.signal }));
          await target.settle();
          expect(waiter.done).toBe(false);
          let released: Promise<void>;
          if (releaseFirst) {
            released = holder.release();
            ac.abort();
          } else {
            ac.abort();
            released = holder.release();
          }
          await released;
          const result = await waiter.promise;
          // Whichever won, the slot is free once the winner is done: a lease held past its
          // holder's release, or a grant nobody holds, would keep it in use for 1000 units.
          if (result.ok) await result.lease.release();
          else expect(result.reason).toBe("aborted");
          await target.settle();
          expect(await inUse(g, "global")).toBe(0);
          const s = await g.stats();
          expect(s.scopes.global).toMatchObject({ in_use: 0, queued: 0 });
        }
        leaseOf(await g.acquire({ scopes: ["global"] }));
      });
    });

    describe("rule 8: cancellation", () => {
      test("aborting removes the ticket at once with reason aborted", async () => {
        const g = guardWith({ limits: { global: 1 } });
        leaseOf(await g.acquire({ scopes: ["global"] }));
        const ac = new AbortController();
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u, signal: ac.signal }));
        await target.settle();
        ac.abort();
        expect(await t.promise).toMatchObject({ ok: false, reason: "aborted" });
        const s = await g.stats();
        expect(s.scopes.global).toMatchObject({ queued: 0, aborted: 1 });
      });

      test("an already-aborted signal never queues", async () => {
        const g = guardWith({ limits: { global: 1 } });
        expect(await g.acquire({ scopes: ["global"], signal: AbortSignal.abort() })).toMatchObject({ ok: false, reason: "aborted" });
        expect(await inUse(g, "global")).toBe(0);
      });
    });

    describe("rule 9: leases expire", () => {
      test("a lease not renewed is reclaimed after its TTL and its slot dispatched", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const stale = leaseOf(await g.acquire({ scopes: ["global"], leaseTtlMs: 6 * u, autoRenew: false }));
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.advance(3 * u);
        await target.settle();
        expect(t.done).toBe(false);
        await target.advance(6 * u);
        await target.settle();
        leaseOf(await t.promise);
        expect((await g.stats()).scopes.global?.expired).toBe(1);
        expect(await stale.renew()).toBe(false);
        expect(stale.signal.aborted).toBe(true);
        expect(stale.signal.reason).toBeInstanceOf(SlotgateError);
      });

      test("automatic renewal keeps a lease alive past its TTL", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const lease = leaseOf(await g.acquire({ scopes: ["global"], leaseTtlMs: 6 * u }));
        for (let i = 0; i < 6; i++) {
          await target.advance(2 * u);
          await target.settle();
        }
        expect(lease.signal.aborted).toBe(false);
        expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
        expect((await g.stats()).scopes.global?.expired).toBe(0);
      });

      test("release is idempotent", async () => {
        const g = guardWith({ limits: { global: 2 } });
        const lease = leaseOf(await g.acquire({ scopes: ["global"] }));
        await lease.release();
        await lease.release();
        leaseOf(await g.acquire({ scopes: ["global"] }));
        const s = await g.stats();
        expect(s.scopes.global).toMatchObject({ in_use: 1, released: 1 });
      });
    });

    describe("rule 10: fencing", () => {
      test("every grant's fence is greater than every earlier one of the group", async () => {
        const g = guardWith({ limits: { global: 2 } });
        const fences: number[] = [];
        for (let i = 0; i < 5; i++) {
          const lease = leaseOf(await g.acquire({ scopes: ["global"] }));
          fences.push(lease.fence);
          if (i < 3) await lease.release();
        }
        const queued = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.settle();
        await g.configure({ limits: { global: 4 } });
        fences.push(leaseOf(await queued.promise).fence);
        for (let i = 1; i < fences.length; i++) expect(fences[i]!).toBeGreaterThan(fences[i - 1]!);
        expect((await g.stats()).fence).toBe(fences[fences.length - 1]);
      });
    });

    describe("rule 12: state loss", () => {
      test("after the store lost the group's state, the holder re-registers and nothing new is granted for one lease TTL", async () => {
        const g = guardWith({ limits: { global: 1 }, defaults: { leaseTtlMs: 6 * u } });
        const held = leaseOf(await g.acquire({ scopes: ["global"] }));
        const signal = held.signal;
        await target.loseState!();
        // The group looks empty now; a grant here would be a second holder of the only slot.
        const waiting = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 40 * u }));
        await target.advance(9 * u); // the window (one TTL) is over; the holder renewed (every 2 units) and re-registered
        await target.settle();
        expect(waiting.done).toBe(false);
        expect(held.held).toBe(true);
        expect(signal.aborted).toBe(false);
        const s = await g.stats();
        expect(s.scopes.global).toMatchObject({ in_use: 1, queued: 1 });
        expect(s.stateLoss?.reregistered).toBe(1);
        await held.release();
        const next = leaseOf(await waiting.promise);
        expect(next.fence).toBeGreaterThan(held.fence);
      });
    });

    describe("§3: stats", () => {
      test("every scope reports in_use, max, queued, peaks and counters", async () => {
        const g = guardWith({ limits: { global: 1, tenant: { perKey: 1 } }, backends: { api: { servers: { a: { max: 1 } } } } });
        const lease = leaseOf(await g.acquire({ scopes: ["global", "tenant:k"], backend: "api" }));
        expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ reason: "full" });
        const t = track(g.acquire({ scopes: ["global"], queueTimeoutMs: 100 * u }));
        await target.settle();
        let s = await g.stats();
        for (const name of ["global", "tenant", "tenant:k", "backend:api", "server:api/a"]) {
          expect(s.scopes[name], name).toMatchObject({
            in_use: expect.any(Number),
            queued: expect.any(Number),
            peak_in_use: expect.any(Number),
            peak_queued: expect.any(Number),
            granted: expect.any(Number),
            rejected_full: expect.any(Number),
            rejected_queue_full: expect.any(Number),
            queue_timeouts: expect.any(Number),
            aborted: expect.any(Number),
            expired: expect.any(Number),
            released: expect.any(Number),
          });
        }
        expect(s.scopes.global).toMatchObject({ in_use: 1, max: 1, queued: 1, peak_in_use: 1, peak_queued: 1, granted: 1, rejected_full: 1 });
        expect(s.scopes.tenant).toMatchObject({ in_use: 1, max: 1, keys: 1 });
        expect(s.scopes["server:api/a"]).toMatchObject({ in_use: 1, max: 1, up: true });
        await lease.release();
        leaseOf(await t.promise);
        s = await g.stats();
        expect(s.scopes.global).toMatchObject({ in_use: 1, queued: 0, granted: 2, released: 1 });
        expect(s.scopes["tenant:k"]).toBeUndefined();
        expect(s.scopes.tenant).toMatchObject({ in_use: 0, granted: 1, released: 1, keys: 0 });
        expect(s.queueWait.count).toBe(2);
        expect(s.queueWait.counts.reduce((a, b) => a + b, 0)).toBe(2);
      });

      test("stats are shared by every guard of the group", async () => {
        const group = `conf-shared-${process.pid}-${++groupSeq}`;
        const a = guardWith({ limits: { global: 2 } }, group);
        const b = guardWith({ limits: { global: 2 } }, group);
        leaseOf(await a.acquire({ scopes: ["global"] }));
        leaseOf(await b.acquire({ scopes: ["global"] }));
        expect(await a.acquire({ scopes: ["global"] })).toMatchObject({ reason: "full" });
        expect((await b.stats()).scopes.global).toMatchObject({ in_use: 2, rejected_full: 1 });
      });
    });

    describe("queue rules: fair queuing (F), disciplines (D), early rejection (E)", () => {
      queueCases({ target, test, guardWith: (options) => guardWith(options) });
    });

    describe("§7: bad input", () => {
      test("an unknown scope is a coded error, not a count", async () => {
        const g = guardWith({ limits: { global: 1 } });
        await expect(g.acquire({ scopes: ["nope"] })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
        await expect(g.acquire({ backend: "nope" })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
        expect(await inUse(g, "global")).toBe(0);
      });

      test("hostile key values are independent keys and never corrupt counts", async () => {
        const g = guardWith({ limits: { tenant: { perKey: 1 } } });
        const hostile = ["{x}", "a:b:c", "line\nbreak", "}{", "\u0000nul", "é\uD800", "x".repeat(1024), "tenant:acme"];
        const leases = await Promise.all(hostile.map(async (k) => leaseOf(await g.acquire({ scopes: [`tenant:${k}`] }))));
        for (const k of hostile) expect(await g.acquire({ scopes: [`tenant:${k}`] }), k).toMatchObject({ reason: "full" });
        await expect(g.acquire({ scopes: [`tenant:${"y".repeat(10_000)}`] })).rejects.toMatchObject({ code: "SLOTGATE_INVALID_OPTION" });
        await Promise.all(leases.map((l) => l.release()));
        const s = await g.stats();
        expect(s.scopes.tenant).toMatchObject({ in_use: 0, keys: 0, granted: hostile.length });
      });
    });

    describe("close()", () => {
      test("a grant that races close() is given back at once, not held until its TTL", async () => {
        const group = `conf-close-${process.pid}-${Date.now().toString(36)}-${++groupSeq}`;
        const closing = guardWith({ limits: { global: 1 } }, group);
        // The acquire is on its way to the store when close() runs: its grant arrives at a closed
        // guard, whose store handle must still take the release (SPEC: release works after close).
        const raced = closing.acquire({ scopes: ["global"], leaseTtlMs: 1000 * u });
        await closing.close();
        expect(await raced).toMatchObject({ ok: false, reason: "aborted" });
        await target.settle();
        const other = guardWith({ limits: { global: 1 } }, group);
        expect(await inUse(other, "global")).toBe(0);
        leaseOf(await other.acquire({ scopes: ["global"] }));
      });

      test("a lease still held is released by close(), and its own release() after close() is a no-op", async () => {
        const group = `conf-close-${process.pid}-${Date.now().toString(36)}-${++groupSeq}`;
        const closing = guardWith({ limits: { global: 1 } }, group);
        const lease = leaseOf(await closing.acquire({ scopes: ["global"], leaseTtlMs: 1000 * u }));
        await closing.close();
        await lease.release();
        const other = guardWith({ limits: { global: 1 } }, group);
        expect(await inUse(other, "global")).toBe(0);
        leaseOf(await other.acquire({ scopes: ["global"] }));
      });
    });

    describe("guard.run", () => {
      test("runs the work holding a slot and throws a coded rejection when none is granted", async () => {
        const g = guardWith({ limits: { global: 1 } });
        const result = await g.run({ scopes: ["global"] }, async (lease) => {
          await expect(g.run({ scopes: ["global"] }, () => "never")).rejects.toBeInstanceOf(SlotgateRejectedError);
          return lease.fence;
        });
        expect(result).toBeGreaterThan(0);
        expect(await inUse(g, "global")).toBe(0);
      });
    });
  });
}
