/**
 * The cost model of the Durable Object store, counted at the stub. One RPC per uncontended
 * acquire, one per release, one `configure` per opened handle. No polling while queued: a queued
 * acquire is a single pending call.
 */
import { describe, expect, it } from "vitest";
import { createDurableObjectStore } from "../../src/cloudflare/index.js";
import { createGuard } from "../../src/index.js";
import { countingNamespace, freshGroup, sleep, until } from "./helpers.js";

describe("RPCs per operation", () => {
  it("one per uncontended acquire and one per release", async () => {
    const { namespace, calls } = countingNamespace();
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: freshGroup("count"), limits: { global: 5 } });
    const rounds = 20;
    const started = Date.now();
    for (let i = 0; i < rounds; i++) {
      const r = await guard.acquire({ scopes: ["global"], autoRenew: false });
      if (!r.ok) throw new Error("expected a grant");
      await r.lease.release();
    }
    const perRound = (Date.now() - started) / rounds;
    expect(calls.filter((c) => c === "configure")).toHaveLength(1);
    expect(calls.filter((c) => c === "acquire")).toHaveLength(rounds);
    expect(calls.filter((c) => c === "release")).toHaveLength(rounds);
    expect(calls).toHaveLength(1 + 2 * rounds);
    console.log(
      `[rpc] ${rounds} acquire+release rounds: ${calls.length} RPCs (1 configure + ${2 * rounds}), ${perRound.toFixed(1)} ms per round (local workerd)`,
    );
    await guard.close();
  });

  it("a queued acquire is one pending call, with no polling while it waits", async () => {
    const { namespace, calls } = countingNamespace();
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: freshGroup("queued"), limits: { global: 1 } });
    const holder = await guard.acquire({ scopes: ["global"], autoRenew: false });
    if (!holder.ok) throw new Error("expected a grant");
    const before = calls.length;
    const waiting = guard.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, autoRenew: false });
    await sleep(600);
    expect(calls.slice(before)).toEqual(["acquire"]);
    await holder.lease.release();
    const granted = await waiting;
    expect(granted.ok).toBe(true);
    expect(calls.slice(before)).toEqual(["acquire", "release"]);
    await guard.close();
  });

  it("an abort while queued costs one cancel call", async () => {
    const { namespace, calls } = countingNamespace();
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: freshGroup("abort"), limits: { global: 1 } });
    const holder = await guard.acquire({ scopes: ["global"], autoRenew: false });
    if (!holder.ok) throw new Error("expected a grant");
    const ac = new AbortController();
    const waiting = guard.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, signal: ac.signal });
    await until(async () => (await guard.stats()).tickets === 1);
    const before = calls.length;
    ac.abort();
    expect(await waiting).toMatchObject({ ok: false, reason: "aborted" });
    const stats = await guard.stats();
    expect(stats.scopes.global).toMatchObject({ queued: 0, aborted: 1 });
    expect(calls.slice(before)).toEqual(["cancel", "stats"]);
    await guard.close();
  });
});
