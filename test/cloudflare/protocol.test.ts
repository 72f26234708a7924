/**
 * The object's RPC surface called directly, as the later slot API will call it. Bad input and
 * unknown names come back as status replies, never as thrown errors, and never change a count.
 */
import { describe, expect, it } from "vitest";
import { StoreStatus } from "../../src/core/errors.js";
import { freshGroup, request, spec, stubFor, until } from "./helpers.js";

describe("SlotGroup RPC surface", () => {
  it("answers bad input and unknown names with status replies", async () => {
    const stub = stubFor(freshGroup("rpc"));
    expect(await stub.configure(spec({ global: 1, tenant: { perKey: 1 } }, { api: { servers: { a: {} } } }))).toEqual({
      status: 0,
      value: { result: "installed", version: null },
    });

    const bad = StoreStatus.BadRequest;
    expect(await stub.acquire({ scopes: "global" } as never, "w1")).toMatchObject({ status: bad, detail: expect.stringContaining("request.scopes") });
    expect(await stub.acquire(request(["global"], { leaseTtlMs: 0 }), "w1")).toMatchObject({
      status: bad,
      detail: expect.stringContaining("request.leaseTtlMs"),
    });
    expect(await stub.acquire(request(["global"]), "")).toMatchObject({ status: bad, detail: expect.stringContaining("waiterId") });
    expect(await stub.acquire(request(["global", "global"]), "w1")).toMatchObject({ status: bad });
    expect(await stub.acquire(request([`tenant:${"k".repeat(2000)}`]), "w1")).toMatchObject({ status: bad });
    expect(await stub.release(42 as never)).toMatchObject({ status: bad });
    expect(await stub.renew("x", -5)).toMatchObject({ status: bad });
    expect(await stub.configure({ limits: { global: { max: -1, maxqueue: null, keyed: false } }, backends: {} })).toMatchObject({
      status: bad,
      detail: expect.stringContaining("spec.limits.global.max"),
    });
    expect(await stub.configure(null as never)).toMatchObject({ status: bad });
    // `__proto__` as a limit or backend name: refused, not silently turned into a prototype.
    expect(await stub.configure(JSON.parse('{"limits": {"__proto__": {"max": 1, "maxqueue": null, "keyed": false}}, "backends": {}}') as never)).toMatchObject({
      status: bad,
      detail: expect.stringContaining("__proto__"),
    });
    expect(
      await stub.configure(
        JSON.parse(
          '{"limits": {}, "backends": {"__proto__": {"balance": "first", "max": null, "maxqueue": null, "servers": [{"name": "a", "max": null, "maxqueue": null, "weight": 1, "down": false}]}}}',
        ) as never,
      ),
    ).toMatchObject({ status: bad });
    for (const version of [0, 1.5, "3", -2, Number.MAX_SAFE_INTEGER + 2]) {
      expect(await stub.configure(spec({ global: 1 }), version as never), String(version)).toMatchObject({
        status: bad,
        detail: expect.stringContaining("version"),
      });
    }
    expect(await stub.setServerState("api", "a", "yes" as never)).toMatchObject({ status: bad });

    expect(await stub.acquire(request(["nope"]), "w1")).toEqual({ status: StoreStatus.UnknownScope, detail: "nope" });
    expect(await stub.acquire(request(["tenant"]), "w1")).toMatchObject({ status: StoreStatus.UnknownScope });
    expect(await stub.acquire(request([], { backend: "web" }), "w1")).toEqual({ status: StoreStatus.UnknownBackend, detail: "web" });
    expect(await stub.acquire(request([], { backend: "api", server: "z" }), "w1")).toEqual({ status: StoreStatus.UnknownServer, detail: "api/z" });
    expect(await stub.setServerState("api", "z", false)).toEqual({ status: StoreStatus.UnknownServer, detail: "api/z" });

    const stats = await stub.stats();
    if (stats.status !== 0) throw new Error("stats failed");
    expect(stats.value.scopes.global).toMatchObject({ in_use: 0, granted: 0, rejected_full: 0 });
    expect(stats.value.scopes.tenant).toMatchObject({ keys: 0 });
  });

  it("keys named like Object.prototype's members: names where names are allowed, otherwise ignored, never a prototype", async () => {
    const stub = stubFor(freshGroup("rpc-proto-keys"));
    expect(await stub.configure(spec({ constructor: 1 }, { prototype: { servers: { toString: {} } } }))).toMatchObject({ status: 0 });
    // Extra keys of a wire message are left out (the message may grow); `__proto__` among them too.
    const hostile = JSON.parse('{"__proto__": {"priorityClass": 99999, "polluted": true}}') as Record<string, unknown>;
    const granted = await stub.acquire({ ...request(["constructor"], { backend: "prototype", server: "toString" }), ...hostile } as never, "w1");
    expect(granted).toMatchObject({ status: 0, value: { ok: true } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A scope that only Object.prototype has is unknown.
    expect(await stub.acquire(request(["toString"]), "w2")).toEqual({ status: StoreStatus.UnknownScope, detail: "toString" });
    expect(await stub.acquire(request(["hasOwnProperty"]), "w3")).toMatchObject({ status: StoreStatus.UnknownScope });
  });

  it("acquire, cancel, release, and renew by id", async () => {
    const stub = stubFor(freshGroup("rpc-ok"));
    await stub.configure(spec({ global: 1 }));
    const first = await stub.acquire(request(["global"]), "w1");
    if (first.status !== 0 || !first.value.ok) throw new Error("expected a grant");
    const lease = first.value.lease;
    expect(await stub.acquire(request(["global"]), "w2")).toEqual({ status: 0, value: { ok: false, reason: "full" } });
    const queued = stub.acquire(request(["global"], { queueTimeoutMs: 10_000 }), "w3");
    // Calls on one stub may overtake each other in the test pool (its Durable Object wrapper
    // awaits before it forwards a call), so wait until the ticket is queued.
    await until(async () => {
      const s = await stub.stats();
      return s.status === 0 && s.value.tickets === 1;
    });
    expect(await stub.acquire(request(["global"], { queueTimeoutMs: 10_000 }), "w3")).toMatchObject({
      status: StoreStatus.BadRequest,
      detail: expect.stringContaining("already queued"),
    });
    expect(await stub.cancel("w3")).toEqual({ status: 0, value: true });
    expect(await queued).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    expect(await stub.cancel("w3")).toEqual({ status: 0, value: false });
    expect(await stub.renew(lease.id, 5_000)).toMatchObject({ status: 0, value: { ok: true } });
    expect(await stub.release(lease.id)).toEqual({ status: 0, value: true });
    expect(await stub.release(lease.id)).toEqual({ status: 0, value: false });
    expect(await stub.renew(lease.id, 5_000)).toEqual({ status: 0, value: { ok: false } });
  });

  it("a cancel that overtakes its acquire still ends the ticket (calls on two stubs have no order)", async () => {
    const stub = stubFor(freshGroup("rpc-early-cancel"));
    await stub.configure(spec({ global: 1 }));
    const first = await stub.acquire(request(["global"]), "holder");
    if (first.status !== 0 || !first.value.ok) throw new Error("expected a grant");
    expect(await stub.cancel("late-1")).toEqual({ status: 0, value: false });
    expect(await stub.acquire(request(["global"], { queueTimeoutMs: 10_000 }), "late-1")).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    // One that would have been granted is granted and given back at once.
    await stub.release(first.value.lease.id);
    expect(await stub.cancel("late-2")).toEqual({ status: 0, value: false });
    expect(await stub.acquire(request(["global"]), "late-2")).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    const stats = await stub.stats();
    if (stats.status !== 0) throw new Error("stats failed");
    expect(stats.value.scopes.global).toMatchObject({ in_use: 0, queued: 0, aborted: 1, granted: 2, released: 2 });
    expect(stats.value.holders).toBe(0);
  });
});
