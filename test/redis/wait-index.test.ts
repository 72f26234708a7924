// White-box tests of the queue's wait index (key `waits`, includes/dispatch.lua) on a standalone
// redis-server: each ticket is filed under the one thing that blocks it, moves when that clears and
// something else blocks it, and a dispatch reads only the tickets that can fit: the Redis commands a
// release runs do not grow with the number of tickets waiting elsewhere, or behind it.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGroupSpec, type BackendsOption, type LimitsOption } from "../../src/core/spec.js";
import { canonicalSpecJson } from "../../src/core/spec-version.js";
import { groupKeys, KEY_SUFFIXES } from "../../src/stores/redis/keys.js";
import { REPLY, SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";

let server: RedisProcess | undefined;
let redis: Redis;
let groups = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  for (const def of Object.values(SCRIPTS)) redis.defineCommand(def.command, { lua: def.lua, numberOfKeys: def.numberOfKeys });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const key = (suffix: string, keys: string[]) => keys[KEY_SUFFIXES.indexOf(suffix)]!;

/** A fresh group with this spec, and its scripts as functions of their ARGV. */
async function group(limits: LimitsOption, backends: BackendsOption = {}) {
  const keys = groupKeys("wait-index:", `g${++groups}`);
  const run = (name: keyof typeof SCRIPTS, ...argv: (string | number)[]) =>
    (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown[]>>)[SCRIPTS[name].command]!(...keys, ...argv);
  expect((await run("configure", canonicalSpecJson(buildGroupSpec(limits, backends)), ""))[0]).toBe(REPLY.INSTALLED);
  let leases = 0;
  return {
    keys,
    run,
    /** An acquire that may queue for a minute; the lease id it is (or will be) granted under, and the reply. */
    async acquire(scopes: string[], opts: { backend?: string; server?: string; cls?: number } = {}) {
      const lease = `L${++leases}`;
      const reply = await run(
        "acquire",
        lease,
        "wait-index:nobody",
        0,
        opts.cls ?? 0,
        0,
        60_000,
        60_000,
        opts.backend ?? "",
        opts.server ?? "",
        0,
        0,
        60_000,
        ...scopes,
      );
      return { lease, reply };
    },
    /** Wait key -> ticket ids filed under it, in order. */
    async waits(): Promise<Record<string, string[]>> {
      const out: Record<string, string[]> = {};
      for (const m of await redis.zrange(key("waits", keys), 0, -1)) (out[m.slice(0, -32)] ??= []).push(m.slice(-16));
      return out;
    },
    /** Every ticket has exactly its one member in waits, and nothing else is there. */
    async consistent(): Promise<void> {
      const tickets = await redis.hgetall(key("tickets", keys));
      const members = await redis.zrange(key("waits", keys), 0, -1);
      expect(members.length).toBe(Object.keys(tickets).length);
      expect(await redis.zcard(key("queue", keys))).toBe(members.length);
      for (const [id, raw] of Object.entries(tickets)) {
        const t = JSON.parse(raw) as { w: string; o: string };
        expect(members).toContain(`${t.w}${t.o}${id}`);
      }
    },
  };
}

/** Redis commands run (Lua-inner included) by `fn`, by name, without the script call itself. */
async function commandsOf(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  await redis.config("RESETSTAT");
  await fn();
  const info = await redis.info("commandstats");
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) if (!["evalsha", "eval", "config", "info"].includes(m[1]!)) out[m[1]!] = Number(m[2]);
  return out;
}

