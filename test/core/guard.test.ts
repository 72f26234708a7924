/**
 * The guard's own behaviour, on top of any store: option validation, error codes, the outage
 * policy (SPEC §2 rule 11) and close(). Store faults are injected by wrapping the real memory
 * store, so every slot decision still comes from real code.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createGuard,
  createMemoryStore,
  SlotgateConfigError,
  SlotgateError,
  SlotgateRejectedError,
  type GroupStore,
  type GuardEvent,
  type SlotStore,
} from "../../src/index.js";
import { guardFactory } from "../../src/core/guard.js";
import { LocalFallback } from "../../src/core/local-fallback.js";
import { buildGroupSpec } from "../../src/core/spec.js";

/** The memory store, with a switch that makes every call fail as an unreachable store would. */
function flakyStore(): { store: SlotStore; down: (v: boolean) => void } {
  const inner = createMemoryStore();
  let isDown = false;
  const fault = () => new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", "connection refused (injected)", { retryable: true });
  const store: SlotStore = {
    kind: "flaky-memory",
    open(group, spec, options) {
      const h = inner.open(group, spec, options);
      const guarded =
        <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
        (...a: A): Promise<R> =>
          isDown ? Promise.reject(fault()) : fn(...a);
      const handle: GroupStore = {
        ready: guarded(h.ready.bind(h)),
        acquire: guarded(h.acquire.bind(h)),
        release: guarded(h.release.bind(h)),
        renew: guarded(h.renew.bind(h)),
        configure: guarded(h.configure.bind(h)),
        setServerState: guarded(h.setServerState.bind(h)),
        stats: guarded(h.stats.bind(h)),
        close: () => h.close(),
      };
      return handle;
    },
    readStats: (group) => (isDown ? Promise.reject(fault()) : inner.readStats(group)),
  };
  return { store, down: (v) => (isDown = v) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("options are validated at construction", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["negative limit", { limits: { global: -1 } }, "limits.global: expected an integer from 0 to 1000000000, got -1"],
    ["fractional limit", { limits: { global: 1.5 } }, "limits.global: expected an integer from 0 to 1000000000, got 1.5"],
    ["string limit", { limits: { global: "10" } }, 'limits.global: expected a number, { max, maxqueue? } or { perKey, maxqueue? }, got "10"'],
    ["max and perKey", { limits: { t: { max: 1, perKey: 1 } } }, "limits.t: expected exactly one of max or perKey, got an object"],
    ["unknown limit key", { limits: { t: { perkey: 1 } } }, 'limits.t.perkey: expected one of the keys max, perKey, maxqueue, got "perkey"'],
    [
      "bad balance",
      { backends: { api: { balance: "random", servers: { a: {} } } } },
      'backends.api.balance: expected one of "leastconn", "roundrobin", "first", got "random"',
    ],
    [
      "server max",
      { backends: { web_servers: { servers: { web1: { max: -1 } } } } },
      "backends.web_servers.servers.web1.max: expected an integer from 0 to 1000000000, got -1",
    ],
    ["weight range", { backends: { api: { servers: { a: { weight: 0 } } } } }, "backends.api.servers.a.weight: expected an integer from 1 to 256, got 0"],
    ["no servers", { backends: { api: { servers: {} } } }, "backends.api.servers: expected at least one server, got an object"],
    ["bad group", { group: "has space" }, 'group: expected a name of 1–128 characters from [A-Za-z0-9_.~:@-], not __proto__, got "has space"'],
    [
      "__proto__ limit",
      { limits: JSON.parse('{"__proto__": 3}') },
      'limits.__proto__: expected a name of 1–128 characters from [A-Za-z0-9_.~:@-], not __proto__, got "__proto__"',
    ],
    [
      "unknown option",
      { limit: {} },
      'limit: expected one of the keys store, group, limits, backends, queue, version, defaults, onStoreError, localShare, retryAfterMs, onEvent, got "limit"',
    ],
    ["policy", { onStoreError: "ignore" }, 'onStoreError: expected one of "fail-closed", "fail-open", "local", got "ignore"'],
    ["local needs share", { onStoreError: "local" }, 'localShare: expected a number in (0, 1] when onStoreError is "local", got undefined'],
    ["share range", { localShare: 2 }, "localShare: expected a number in (0, 1], got 2"],
    [
      "reserved name",
      { limits: { "backend:x": 1 } },
      'limits["backend:x"]: expected a limit name not starting with backend: or server: (declare those under backends), got "backend:x"',
    ],
    ["ttl", { defaults: { leaseTtlMs: 0 } }, "defaults.leaseTtlMs: expected a positive integer, got 0"],
    ["version 0", { version: 0 }, "version: expected a positive integer, got 0"],
    ["fractional version", { version: 1.5 }, "version: expected a positive integer, got 1.5"],
    ["version as a string", { version: "2" }, 'version: expected a positive integer, got "2"'],
  ];
  it.each(cases)("%s", (_name, options, message) => {
    let error: unknown;
    try {
      createGuard(options as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SlotgateConfigError);
    expect((error as SlotgateConfigError).code).toBe("SLOTGATE_INVALID_OPTION");
    expect((error as Error).message.split("\n")).toContain(message);
  });

  it("reports every problem at once, each with its path", () => {
    try {
      createGuard({ limits: { a: -1, b: "x" } as never, backends: { api: { servers: { s: { max: -2 } } } } });
      expect.unreachable();
    } catch (e) {
      expect((e as SlotgateConfigError).issues.map((i) => i.path)).toEqual(["limits.a", "limits.b", "backends.api.servers.s.max"]);
    }
  });

  it("keys named like Object.prototype's members are unknown keys or names, never prototypes", async () => {
    const own = (key: string, value: unknown) => Object.defineProperty({}, key, { value, enumerable: true, configurable: true, writable: true });
    const messages = (options: unknown): string[] => {
      try {
        createGuard(options as never);
      } catch (e) {
        expect(e).toBeInstanceOf(SlotgateConfigError);
        return (e as Error).message.split("\n");
      }
      return [];
    };
    expect(messages(own("constructor", { limits: { x: 1 } }))).toEqual([
      'constructor: expected one of the keys store, group, limits, backends, queue, version, defaults, onStoreError, localShare, retryAfterMs, onEvent, got "constructor"',
    ]);
    expect(messages({ limits: { t: own("__proto__", { max: 1 }) } })).toEqual([
      'limits.t.__proto__: expected one of the keys max, perKey, maxqueue, got "__proto__"',
      "limits.t: expected exactly one of max or perKey, got an object",
    ]);
    expect(messages({ backends: { api: { servers: JSON.parse('{"__proto__": {"max": 1}}') } } })).toEqual([
      'backends.api.servers.__proto__: expected a name of 1–128 characters from [A-Za-z0-9_.~:@-], not __proto__, got "__proto__"',
    ]);
    expect(messages({ backends: { api: { servers: { a: own("prototype", 1) } } } })).toEqual([
      'backends.api.servers.a.prototype: expected one of the keys max, maxqueue, weight, down, got "prototype"',
    ]);
    // Defaults read only their own two keys, as before; an inherited-looking key is left alone.
    const g = createGuard({
      limits: { constructor: 1 },
      backends: { prototype: { servers: { toString: {} } } },
      defaults: JSON.parse('{"__proto__": {"leaseTtlMs": 0}}'),
    });
    expect(({} as Record<string, unknown>).leaseTtlMs).toBeUndefined();
    expect(({} as Record<string, unknown>).max).toBeUndefined();
    const r = await g.acquire({ scopes: ["constructor"], server: "prototype/toString" });
    if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
    expect(r.lease.ttlMs).toBe(30_000);
    await r.lease.release();
    await g.close();
  });

  it("names inherited from Object.prototype are not scopes", async () => {
    const g = createGuard({ limits: { global: 1, constructor: 2 } });
    await expect(g.acquire({ scopes: ["toString"] })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
    await expect(g.acquire({ backend: "hasOwnProperty" })).rejects.toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE" });
    const r = await g.acquire({ scopes: ["constructor"] });
    expect(r.ok).toBe(true);
    expect((await g.stats()).scopes.constructor).toMatchObject({ in_use: 1, max: 2 });
    await g.close();
  });

  it("acquire options are checked with the same messages", async () => {
    const g = createGuard({ limits: { global: 1 } });
    await expect(g.acquire({ scopes: ["global"], priority: { class: 5000 } })).rejects.toThrow(
      "priority.class: expected an integer from -2047 to 2047, got 5000",
    );
    await expect(g.acquire({ scopes: ["global"], priority: { offsetMs: 600_000 } })).rejects.toThrow(
      "priority.offsetMs: expected an integer from -524287 to 524287, got 600000",
    );
    await expect(g.acquire({ scopes: ["global"], queueTimeoutMs: -1 })).rejects.toThrow("queueTimeoutMs:");
    await expect(g.acquire({ scopes: "global" as never })).rejects.toThrow('scopes: expected an array of scope names, got "global"');
    await g.close();
  });
});

describe("errors carry stable codes and survive duplicate copies of the package", () => {
  it("brands instanceof by code", () => {
    const rejected = new SlotgateRejectedError("queue-timeout", 1000);
    expect(rejected).toBeInstanceOf(SlotgateError);
    expect(rejected).toMatchObject({ code: "SLOTGATE_REJECTED", reason: "queue-timeout", retryAfterMs: 1000, name: "SlotgateRejectedError" });
    // A look-alike from another copy of the package (same Symbol.for brand) still matches.
    const foreign = Object.assign(new Error("x"), { code: "SLOTGATE_REJECTED", [Symbol.for("slotgate.error")]: "SLOTGATE_REJECTED" });
    expect(foreign).toBeInstanceOf(SlotgateError);
    expect(foreign).toBeInstanceOf(SlotgateRejectedError);
    expect(new Error("plain")).not.toBeInstanceOf(SlotgateError);
  });
});

describe("rule 11: store outage policy", () => {
  it("fail-closed rejects with unavailable and counts it", async () => {
    const { store, down } = flakyStore();
    const events: GuardEvent[] = [];
    const g = createGuard({ store, limits: { global: 1 }, onEvent: (e) => events.push(e) });
    down(true);
    expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "unavailable" });
    down(false);
    expect((await g.stats()).fallback).toMatchObject({ fail_closed: 1, fail_open: 0, local: 0 });
    expect(events).toEqual([expect.objectContaining({ type: "fallback", policy: "fail-closed" })]);
    await g.close();
  });

  it("fail-open admits with a marked lease and counts it", async () => {
    const { store, down } = flakyStore();
    const g = createGuard({ store, limits: { global: 1 }, onStoreError: "fail-open" });
    down(true);
    const r = await g.acquire({ scopes: ["global"] });
    expect(r).toMatchObject({ ok: true, lease: { fallback: "fail-open", fence: 0 } });
    if (r.ok) await r.lease.release();
    down(false);
    expect((await g.stats()).fallback.fail_open).toBe(1);
    await g.close();
  });

  it("local enforces max × localShare in process until the store is back", async () => {
    const { store, down } = flakyStore();
    const g = createGuard({ store, limits: { global: 10 }, onStoreError: "local", localShare: 0.3 });
    down(true);
    const granted = [];
    for (let i = 0; i < 5; i++) granted.push(await g.acquire({ scopes: ["global"] }));
    expect(granted.map((r) => r.ok)).toEqual([true, true, true, false, false]);
    expect(granted[3]).toMatchObject({ reason: "full" });
    expect(granted[0]).toMatchObject({ lease: { fallback: "local" } });
    down(false);
    const back = await g.acquire({ scopes: ["global"] });
    expect(back).toMatchObject({ ok: true });
    expect(back.ok && back.lease.fallback).toBeUndefined();
    expect((await g.stats()).fallback.local).toBe(5);
    await g.close();
  });

  it("local, shared by per-request guards (a Worker's isolate): one set of limits, no queue, outlives each guard", async () => {
    const { store, down } = flakyStore();
    const shared = new LocalFallback(createMemoryStore(), buildGroupSpec({ global: 4 }, undefined), 0.5, { perRequestGuards: true });
    const requestGuard = guardFactory(createMemoryStore, { localFallback: shared });
    const options = { store, limits: { global: 4 }, onStoreError: "local" as const, localShare: 0.5 };
    down(true);
    const first = requestGuard(options);
    const second = requestGuard(options);
    const a = await first.acquire({ scopes: ["global"] });
    const b = await second.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 });
    expect(a).toMatchObject({ ok: true, lease: { fallback: "local" } });
    expect(b).toMatchObject({ ok: true, lease: { fallback: "local" } });
    // 4 × 0.5 = 2, across both guards; no queue, whatever the request asked for.
    const third = requestGuard(options);
    const t0 = performance.now();
    expect(await third.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 })).toMatchObject({ ok: false, reason: "full" });
    expect(performance.now() - t0).toBeLessThan(1_000);
    // Closing a guard releases its lease and leaves the shared limits open for the next guard.
    await first.close();
    const fourth = requestGuard(options);
    expect(await fourth.acquire({ scopes: ["global"] })).toMatchObject({ ok: true, lease: { fallback: "local" } });
    await Promise.all([second.close(), third.close(), fourth.close()]);
    const fifth = requestGuard(options);
    expect(await fifth.acquire({ scopes: ["global"] })).toMatchObject({ ok: true });
    await fifth.close();
    await shared.close();
  });

  it("a lease whose renewals fail past its TTL is lost, with its signal aborted", async () => {
    vi.useFakeTimers();
    const { store, down } = flakyStore();
    const events: string[] = [];
    const g = createGuard({ store, limits: { global: 1 }, onEvent: (e) => events.push(e.type) });
    const r = await g.acquire({ scopes: ["global"], leaseTtlMs: 300 });
    if (!r.ok) throw new Error("expected a grant");
    down(true);
    // Renewals every 100 ms fail; the store would reclaim the lease at 300 ms.
    await vi.advanceTimersByTimeAsync(250);
    expect(r.lease.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(r.lease.signal.aborted).toBe(true);
    expect((r.lease.signal.reason as SlotgateError).code).toBe("SLOTGATE_LEASE_LOST");
    expect(events).toContain("renew-failed");
    expect(events).toContain("lease-lost");
    down(false);
    await g.close();
  });

  it("release never rejects, even when the store is down", async () => {
    const { store, down } = flakyStore();
    const g = createGuard({ store, limits: { global: 1 } });
    const r = await g.acquire({ scopes: ["global"] });
    if (!r.ok) throw new Error("expected a grant");
    down(true);
    await expect(r.lease.release()).resolves.toBeUndefined();
    down(false);
    expect((await g.stats()).fallback.store_errors).toBe(1);
    await g.close();
  });
});

describe("close", () => {
  it("ends waiting acquires with aborted and releases held leases", async () => {
    const store = createMemoryStore();
    const a = createGuard({ store, group: "g", limits: { global: 1 } });
    const b = createGuard({ store, group: "g", limits: { global: 1 } });
    const held = await a.acquire({ scopes: ["global"] });
    expect(held.ok).toBe(true);
    const waiting = a.acquire({ scopes: ["global"], queueTimeoutMs: 60_000 });
    await a.close();
    expect(await waiting).toMatchObject({ ok: false, reason: "aborted" });
    expect((await b.stats()).scopes.global).toMatchObject({ in_use: 0, queued: 0 });
    await expect(a.acquire({ scopes: ["global"] })).rejects.toMatchObject({ code: "SLOTGATE_CLOSED" });
    await b.close();
  });

  it("a lease is AsyncDisposable", async () => {
    const g = createGuard({ limits: { global: 1 } });
    {
      const r = await g.acquire({ scopes: ["global"] });
      if (!r.ok) throw new Error("expected a grant");
      await using lease = r.lease;
      expect(lease.held).toBe(true);
    }
    expect((await g.stats()).scopes.global?.in_use).toBe(0);
    await g.close();
  });
});
