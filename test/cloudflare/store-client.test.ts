/**
 * The store client's fault handling, against scripted stubs: which calls are retried (only the
 * idempotent ones, only when `retryable`, never when `overloaded`), stub rebuilding, the grant
 * that races an abort, status replies becoming coded errors, and option validation.
 */
import { describe, expect, it } from "vitest";
import { createDurableObjectStore, type Reply, type SlotGroupNamespace, type SlotGroupRpc } from "../../src/cloudflare/index.js";
import { StoreStatus } from "../../src/core/errors.js";
import { SlotgateConfigError, type StoreAcquireResult } from "../../src/index.js";
import { request, sleep, spec } from "./helpers.js";

type Script = Partial<{ [K in keyof SlotGroupRpc]: (...args: Parameters<SlotGroupRpc[K]>) => ReturnType<SlotGroupRpc[K]> }>;

/** A namespace whose stubs run `script`; unscripted calls succeed. Counts calls and stubs. */
function scripted(script: Script) {
  const calls: string[] = [];
  let stubs = 0;
  const okReply = <T>(value: T): Promise<Reply<T>> => Promise.resolve({ status: 0, value });
  const namespace: SlotGroupNamespace = {
    idFromName: (name) => ({ toString: () => name }),
    get: () => {
      stubs++;
      const stub: SlotGroupRpc = {
        acquire: (r, w) => (calls.push("acquire"), script.acquire?.(r, w) ?? okReply<StoreAcquireResult>({ ok: false, reason: "full" })),
        cancel: (w) => (calls.push("cancel"), script.cancel?.(w) ?? okReply(true)),
        release: (l) => (calls.push("release"), script.release?.(l) ?? okReply(true)),
        renew: (l, t) => (calls.push("renew"), script.renew?.(l, t) ?? okReply({ ok: true as const, expiresAt: 1 })),
        configure: (s) => (calls.push("configure"), script.configure?.(s) ?? okReply(null)),
        setServerState: (b, s, u) => (calls.push("setServerState"), script.setServerState?.(b, s, u) ?? okReply(null)),
        stats: () => (calls.push("stats"), script.stats?.() ?? Promise.reject(new Error("not scripted"))),
      };
      return stub;
    },
  };
  return { namespace, calls, stubs: () => stubs };
}

const rpcError = (message: string, flags: Record<string, boolean>) => Object.assign(new Error(message), flags);