describe("wait index", () => {
  it("files each ticket under what blocks it and moves it when that clears; grants follow queue order across keys", async () => {
    const g = await group({ A: 1, B: 1 }, { b: { balance: "leastconn", servers: { s1: { max: 1 }, s2: { max: 1, down: true } } } });
    const l1 = await g.acquire(["A", "B"]);
    expect(l1.reply[0]).toBe(REPLY.GRANTED);
    const l2 = await g.acquire([], { backend: "b" }); // takes s1: the pool has no eligible server left
    expect(l2.reply[0]).toBe(REPLY.GRANTED);
    const t1 = await g.acquire(["A", "B"]);
    const t2 = await g.acquire(["A"]);
    const t3 = await g.acquire([], { backend: "b" });
    const t4 = await g.acquire([], { backend: "b", server: "s2" });
    const queuedId = (t: { reply: unknown[] }): string => {
      expect(t.reply[0]).toBe(REPLY.QUEUED);
      return t.reply[1] as string;
    };
    const [id1, id2, id3, id4] = [queuedId(t1), queuedId(t2), queuedId(t3), queuedId(t4)];
    // The last full scope of the chain, the backend's pool, the pinned server that is down.
    expect(await g.waits()).toEqual({ "s1:B": [id1], "s1:A": [id2], "pb/": [id3], "ub/s2/": [id4] });
    await g.consistent();

    // s2 comes up: t3 (earlier) takes it. t4, pinned to it, stays: the server it waits for is
    // blocked again (full), and its scope clearing will clear it too.
    expect((await g.run("serverState", "b", "s2", 1))[0]).toBe(REPLY.DONE);
    expect(await redis.hexists(key("lease", g.keys), t3.lease)).toBe(1);
    expect(await g.waits()).toEqual({ "s1:B": [id1], "s1:A": [id2], "ub/s2/": [id4] });

    // Releasing A and B clears both keys: t1 comes first in queue order and takes both; A is
    // full again, so t2 stays where it is.
    expect((await g.run("release", l1.lease, ""))[0]).toBe(REPLY.RELEASED);
    expect(await redis.hexists(key("lease", g.keys), t1.lease)).toBe(1);
    expect(await g.waits()).toEqual({ "s1:A": [id2], "ub/s2/": [id4] });
    await g.consistent();

    expect((await g.run("cancel", id2, "aborted", t2.lease))[0]).toBe(REPLY.CANCELLED);
    expect((await g.run("release", t3.lease, ""))[0]).toBe(REPLY.RELEASED);
    expect(await redis.hexists(key("lease", g.keys), t4.lease)).toBe(1);
    expect(await g.waits()).toEqual({});
    await g.consistent();
  });

  it("a ticket that a cleared key cannot take moves to the key that blocks it, once", async () => {
    const g = await group({ global: 1, tenant: { perKey: 1 } });
    const holder = await g.acquire(["global", "tenant:a"]);
    const other = await g.acquire(["tenant:b"]);
    expect([holder.reply[0], other.reply[0]]).toEqual([REPLY.GRANTED, REPLY.GRANTED]);
    const t1 = await g.acquire(["global", "tenant:b"]); // both full: waits on tenant:b, the last
    const t2 = await g.acquire(["global", "tenant:c"]); // waits on global
    expect(await g.waits()).toEqual({ "s8:tenant:b": [t1.reply[1]], "s6:global": [t2.reply[1]] });
    // tenant:b clears, global is still full: t1 moves there, behind nobody and before t2.
    expect((await g.run("release", other.lease, ""))[0]).toBe(REPLY.RELEASED);
    expect(await g.waits()).toEqual({ "s6:global": [t1.reply[1], t2.reply[1]] });
    // global clears: t1 first.
    expect((await g.run("release", holder.lease, ""))[0]).toBe(REPLY.RELEASED);
    expect(await redis.hexists(key("lease", g.keys), t1.lease)).toBe(1);
    expect(await g.waits()).toEqual({ "s6:global": [t2.reply[1]] });
    await g.consistent();
  });

  it("scope names with any byte keep their own keys", async () => {
    const g = await group({ tenant: { perKey: 1 } });
    const names = ["tenant:a", "tenant:a:1", "tenant:a\u0000", "tenant:{x}\n", "tenant:ü"];
    for (const n of names) expect((await g.acquire([n])).reply[0]).toBe(REPLY.GRANTED);
    const tickets = [];
    for (const n of names) tickets.push((await g.acquire([n])).reply[1] as string);
    const waits = await g.waits();
    expect(Object.keys(waits)).toHaveLength(names.length);
    for (const [i, n] of names.entries()) expect(waits[`s${Buffer.byteLength(n)}:${n}`]).toEqual([tickets[i]]);
    await g.consistent();
  });

  it("what a release runs does not grow with the tickets waiting on another key, nor with those behind the one it grants", async () => {
    const measure = async (queued: number) => {
      const g = await group({ tenant: { perKey: 1 }, other: 1 });
      const hot = await g.acquire(["tenant:hot"]);
      const pending = [];
      for (let i = 0; i < queued; i++) pending.push(g.acquire(["tenant:hot"]));
      const tickets = await Promise.all(pending);
      // keyed scopes: the general paths; a named scope: the fast paths
      const lk = await g.acquire(["tenant:k"]);
      const keyed = await commandsOf(() => g.run("release", lk.lease, ""));
      const ln = await g.acquire(["other"]);
      const named = await commandsOf(() => g.run("release", ln.lease, ""));
      const handOff = await commandsOf(() => g.run("release", hot.lease, ""));
      expect(await redis.hexists(key("lease", g.keys), tickets[0]!.lease)).toBe(1);
      return { keyed, named, handOff };
    };
    const few = await measure(5);
    const many = await measure(2_000);
    expect(many).toEqual(few);
  }, 60_000);
});
