// White-box tests of the Redis store's scripts on a standalone redis-server: the NOSCRIPT path,
// key naming and escaping, the server clock, queue score precision, and round trips per call.
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createGuard, type Guard, type GroupSpec, type GroupStore } from "../../src/index.js";
import { createRedisStore, type RedisSlotStore } from "../../src/stores/redis/index.js";
import { groupKeys, groupTag, KEY_SUFFIXES } from "../../src/stores/redis/keys.js";
import { SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";

let server: RedisProcess | undefined;
let redis: Redis;
const guards: Guard[] = [];
const handles: GroupStore[] = [];
let seq = 0;
const unique = (name: string) => `${name}-${++seq}`;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  await redis.ping();
});

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(guards.splice(0).map((g) => g.close()));
  await Promise.all(handles.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

function guard(store: RedisSlotStore, options: Parameters<typeof createGuard>[0] = {}): Guard {
  const g = createGuard({ store, group: unique("g"), ...options });
  guards.push(g);
  return g;
}

const spec = (limits: GroupSpec["limits"], backends: GroupSpec["backends"] = {}): GroupSpec => ({ limits, backends });

async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

describe("scripts", () => {
  it("every script opens with a header listing its KEYS, ARGV and output", () => {
    for (const def of Object.values(SCRIPTS)) {
      const header = def.lua.slice(0, def.lua.indexOf("]]"));
      expect(def.lua.startsWith(`--[[\n  ${def.command}:`)).toBe(true);
      expect(def.numberOfKeys).toBe(KEY_SUFFIXES.length);
      for (let i = 1; i <= def.numberOfKeys; i++) expect(header).toContain(`KEYS[${i}]`);
      expect(header).toMatch(/ARGV\[1|\(none\)/);
      expect(header).toContain("Output:");
    }
  });

  it("every operation still works after SCRIPT FLUSH (the NOSCRIPT path of defineCommand)", async () => {
    const store = createRedisStore({ redis });
    const g = guard(store, { limits: { global: 1 }, backends: { api: { servers: { a: {}, b: {} } } } });
    const flush = () => redis.script("FLUSH");

    await flush();
    const lease = await g.acquire({ scopes: ["global"], leaseTtlMs: 60_000 }); // acquire (+ configure on first use)
    if (!lease.ok) throw new Error("expected a grant");
    await flush();
    expect(await lease.lease.renew()).toBe(true); // renew
    await flush();
    const waiting = g.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 }); // acquire → queued
    await sleep(30);
    await flush();
    await lease.lease.release(); // release → dispatch → wake-up
    const second = await waiting;
    expect(second.ok).toBe(true);
    await flush();
    const ac = new AbortController();
    const third = g.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, signal: ac.signal });
    await sleep(30);
    await flush();
    ac.abort(); // cancel
    expect(await third).toMatchObject({ ok: false, reason: "aborted" });
    await flush();
    await g.configure({ limits: { global: 2 } }); // configure
    await flush();
    await g.setServerState("api", "b", "down"); // server-state
    await flush();
    expect((await g.stats()).scopes.global).toMatchObject({ in_use: 1, max: 2, aborted: 1 }); // stats
    // sweep and claim have no public entry point: call the registered commands directly.
    const keys = groupKeys("slotgate:", g.group);
    const client = redis as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown[]>>;
    await flush();
    expect(await client[SCRIPTS.sweep.command]!(...keys)).toEqual([expect.any(Number)]);
    await flush();
    expect(await client[SCRIPTS.claim.command]!(...keys, "0000000000000999")).toEqual([expect.any(Number), 0, ""]);
  });

  it("replies for a group whose spec is gone make the store push it again", async () => {
    const store = createRedisStore({ redis });
    const g = guard(store, { limits: { global: 1 } });
    expect((await g.acquire({ scopes: ["global"] })).ok).toBe(true);
    await redis.del(groupKeys("slotgate:", g.group)[0]!); // the cfg key
    expect(await g.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
  });
});

