// Batching: what one store instance asks of one group in the same turn of the event loop, while
// another call of the group is in flight, goes to Redis as one call of the batch script, and each
// caller still gets its own answer. A call made while none is in flight goes out at once, alone.
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createGuard, type Guard } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { DEFAULT_PREFIX, groupKeys } from "../../src/stores/redis/keys.js";
import { REPLY } from "../../src/stores/redis/scripts/replies.js";
import { LIBRARY, SCRIPTS } from "../../src/stores/redis/scripts/index.js";
import { startRedis, type RedisProcess } from "../harness/redis.js";

let server: RedisProcess | undefined;
let redis: Redis;
let admin: Redis;
const guards: Guard[] = [];
let seq = 0;
type Granted = { ok: true; lease: { fence: number } };

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  admin = new Redis(server.url);
  await redis.ping();
});

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(guards.splice(0).map((g) => g.close()));
});

afterAll(async () => {
  redis?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

function guard(limits: NonNullable<Parameters<typeof createGuard>[0]>["limits"]): Guard {
  const store = createRedisStore({ redis, sweepIntervalMs: 60_000, safetyRecheckMs: 60_000 });
  const g = createGuard({ store, group: `batch-${++seq}`, limits });
  guards.push(g);
  return g;
}

/** The script calls Redis ran while fn did, by script (EVALSHA/EVAL by sha, FCALL by function name), and what fn returned. */
async function scriptCalls<T>(fn: () => Promise<T>): Promise<{ value: T; batch: number; other: number }> {
  const sent = vi.spyOn(redis, "sendCommand");
  const batchSha = (await import("node:crypto")).createHash("sha1").update(SCRIPTS.batch.lua).digest("hex");
  sent.mockClear();
  const value = await fn();
  let batch = 0;
  let other = 0;
  for (const [command] of sent.mock.calls) {
    const c = command as unknown as { name: string; args: unknown[] };
    if (c.name !== "evalsha" && c.name !== "eval" && c.name !== "fcall") continue;
    if (c.args[0] === batchSha || c.args[0] === SCRIPTS.batch.lua || c.args[0] === LIBRARY.functions.batch) batch++;
    else other++;
  }
  sent.mockRestore();
  return { value, batch, other };
}

describe("batching", () => {
  it("acquires made in one turn go out as one call; each caller gets its own result", async () => {
    const g = guard({ global: 3, other: 1, first: 1 });
    await g.stats(); // the spec is pushed
    const { value, batch, other } = await scriptCalls(() =>
      Promise.all([
        g.acquire({ scopes: ["first"] }), // nothing in flight: goes out at once, alone
        g.acquire({ scopes: ["global"] }),
        g.acquire({ scopes: ["global"] }),
        g.acquire({ scopes: ["nope"] }).then(
          () => "no error",
          (error: unknown) => (error as { code?: string }).code,
        ),
        g.acquire({ scopes: ["global"] }),
        g.acquire({ scopes: ["global"] }),
        g.acquire({ scopes: ["other"] }),
      ]),
    );
    expect({ batch, other }).toEqual({ batch: 1, other: 1 });
    const [, a, b, unknown, c, d, e] = value as unknown as [Granted, Granted, Granted, string, Granted, { ok: false; reason: string }, Granted];
    expect(unknown).toBe("SLOTGATE_UNKNOWN_SCOPE");
    // In arrival order: three grants on global, the fourth is full; other is independent.
    expect([a, b, c, e].map((r) => r.ok)).toEqual([true, true, true, true]);
    expect(d).toMatchObject({ ok: false, reason: "full" });
    const fences = [a, b, c, e].map((r) => r.lease.fence);
    expect([...fences].sort((x, y) => x - y)).toEqual(fences);
    const stats = await g.stats();
    expect(stats.scopes.global).toMatchObject({ in_use: 3, granted: 3, rejected_full: 1 });
  });

  it("a release and an acquire of one turn keep their order: the acquire gets the freed slot", async () => {
    const g = guard({ global: 1, other: 1 });
    const first = await g.acquire({ scopes: ["global"] });
    if (!first.ok) throw new Error("expected a grant");
    const { value, batch } = await scriptCalls(() => Promise.all([g.acquire({ scopes: ["other"] }), first.lease.release(), g.acquire({ scopes: ["global"] })]));
    expect(batch).toBe(1);
    expect(value[2]).toMatchObject({ ok: true });
    if (value[2].ok) await value[2].lease.release();
  });

  it("a waiter of this node is woken through the batch reply, one on another node by its publish", async () => {
    const g = guard({ global: 2, other: 1 });
    const store2 = createRedisStore({ redis: new Redis(server!.url), sweepIntervalMs: 60_000, safetyRecheckMs: 60_000 });
    const g2 = createGuard({ store: store2, group: g.group, limits: { global: 2, other: 1 } });
    guards.push(g2);
    const held = await Promise.all([g.acquire({ scopes: ["global"] }), g.acquire({ scopes: ["global"] })]);
    const waitingHere = g.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const waitingThere = g2.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Both releases in one batch: the first grant goes to the earlier ticket, the second to the later.
    const { batch } = await scriptCalls(() =>
      Promise.all([g.stats(), g.acquire({ scopes: ["other"] }), ...held.map((r) => (r.ok ? r.lease.release() : undefined))]),
    );
    expect(batch).toBe(1);
    const [here, there] = await Promise.all([waitingHere, waitingThere]);
    expect(here).toMatchObject({ ok: true });
    expect(there).toMatchObject({ ok: true });
    await Promise.all([here, there].map((r) => (r.ok ? r.lease.release() : undefined)));
    expect((await g.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 4, released: 4 });
    await g2.close();
    (store2 as unknown as { client: Redis }).client.disconnect();
  });

  it("a burst is cut into calls of at most 128 ops, in order", async () => {
    const g = guard({ global: 250 });
    await g.stats();
    const { value, batch, other } = await scriptCalls(() => Promise.all(Array.from({ length: 300 }, () => g.acquire({ scopes: ["global"] }))));
    // The first goes out at once, alone; the other 299 wait for it: 128 + 128 + 43.
    expect({ batch, other }).toEqual({ batch: 3, other: 1 });
    const granted = value.map((r) => r.ok);
    expect(granted.slice(0, 250).every(Boolean)).toBe(true);
    expect(granted.slice(250).some(Boolean)).toBe(false);
  });

  it("lease records are written once per batch: a lease granted and ended in one call leaves nothing, a lease id in use is refused", async () => {
    const g = guard({ global: 5 });
    await g.stats();
    const keys = groupKeys(DEFAULT_PREFIX, `batch-${seq}`);
    // slotgateAcquire's arguments (acquire.lua): lease id, channel, sharded, class, offset, queue
    // timeout, ttl, backend, server, known epoch, known fence, window, scopes.
    const acquire = (id: string) => ["a", 13, id, "", 0, 0, 0, 0, 30_000, "", "", 0, 0, 0, "global"];
    const release = (id: string) => ["r", 2, id, ""];
    const batch = (...ops: (string | number)[][]) => redis.eval(SCRIPTS.batch.lua, keys.length, ...keys, "", ...ops.flat()) as Promise<unknown[][]>;
    const [, a, r] = await batch(acquire("one"), release("one"));
    expect([a![0], r![0]]).toEqual([REPLY.GRANTED, REPLY.RELEASED]);
    expect([await redis.hlen(keys[4]!), await redis.zcard(keys[3]!)]).toEqual([0, 0]);
    // Granted in this call (the buffer) or in an earlier one (the records read up front): in use.
    const [, first, twice, stored] = await batch(acquire("two"), acquire("two"), release("missing"));
    expect([first![0], twice![0], twice![1], stored![0]]).toEqual([REPLY.GRANTED, REPLY.BAD_REQUEST, "lease id in use", REPLY.NOT_FOUND]);
    const [, again, gone] = await batch(acquire("two"), release("two"));
    expect([again![0], again![1], gone![0]]).toEqual([REPLY.BAD_REQUEST, "lease id in use", REPLY.RELEASED]);
    expect([await redis.hlen(keys[4]!), await redis.zcard(keys[3]!)]).toEqual([0, 0]);
    expect((await g.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 2, released: 2 });
  });

  it("a call made while none of the group's calls is in flight goes out at once, as its own script", async () => {
    const g = guard({ global: 1 });
    await g.stats();
    const { value, batch, other } = await scriptCalls(() => g.acquire({ scopes: ["global"] }));
    expect(value).toMatchObject({ ok: true });
    expect({ batch, other }).toEqual({ batch: 0, other: 1 });
  });
});