describe("Durable Object store client", () => {
  it("retries an idempotent call on a retryable fault, with a new stub each time", async () => {
    let failures = 2;
    const { namespace, calls, stubs } = scripted({
      release: () => (failures-- > 0 ? Promise.reject(rpcError("network connection lost", { retryable: true })) : Promise.resolve({ status: 0, value: true })),
    });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    expect(await handle.release("lease-1")).toBe(true);
    expect(calls).toEqual(["configure", "release", "release", "release"]);
    expect(stubs()).toBe(3);
  });

  it("treats an object reset as retryable for idempotent calls", async () => {
    let failures = 1;
    const { namespace, calls } = scripted({
      renew: () =>
        failures-- > 0
          ? Promise.reject(rpcError("object restarted", { durableObjectReset: true }))
          : Promise.resolve({ status: 0, value: { ok: true, expiresAt: 5 } }),
    });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    expect(await handle.renew("lease-1", 1000)).toEqual({ ok: true, expiresAt: 5 });
    expect(calls).toEqual(["configure", "renew", "renew"]);
  });

  it("gives up after `retries` attempts with a retryable store fault", async () => {
    const { namespace, calls } = scripted({ stats: () => Promise.reject(rpcError("network connection lost", { retryable: true })) });
    const handle = createDurableObjectStore({ namespace, retries: 2, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    const error = await handle.stats().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true });
    expect(calls.filter((c) => c === "stats")).toHaveLength(3);
  });

  it("never retries an overloaded object", async () => {
    const { namespace, calls } = scripted({
      release: () => Promise.reject(rpcError("Durable Object is overloaded. Too many requests queued.", { retryable: true, overloaded: true })),
    });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    const error = await handle.release("lease-1").then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: false });
    expect((error as Error).message).toContain("overloaded");
    expect(calls.filter((c) => c === "release")).toHaveLength(1);
  });

  it("never retries a non-retryable fault", async () => {
    const { namespace, calls } = scripted({ configure: () => Promise.reject(rpcError("internal error", {})) });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    const error = await handle.configure(spec({ global: 2 }), null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: false });
    // The call waited for the handle's own configure on open, and shares its fault: sent once.
    expect(calls.filter((c) => c === "configure")).toHaveLength(1);
    // The next call tries again, once.
    await handle.configure(spec({ global: 2 }), null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(calls.filter((c) => c === "configure")).toHaveLength(2);
  });

  it("never retries an acquire; its fault is retryable unless the object is overloaded", async () => {
    let overloaded = false;
    const { namespace, calls, stubs } = scripted({
      acquire: () => Promise.reject(rpcError("network connection lost", overloaded ? { retryable: true, overloaded: true } : { retryable: true })),
    });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    const first = await handle.acquire(request(["global"])).then(
      () => null,
      (e: unknown) => e,
    );
    expect(first).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: true });
    overloaded = true;
    const second = await handle.acquire(request(["global"])).then(
      () => null,
      (e: unknown) => e,
    );
    expect(second).toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", retryable: false });
    expect(calls.filter((c) => c === "acquire")).toHaveLength(2);
    // Each fault dropped the stub: configure's stub, then one new stub per acquire.
    expect(stubs()).toBe(2);
  });

  it("turns status replies into the coded errors every store uses", async () => {
    const { namespace } = scripted({
      acquire: () => Promise.resolve({ status: StoreStatus.UnknownBackend, detail: "nope" }),
      release: () => Promise.resolve({ status: StoreStatus.BadRequest, detail: "leaseId: expected a string" }),
      stats: () => Promise.resolve({ nonsense: true } as unknown as Reply<never>),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    expect(
      await handle.acquire(request(["global"])).then(
        () => null,
        (e: unknown) => e,
      ),
    ).toMatchObject({ code: "SLOTGATE_UNKNOWN_SCOPE", message: "unknown backend: nope" });
    expect(
      await handle.release("x").then(
        () => null,
        (e: unknown) => e,
      ),
    ).toMatchObject({ code: "SLOTGATE_STORE_PROTOCOL" });
    expect(
      await handle.stats().then(
        () => null,
        (e: unknown) => e,
      ),
    ).toMatchObject({ code: "SLOTGATE_STORE_PROTOCOL" });
  });

  it("releases a grant that arrives after the caller aborted (rule 7), then resolves aborted", async () => {
    let grantNow: (() => void) | undefined;
    const released: string[] = [];
    const { namespace, calls } = scripted({
      acquire: () =>
        new Promise((resolve) => {
          grantNow = () => resolve({ status: 0, value: { ok: true, lease: { id: "late", fence: 7, expiresAt: 0, ttlMs: 1000, waitedMs: 5 } } });
        }),
      // The object had already granted the ticket, so the cancel finds nothing to remove.
      cancel: () => Promise.resolve({ status: 0, value: false }),
      release: (id) => (released.push(id), Promise.resolve({ status: 0, value: true })),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    const ac = new AbortController();
    let done = false;
    const pending = handle.acquire(request(["global"], { queueTimeoutMs: 1000 }), ac.signal).finally(() => (done = true));
    await sleep(5);
    ac.abort();
    await sleep(5);
    // Not settled yet: the object has not said what became of the ticket.
    expect(done).toBe(false);
    grantNow!();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    expect(released).toEqual(["late"]);
    expect(calls).toEqual(["configure", "acquire", "cancel", "release"]);
  });

  it("an abort wins over an error the object answers meanwhile: the acquire resolves aborted", async () => {
    let answer: ((reply: Reply<StoreAcquireResult>) => void) | undefined;
    const { namespace } = scripted({
      acquire: () => new Promise((resolve) => (answer = resolve)),
      // The ticket was already gone; then the acquire's answer is an error status.
      cancel: () => (answer?.({ status: StoreStatus.BadRequest, detail: "no such ticket" }), Promise.resolve({ status: 0, value: false })),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    const ac = new AbortController();
    const pending = handle.acquire(request(["global"], { queueTimeoutMs: 1000 }), ac.signal);
    await sleep(5);
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
  });

  it("retries a cancel that hit a retryable fault, on a new stub", async () => {
    let answer: ((reply: Reply<StoreAcquireResult>) => void) | undefined;
    let failures = 1;
    const { namespace, calls, stubs } = scripted({
      acquire: () => new Promise((resolve) => (answer = resolve)),
      cancel: () => {
        if (failures-- > 0) return Promise.reject(rpcError("network connection lost", { retryable: true }));
        answer?.({ status: 0, value: { ok: false, reason: "aborted" } });
        return Promise.resolve({ status: 0, value: true });
      },
    });
    const handle = createDurableObjectStore({ namespace, retryDelayMs: 1 }).open("g", spec({ global: 1 }));
    const ac = new AbortController();
    const pending = handle.acquire(request(["global"], { queueTimeoutMs: 1000 }), ac.signal);
    await sleep(5);
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    expect(calls).toEqual(["configure", "acquire", "cancel", "cancel"]);
    expect(stubs()).toBe(2);
  });

  it("readStats retries a retryable fault, and writes no spec", async () => {
    let failures = 1;
    const snapshot = { scopes: {} } as never;
    const { namespace, calls } = scripted({
      stats: () =>
        failures-- > 0 ? Promise.reject(rpcError("network connection lost", { retryable: true })) : Promise.resolve({ status: 0, value: snapshot }),
    });
    expect(await createDurableObjectStore({ namespace, retryDelayMs: 1 }).readStats("g")).toBe(snapshot);
    expect(calls).toEqual(["stats", "stats"]);
  });

  it("an abort settles when the object confirms, or after a grace period if it never answers", async () => {
    let answer: ((reply: Reply<StoreAcquireResult>) => void) | undefined;
    const { namespace } = scripted({
      acquire: () => new Promise((resolve) => (answer = resolve)),
      cancel: () => (answer?.({ status: 0, value: { ok: false, reason: "aborted" } }), Promise.resolve({ status: 0, value: true })),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    const ac = new AbortController();
    const pending = handle.acquire(request(["global"], { queueTimeoutMs: 1000 }), ac.signal);
    await sleep(5);
    const started = Date.now();
    ac.abort();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    expect(Date.now() - started).toBeLessThan(200);

    const silent = scripted({ acquire: () => new Promise(() => undefined) });
    const hung = createDurableObjectStore({ namespace: silent.namespace }).open("g", spec({ global: 1 }));
    const ac2 = new AbortController();
    const stuck = hung.acquire(request(["global"], { queueTimeoutMs: 10_000 }), ac2.signal);
    await sleep(5);
    const started2 = Date.now();
    ac2.abort();
    expect(await stuck).toEqual({ ok: false, reason: "aborted" });
    expect(Date.now() - started2).toBeGreaterThanOrEqual(900);
    expect(silent.calls).toEqual(["configure", "acquire", "cancel"]);
  });

  it("close() ends this handle's waiting acquires and cancels their tickets", async () => {
    let answer: ((reply: Reply<StoreAcquireResult>) => void) | undefined;
    const { namespace, calls } = scripted({
      acquire: () => new Promise((resolve) => (answer = resolve)),
      cancel: () => (answer?.({ status: 0, value: { ok: false, reason: "aborted" } }), Promise.resolve({ status: 0, value: true })),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    const pending = handle.acquire(request(["global"], { queueTimeoutMs: 1000 }));
    await sleep(5);
    await handle.close();
    expect(await pending).toEqual({ ok: false, reason: "aborted" });
    expect(calls).toEqual(["configure", "acquire", "cancel"]);
    expect(
      await handle.stats().then(
        () => null,
        (e: unknown) => e,
      ),
    ).toMatchObject({ code: "SLOTGATE_CLOSED" });
  });

  it("a failed configure on open is retried by the next call", async () => {
    let failures = 1;
    const { namespace, calls } = scripted({
      configure: () => (failures-- > 0 ? Promise.reject(rpcError("internal error", {})) : Promise.resolve({ status: 0, value: null })),
    });
    const handle = createDurableObjectStore({ namespace }).open("g", spec({ global: 1 }));
    await sleep(5);
    expect(await handle.release("x")).toBe(true);
    expect(calls).toEqual(["configure", "configure", "release"]);
  });

  it("validates its options, naming each wrong one", () => {
    expect(() => createDurableObjectStore({} as never)).toThrow(SlotgateConfigError);
    expect(() => createDurableObjectStore({} as never)).toThrow(/^namespace: expected a Durable Object namespace binding/);
    const { namespace } = scripted({});
    expect(() => createDurableObjectStore({ namespace, retries: -1 })).toThrow(/^retries: expected an integer from 0 to 10, got -1$/);
    expect(() => createDurableObjectStore({ namespace, group: "x" as never })).toThrow(/^group: expected a function/);
    expect(() => createDurableObjectStore({ namespace, prefix: "x" } as never)).toThrow(/^prefix: expected one of the keys/);
    expect(createDurableObjectStore({ namespace }).kind).toBe("durable-object");
  });

  it("maps a guard's group to an object name with `group`", () => {
    const names: string[] = [];
    const { namespace } = scripted({});
    const wrapped: SlotGroupNamespace = { idFromName: (n) => (names.push(n), namespace.idFromName(n)), get: (id) => namespace.get(id) };
    createDurableObjectStore({ namespace: wrapped, group: (g) => `staging/${g}` }).open("shop", spec({ global: 1 }));
    expect(names).toEqual(["staging/shop"]);
  });

  it("with configureOnce, pushes a spec once per object: opens with the same spec send no configure", async () => {
    const { namespace, calls } = scripted({});
    const store = createDurableObjectStore({ namespace, configureOnce: true });
    expect(await store.open("g", spec({ global: 1 })).release("a")).toBe(true);
    expect(await store.open("g", spec({ global: 1 })).release("b")).toBe(true);
    // Another spec, or another object, is pushed again.
    expect(await store.open("g", spec({ global: 2 })).release("c")).toBe(true);
    expect(await store.open("h", spec({ global: 2 })).release("d")).toBe(true);
    expect(calls).toEqual(["configure", "release", "release", "configure", "release", "configure", "release"]);
    // Without it, every open sends one.
    const plain = scripted({});
    const other = createDurableObjectStore({ namespace: plain.namespace });
    await other.open("g", spec({ global: 1 })).release("a");
    await other.open("g", spec({ global: 1 })).release("b");
    expect(plain.calls.filter((c) => c === "configure")).toHaveLength(2);
    expect(() => createDurableObjectStore({ namespace, configureOnce: "yes" as never })).toThrow(/^configureOnce: expected a boolean/);
  });

  it("with configureOnce, a spec that failed to land is pushed again by the next open", async () => {
    let failures = 1;
    const { namespace, calls } = scripted({
      configure: () => (failures-- > 0 ? Promise.reject(rpcError("internal error", {})) : Promise.resolve({ status: 0, value: null })),
    });
    const store = createDurableObjectStore({ namespace, configureOnce: true });
    store.open("g", spec({ global: 1 }));
    await sleep(5);
    expect(await store.open("g", spec({ global: 1 })).release("x")).toBe(true);
    expect(calls).toEqual(["configure", "configure", "release"]);
  });
});
