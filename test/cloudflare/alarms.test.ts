/**
 * Timed work runs from the object's one alarm, with no other traffic: lease expiry (a crashed
 * holder's slot is reclaimed within TTL + 1 s) and queue timeouts. The alarm always sits at the
 * state's next deadline.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDurableObjectStore } from "../../src/cloudflare/index.js";
import type { LeaseGrant, StoreAcquireResult } from "../../src/index.js";
import { freshGroup, inspect, request, sleep, spec, stubFor, until } from "./helpers.js";

const store = createDurableObjectStore({ namespace: env.SLOT_GROUP });

function grant(r: StoreAcquireResult): LeaseGrant {
  if (!r.ok) throw new Error(`expected a grant, got ${JSON.stringify(r)}`);
  return r.lease;
}

describe("SlotGroup alarm", () => {
  it("reclaims a crashed holder's slot within TTL + 1 s and grants it to the waiting ticket", async () => {
    const group = freshGroup("crash");
    const limits = spec({ global: 1 });
    // The holder's node "crashes": it never renews nor releases. A store handle does not renew by itself.
    const holder = store.open(group, limits);
    const crashed = grant(await holder.acquire(request(["global"], { leaseTtlMs: 400 })));
    const grantedAt = Date.now();
    const waiter = store.open(group, limits);
    const result = await waiter.acquire(request(["global"], { queueTimeoutMs: 10_000 }));
    const waited = Date.now() - grantedAt;
    const lease = grant(result);
    expect(lease.fence).toBeGreaterThan(crashed.fence);
    expect(waited).toBeGreaterThanOrEqual(350);
    expect(waited).toBeLessThan(400 + 1000);
    const stats = await waiter.stats();
    expect(stats.scopes.global).toMatchObject({ in_use: 1, expired: 1, granted: 2 });
    console.log(`[alarm] crashed holder (ttl 400 ms) reclaimed and re-granted after ${waited} ms`);
  });

  it("expires a lease with no traffic at all: the row is gone and no alarm is left", async () => {
    const group = freshGroup("expire");
    const handle = store.open(group, spec({ global: 2 }));
    grant(await handle.acquire(request(["global"], { leaseTtlMs: 300 })));
    expect((await inspect(group)).leases).toBe(1);
    await sleep(300 + 500);
    // inspect() reads SQLite directly, so only the alarm can have removed the row.
    const after = await inspect(group);
    expect(after).toMatchObject({ leases: 0, alarm: null });
  });

  it("ends a queued ticket at its queue timeout with no other traffic", async () => {
    const group = freshGroup("qtimeout");
    const handle = store.open(group, spec({ global: 1 }));
    grant(await handle.acquire(request(["global"], { leaseTtlMs: 60_000 })));
    const started = Date.now();
    const result = await handle.acquire(request(["global"], { queueTimeoutMs: 300 }));
    const waited = Date.now() - started;
    expect(result).toEqual({ ok: false, reason: "queue-timeout" });
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(300 + 1000);
    expect((await handle.stats()).scopes.global).toMatchObject({ queued: 0, queue_timeouts: 1 });
    console.log(`[alarm] queue timeout of 300 ms delivered after ${waited} ms`);
  });

  it("keeps exactly one alarm, at the next lease expiry or queue timeout", async () => {
    const group = freshGroup("one-alarm");
    const handle = store.open(group, spec({ global: 2 }));
    const a = grant(await handle.acquire(request(["global"], { leaseTtlMs: 60_000 })));
    expect((await inspect(group)).alarm).toBe(a.expiresAt);
    const b = grant(await handle.acquire(request(["global"], { leaseTtlMs: 30_000 })));
    expect((await inspect(group)).alarm).toBe(b.expiresAt);
    const renewed = await handle.renew(b.id, 120_000);
    if (!renewed.ok) throw new Error("renew failed");
    expect((await inspect(group)).alarm).toBe(a.expiresAt);
    // A ticket's queue timeout can be the earliest deadline too.
    const queued = handle.acquire(request(["global"], { queueTimeoutMs: 20_000 }));
    await until(async () => (await handle.stats()).tickets === 1);
    const withTicket = (await inspect(group)).alarm!;
    expect(withTicket).toBeLessThan(a.expiresAt);
    expect(withTicket).toBeGreaterThan(Date.now() + 15_000);
    await handle.release(a.id);
    expect(grant(await queued).fence).toBeGreaterThan(b.fence);
    await handle.close();
    // The store contract: release keeps working after close() (a grant racing close() is given back).
    expect(await handle.release(b.id)).toBe(true);
    const other = store.open(group, spec({ global: 2 }));
    expect(await other.release(b.id)).toBe(false);
    const stats = await other.stats();
    expect(stats.holders).toBe(1);
    // Only the queued ticket's lease is left, with the default TTL of request().
    expect((await inspect(group)).alarm).toBeGreaterThan(Date.now() + 25_000);
  });

  it("a forced alarm before any deadline changes nothing and re-arms the same deadline", async () => {
    const group = freshGroup("early-alarm");
    const handle = store.open(group, spec({ global: 1 }));
    const lease = grant(await handle.acquire(request(["global"], { leaseTtlMs: 60_000 })));
    expect(await runDurableObjectAlarm(stubFor(group))).toBe(true);
    const after = await inspect(group);
    expect(after).toMatchObject({ leases: 1, alarm: lease.expiresAt });
    expect((await handle.stats()).scopes.global).toMatchObject({ in_use: 1, expired: 0 });
  });
});