describe("keys", () => {
  it("hostile group names and scope values never create keys outside the group's hash tag", async () => {
    const store = createRedisStore({ redis, prefix: "hk:" });
    const hostileGroups = ["a}b{c", "{x}", "}{", "x:y", "..", "%7B", "a\u0000b", "é\uD800", "line\nbreak", "g".repeat(300)];
    const hostileKeys = ["{x}", "a:b:c", "line\nbreak", "}{", "\u0000nul", "é\uD800", "x".repeat(1024), "tenant:acme", "%", "\\"];
    for (const group of hostileGroups) {
      // Straight to the store: the guard would reject these group names.
      const h = store.open(group, spec({ tenant: { max: 1, maxqueue: null, keyed: true } }));
      handles.push(h);
      for (const k of hostileKeys) {
        const request = { scopes: [`tenant:${k}`], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 0, leaseTtlMs: 60_000 };
        expect((await h.acquire(request)).ok, `${group} / ${k}`).toBe(true);
        expect(await h.acquire(request), `${group} / ${k}`).toMatchObject({ ok: false, reason: "full" });
      }
      const stats = await h.stats();
      expect(stats.scopes.tenant).toMatchObject({ in_use: hostileKeys.length, keys: hostileKeys.length });
      for (const k of hostileKeys) expect(stats.scopes[`tenant:${k}`]?.in_use, k).toBe(1);
    }

    const tags = hostileGroups.map(groupTag);
    expect(new Set(tags).size).toBe(hostileGroups.length);
    for (const tag of tags) expect(tag).not.toMatch(/[{}]/);
    const keys = (await allKeys()).filter((k) => k.startsWith("hk:"));
    for (const key of keys) {
      // Redis hashes the text between the first { and the first } after it.
      const open = key.indexOf("{");
      const close = key.indexOf("}", open);
      const tag = key.slice(open + 1, close);
      expect(tags, key).toContain(tag);
      expect(KEY_SUFFIXES, key).toContain(key.slice(close + 2));
      expect(key.slice(0, open)).toBe("hk:");
    }
    // Every group wrote under its own tag only, and no more keys than the layout has.
    for (const tag of tags) {
      const mine = keys.filter((k) => k.startsWith(`hk:{${tag}}:`));
      expect(mine.length).toBeGreaterThan(0);
      expect(mine.length).toBeLessThanOrEqual(KEY_SUFFIXES.length);
    }
  });

  it("the group tag keeps readable names readable and maps every other name one-to-one", () => {
    expect(groupTag("shop")).toBe("shop");
    expect(groupTag("a.b~c:d@e-f_g")).toBe("a.b~c:d@e-f_g");
    expect(groupTag("a{b}")).toBe("a%7Bb%7D");
    expect(groupTag("%7B")).toBe("%257B");
    expect(groupTag("\uD800")).not.toBe(groupTag("\uDBFF"));
    expect(groupKeys("slotgate:", "shop")[0]).toBe("slotgate:{shop}:cfg");
  });

  it("rejects a prefix or a client keyPrefix that would move the hash tag", () => {
    expect(() => createRedisStore({ redis, prefix: "a{b}:" })).toThrow(/prefix: expected .* without \{ or \}/);
    const prefixed = new Redis({ lazyConnect: true, keyPrefix: "{app}:" });
    expect(() => createRedisStore({ redis: prefixed })).toThrow(/keyPrefix/);
    prefixed.disconnect();
    expect(() => createRedisStore({ redis, sweepIntervalMs: 0 })).toThrow(/sweepIntervalMs: expected an integer from 1/);
    expect(() => createRedisStore({ redis: {} as Redis })).toThrow(/redis: expected an ioredis client/);
  });

  it("works behind a client keyPrefix, wake-ups included", async () => {
    const prefixed = new Redis(server!.url, { keyPrefix: "app:" });
    try {
      await prefixed.ping();
      const g = createGuard({ store: createRedisStore({ redis: prefixed, safetyRecheckMs: 60_000 }), group: unique("kp"), limits: { global: 1 } });
      guards.push(g);
      const first = await g.acquire({ scopes: ["global"] });
      expect(first.ok).toBe(true);
      const waiting = g.acquire({ scopes: ["global"], queueTimeoutMs: 5_000 });
      await sleep(30);
      const released = Date.now();
      if (first.ok) await first.lease.release();
      expect((await waiting).ok).toBe(true);
      expect(Date.now() - released).toBeLessThan(500);
      expect((await allKeys()).some((k) => k.startsWith(`app:slotgate:{${g.group}}:`))).toBe(true);
      await g.close();
    } finally {
      prefixed.disconnect();
    }
  });
});

