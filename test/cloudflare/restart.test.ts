/**
 * Persistence across an object restart (`state.abort()` from inside the object). Holders, the
 * fence counter, the spec, the alarm, and runtime server states survive. The next fence is
 * greater. A waiter whose call broke gets a retryable store fault. The client rebuilds its stub,
 * and idempotent calls go through.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDurableObjectStore } from "../../src/cloudflare/index.js";
import { SlotgateError, createGuard, type LeaseGrant, type StoreAcquireResult } from "../../src/index.js";
import { freshGroup, inspect, request, restart, sleep, spec, until } from "./helpers.js";

const store = createDurableObjectStore({ namespace: env.SLOT_GROUP });

function grant(r: StoreAcquireResult): LeaseGrant {
  if (!r.ok) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
  return r.lease;
}

describe("SlotGroup restart", () => {
  it("keeps holders and the fence, never reissues a fence, and breaks queued calls with a retryable fault", async () => {
    const group = freshGroup("restart");
    const handle = store.open(group, spec({ global: 2 }));
    const a = grant(await handle.acquire(request(["global"])));
    const b = grant(await handle.acquire(request(["global"])));
    const queued = handle.acquire(request(["global"], { queueTimeoutMs: 20_000 })).then(
      (r) => ({ ok: r }),
      (e: unknown) => ({ error: e }),
    );
    await until(async () => (await handle.stats()).tickets === 1);
    const before = await inspect(group);
    expect(before).toMatchObject({ leases: 2, fence: b.fence });

    await restart(group);

    const broken = await queued;
    expect(broken).toMatchObject({ error: { code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true } });
    expect((broken as { error: unknown }).error).toBeInstanceOf(SlotgateError);

    // The same handle: its stub broke with the restart. It is rebuilt, and the call goes through.
    const stats = await handle.stats();
    expect(stats).toMatchObject({ holders: 2, tickets: 0, fence: b.fence });
    expect(stats.scopes.global).toMatchObject({ in_use: 2, max: 2, queued: 0 });
    const after = await inspect(group);
    expect(after.instance).not.toBe(before.instance);
    expect(after).toMatchObject({ leases: 2, fence: b.fence, alarm: Math.min(a.expiresAt, b.expiresAt) });

    // The holders' leases are still theirs: renew and release by lease id work.
    expect(await handle.renew(a.id, 30_000)).toMatchObject({ ok: true });
    expect(await handle.acquire(request(["global"]))).toEqual({ ok: false, reason: "full" });
    expect(await handle.release(b.id)).toBe(true);
    const c = grant(await handle.acquire(request(["global"])));
    expect(c.fence).toBeGreaterThan(b.fence);
  });

  it("keeps the spec's version: after a restart a lower version is still kept out, an equal one with other limits refused", async () => {
    const group = freshGroup("version");
    const v3 = store.open(group, spec({ global: 3 }), { version: 3 });
    expect(await v3.ready()).toEqual({ installed: true, storedVersion: 3 });
    await restart(group);
    expect(await store.open(group, spec({ global: 9 }), { version: 2 }).ready()).toEqual({ installed: false, storedVersion: 3 });
    await expect(store.open(group, spec({ global: 4 }), { version: 3 }).ready()).rejects.toMatchObject({
      code: "SLOTGATE_SPEC_CONFLICT",
      message: expect.stringContaining("global max 3 (stored) vs 4 (this node)"),
    });
    expect((await v3.stats()).scopes.global).toMatchObject({ max: 3 });
  });

  it("restores the fence even when no lease is left", async () => {
    const group = freshGroup("fence-only");
    const handle = store.open(group, spec({ global: 1 }));
    let last = 0;
    for (let i = 0; i < 3; i++) {
      const lease = grant(await handle.acquire(request(["global"])));
      last = lease.fence;
      await handle.release(lease.id);
    }
    await restart(group);
    // This handle's stub broke with the restart, and nothing has noticed yet. An acquire is never
    // retried (it may have been granted before the break), so the first one may fail with a
    // retryable fault. That fault rebuilds the stub.
    const first = await handle.acquire(request(["global"])).then(
      (r) => grant(r),
      (e: unknown) => {
        expect(e).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true });
        return undefined;
      },
    );
    const next = first ?? grant(await handle.acquire(request(["global"])));
    expect(next.fence).toBe(last + 1);
    // A fresh handle (a new stub) is not affected.
    const other = store.open(group, spec({ global: 2 }));
    expect(grant(await other.acquire(request(["global"]))).fence).toBe(last + 2);
  });

  it("reclaims a lease that expires after the restart through the restored alarm", async () => {
    const group = freshGroup("alarm-restart");
    const handle = store.open(group, spec({ global: 1 }));
    grant(await handle.acquire(request(["global"], { leaseTtlMs: 500 })));
    await restart(group);
    // Wake the new instance before the deadline; from then on nothing but the alarm runs.
    expect((await inspect(group)).leases).toBe(1);
    await sleep(500 + 500);
    expect(await inspect(group)).toMatchObject({ leases: 0, alarm: null });
    expect((await handle.stats()).scopes.global).toMatchObject({ in_use: 0 });
  });

  it("keeps the spec, hostile key values, and runtime server states", async () => {
    const group = freshGroup("spec");
    const limits = spec({ tenant: { perKey: 1 } }, { api: { servers: { a: { max: 1 }, b: { max: 1 } } } });
    const handle = store.open(group, limits);
    const keys = ["é\uD800", "\u0000nul", "line\nbreak", "{x}:y", "x".repeat(1024)];
    const leases = await Promise.all(keys.map(async (k) => grant(await handle.acquire(request([`tenant:${k}`])))));
    await handle.setServerState("api", "b", false);
    await restart(group);

    // The same handle: it configured the object once and does not send the spec again, so what
    // follows runs on the spec the object restored from its own storage.
    const stats = await handle.stats();
    expect(stats.scopes.tenant).toMatchObject({ in_use: keys.length, keys: keys.length });
    for (const k of keys) expect(stats.scopes[`tenant:${k}`], JSON.stringify(k)).toMatchObject({ in_use: 1, max: 1 });
    expect(stats.scopes["server:api/b"]).toMatchObject({ up: false });
    for (const k of keys) expect(await handle.acquire(request([`tenant:${k}`]))).toEqual({ ok: false, reason: "full" });
    expect(grant(await handle.acquire(request([], { backend: "api" }))).server).toBe("a");
    for (const l of leases) expect(await handle.release(l.id)).toBe(true);
    expect((await handle.stats()).scopes.tenant).toMatchObject({ in_use: 0, keys: 0 });
  });

  it("a guard rides through a restart: fail-closed while a queued call breaks, then normal service", async () => {
    const group = freshGroup("guard");
    const guard = createGuard({ store, group, limits: { global: 1 } });
    const held = await guard.acquire({ scopes: ["global"] });
    if (!held.ok) throw new Error("expected a grant");
    const waiting = guard.acquire({ scopes: ["global"], queueTimeoutMs: 20_000 });
    await until(async () => (await guard.stats()).tickets === 1);
    await restart(group);
    expect(await waiting).toMatchObject({ ok: false, reason: "unavailable" });
    expect((await guard.stats()).fallback.fail_closed).toBe(1);
    // The held lease survived the restart: its renewals and its release still work.
    expect(await held.lease.renew()).toBe(true);
    await held.lease.release();
    const next = await guard.acquire({ scopes: ["global"] });
    expect(next.ok && next.lease.fence).toBeGreaterThan(held.lease.fence);
    await guard.close();
  });
});