describe("clock", () => {
  it("expiry follows the Redis clock (TIME), not a client whose Date.now is off by an hour", async () => {
    for (const shift of [3_600_000, -3_600_000]) {
      const real = Date.now.bind(Date);
      vi.spyOn(Date, "now").mockImplementation(() => real() + shift);
      const g = guard(createRedisStore({ redis }), { limits: { global: 1 } });
      const [sec, usec] = await redis.time();
      const serverNow = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      const r = await g.acquire({ scopes: ["global"], leaseTtlMs: 200, autoRenew: false });
      if (!r.ok) throw new Error("expected a grant");
      const expiresAt = (await redis.zscore(groupKeys("slotgate:", g.group)[3]!, r.lease.id))!;
      expect(Number(expiresAt) - serverNow).toBeGreaterThanOrEqual(200);
      expect(Number(expiresAt) - serverNow).toBeLessThan(400);
      expect((await g.stats()).scopes.global?.in_use).toBe(1);
      await sleep(350);
      expect((await g.stats()).scopes.global).toMatchObject({ in_use: 0, expired: 1 });
      vi.restoreAllMocks();
    }
  });
});

describe("the test-only clock", () => {
  it("a cfg field \\0clock sets the clock and configure keeps it; a spec cannot write it", async () => {
    // Straight to the store: the guard would refuse the scope name.
    const name = unique("clock");
    const h = createRedisStore({ redis }).open(
      name,
      spec({ global: { max: 1, maxqueue: null, keyed: false }, "\0clock": { max: 1, maxqueue: null, keyed: false } }),
    );
    handles.push(h);
    await h.stats(); // the spec is pushed
    const cfg = groupKeys("slotgate:", name)[0]!;
    expect(await redis.hget(cfg, "\0clock")).toBeNull(); // that scope's limits are the field "s\0clock"
    expect(await redis.hget(cfg, "s\0clock")).not.toBeNull();
    await redis.hset(cfg, "\0clock", 5_000_000);
    expect((await h.stats()).now).toBe(5_000_000);
    const r = await h.acquire({ scopes: ["global"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 0, leaseTtlMs: 1_000 });
    if (!r.ok) throw new Error("expected a grant");
    expect(r.lease.expiresAt).toBe(5_001_000);
    await h.configure(spec({ global: { max: 2, maxqueue: null, keyed: false } }), null);
    expect(await redis.hget(cfg, "\0clock")).toBe("5000000");
    await redis.hset(cfg, "\0clock", 5_001_000);
    expect((await h.stats()).scopes.global).toMatchObject({ in_use: 0, expired: 1, max: 2 });
  });
});

describe("queue order", () => {
  it("scores keep class, offset and arrival apart at the extremes of both ranges", async () => {
    const g = guard(createRedisStore({ redis }), { limits: { global: 1 } });
    const holder = await g.acquire({ scopes: ["global"] });
    if (!holder.ok) throw new Error("expected a grant");
    const entries = [
      { label: "c2047+max", cls: 2047, offsetMs: 524_287 },
      { label: "c2047-max", cls: 2047, offsetMs: -524_287 },
      { label: "c-2047+max", cls: -2047, offsetMs: 524_287 },
      { label: "c-2047-max", cls: -2047, offsetMs: -524_287 },
      { label: "c-2047-max(2)", cls: -2047, offsetMs: -524_287 },
      { label: "c0", cls: 0, offsetMs: 0 },
      { label: "c-2046-max", cls: -2046, offsetMs: -524_287 },
      { label: "c2046+max", cls: 2046, offsetMs: 524_287 },
    ];
    const order: string[] = [];
    const done: Promise<void>[] = [];
    for (const e of entries) {
      const p = g.acquire({ scopes: ["global"], queueTimeoutMs: 20_000, priority: { class: e.cls, offsetMs: e.offsetMs } });
      done.push(
        p.then(async (r) => {
          order.push(e.label);
          if (r.ok) await r.lease.release();
        }),
      );
      await sleep(5);
    }
    const queue = groupKeys("slotgate:", g.group)[5]!;
    const scored = await redis.zrange(queue, 0, -1, "WITHSCORES");
    const scores = scored.filter((_, i) => i % 2 === 1).map(Number);
    for (const s of scores) {
      expect(Number.isSafeInteger(s)).toBe(true);
      expect(s).toBeLessThan(2 ** 53);
      expect(s).toBeGreaterThan(0);
    }
    await holder.lease.release();
    await Promise.all(done);
    expect(order).toEqual(["c-2047-max", "c-2047-max(2)", "c-2047+max", "c-2046-max", "c0", "c2046+max", "c2047-max", "c2047+max"]);
    // Equal scores sort by member: the ticket id is the zero-padded arrival sequence.
    expect(scored.filter((_, i) => i % 2 === 0).every((id) => /^\d{16}$/.test(id))).toBe(true);
  });
});

describe("round trips", () => {
  it("acquire, release, renew and a rejection are one script call each; waiting costs nothing", async () => {
    const admin = new Redis(server!.url);
    try {
      const store = createRedisStore({ redis, sweepIntervalMs: 60_000, safetyRecheckMs: 60_000 });
      const g = guard(store, { limits: { global: 1 } });
      await g.stats(); // pushes the spec and loads the scripts first
      // Client side: every command the store's connection sends. Server side: scripts run
      // (commands called from inside Lua count in commandstats too, so only EVAL/EVALSHA/FCALL say
      // how many round trips there were).
      const sent = vi.spyOn(redis, "sendCommand");
      const measure = async <T>(fn: () => Promise<T>): Promise<{ value: T; sent: number; scripts: number }> => {
        await admin.config("RESETSTAT");
        sent.mockClear();
        const value = await fn();
        const info = await admin.info("commandstats");
        const calls = (name: string) => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, "m").exec(info)?.[1] ?? 0);
        return { value, sent: sent.mock.calls.length, scripts: calls("evalsha") + calls("eval") + calls("fcall") };
      };

      const acquire = await measure(() => g.acquire({ scopes: ["global"], leaseTtlMs: 30_000 }));
      expect(acquire).toMatchObject({ value: { ok: true }, sent: 1, scripts: 1 });
      const lease = acquire.value.ok ? acquire.value.lease : undefined;
      expect(await measure(() => lease!.renew())).toMatchObject({ value: true, sent: 1, scripts: 1 });
      expect(await measure(() => g.acquire({ scopes: ["global"] }))).toMatchObject({ value: { ok: false, reason: "full" }, sent: 1, scripts: 1 });

      // A queued acquire: one call to queue, then nothing at all while it waits ...
      let waiting!: ReturnType<Guard["acquire"]>;
      const queued = await measure(async () => {
        waiting = g.acquire({ scopes: ["global"], queueTimeoutMs: 30_000 });
        await sleep(300);
      });
      expect(queued).toMatchObject({ sent: 1, scripts: 1 });
      // ... and the release that frees the slot wakes it with a publish from inside its script.
      const wake = await measure(async () => {
        await lease!.release();
        return waiting;
      });
      expect(wake).toMatchObject({ value: { ok: true }, sent: 1, scripts: 1 });
      const second = wake.value.ok ? wake.value.lease : undefined;
      expect(await measure(() => second!.release())).toMatchObject({ sent: 1, scripts: 1 });
    } finally {
      admin.disconnect();
    }
  });
});
