/**
 * The slot API of the deployable bundle, over HTTP through service bindings: authentication
 * (missing or wrong token → 401 and nothing changes; no token configured → 404), the routes and
 * their statuses, the long poll of a queued acquire, and a client that disconnects from it. Then
 * the Node client (createDurableObjectHttpStore, runtime-neutral) run inside workerd against it.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { StoreStatus } from "../../src/core/errors.js";
import { createGuard } from "../../src/index.js";
import { createDurableObjectHttpStore } from "../../src/stores/durable-object/index.js";
import { API_TOKEN } from "./edge-fixtures.js";
import { freshGroup, request, sleep, spec, until } from "./helpers.js";

const BASE = "https://edge.example/_slotgate/v1";
const auth = { authorization: `Bearer ${API_TOKEN}` };

function api(path: string, init: RequestInit & { headers?: Record<string, string> } = {}, worker: Fetcher = env.EDGE_DENY): Promise<Response> {
  return worker.fetch(`${BASE}${path}`, init);
}

function post(path: string, body: unknown, headers: Record<string, string> = auth, worker?: Fetcher): Promise<Response> {
  return api(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers } }, worker);
}

/** The group's stats through the API, without the clock reading. */
async function stats(group: string): Promise<unknown> {
  const res = await api(`/groups/${group}/stats`, { headers: auth });
  expect(res.status).toBe(200);
  const body = await res.json<{ value: { now?: number } }>();
  delete body.value.now;
  return body;
}

describe("slot API", () => {
  it("answers 404 on every route when the Worker has no SLOTGATE_API_TOKEN", async () => {
    for (const path of ["/ping", "/groups/g/stats"]) {
      const res = await api(path, { headers: auth }, env.EDGE_PRIORITY);
      expect(res.status).toBe(404);
      await res.body?.cancel();
    }
    const res = await post("/groups/g/configure", { spec: spec({ global: 1 }) }, auth, env.EDGE_PRIORITY);
    expect(res.status).toBe(404);
    await res.body?.cancel();
  });

  it("answers 401 to a missing, wrong or malformed token, and nothing changes", async () => {
    const group = freshGroup("auth");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) })).status).toBe(200);
    const before = await stats(group);
    const bad: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-token-0123456789abcdef" },
      { authorization: `Bearer ${API_TOKEN}x` },
      { authorization: `Bearer ${API_TOKEN.slice(0, -1)}` },
      { authorization: `Basic ${API_TOKEN}` },
      { authorization: API_TOKEN },
      { authorization: "Bearer " },
    ];
    for (const headers of bad) {
      const attempts = [
        api("/ping", { headers }),
        api(`/groups/${group}/stats`, { headers }),
        post(`/groups/${group}/configure`, { spec: spec({ global: 1000 }) }, headers),
        post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: crypto.randomUUID() }, headers),
        post(`/groups/${group}/server-state`, { backend: "x", server: "y", up: false }, headers),
        post(`/groups/${group}/nope`, {}, headers),
      ];
      for (const res of await Promise.all(attempts)) {
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="slotgate"');
        expect(await res.json()).toEqual({ status: StoreStatus.Unauthorized, detail: "missing or wrong bearer token" });
      }
    }
    expect(await stats(group)).toEqual(before);
  });

  it("serves acquire, release, renew, server-state and stats, each answer a Reply", async () => {
    const group = freshGroup("routes");
    expect(await (await api("/ping", { headers: auth })).json()).toEqual({ status: 0, value: true });
    expect(await (await post(`/groups/${group}/configure`, { spec: spec({ global: 2 }, { api: { servers: { a: { max: 1 } } } }) })).json()).toEqual({
      status: 0,
      value: { result: "installed", version: null },
    });
    const granted = await (
      await post(`/groups/${group}/acquire`, { request: request(["global"], { backend: "api" }), waiterId: "w1" })
    ).json<{ status: 0; value: { ok: true; lease: { id: string; server: string } }; leaseSecret: string }>();
    expect(granted).toMatchObject({ status: 0, value: { ok: true, lease: { server: "a" } }, leaseSecret: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    const leaseId = granted.value.lease.id;
    const leaseSecret = granted.leaseSecret;
    expect(await (await post(`/groups/${group}/renew`, { leaseId, ttlMs: 5000, leaseSecret })).json()).toMatchObject({ status: 0, value: { ok: true } });
    // A refusal carries no secret: there is no lease to own.
    expect(await (await post(`/groups/${group}/acquire`, { request: request(["global"], { backend: "api" }), waiterId: "w2" })).json()).toEqual({
      status: 0,
      value: { ok: false, reason: "full" },
    });
    expect(await (await post(`/groups/${group}/release`, { leaseId, leaseSecret })).json()).toEqual({ status: 0, value: true });
    expect(await (await post(`/groups/${group}/release`, { leaseId, leaseSecret })).json()).toEqual({ status: 0, value: false });
    expect(await (await post(`/groups/${group}/server-state`, { backend: "api", server: "a", up: false })).json()).toEqual({ status: 0, value: null });
    const s = await stats(group);
    expect(s).toMatchObject({ status: 0, value: { scopes: { global: { in_use: 0, granted: 1, released: 1 }, "server:api/a": { up: false } } } });
  });

  it("configure takes a version and answers what the object did with it (SPEC §2 rule 13)", async () => {
    const group = freshGroup("versions");
    const configure = async (body: Record<string, unknown>) => (await post(`/groups/${group}/configure`, body)).json();
    expect(await configure({ spec: spec({ global: 2 }), version: 2 })).toEqual({ status: 0, value: { result: "installed", version: 2 } });
    expect(await configure({ spec: spec({ global: 9 }), version: 1 })).toEqual({ status: 0, value: { result: "kept", version: 2 } });
    expect(await configure({ spec: spec({ global: 9 }) })).toEqual({ status: 0, value: { result: "kept", version: 2 } });
    expect(await configure({ spec: spec({ global: 3 }), version: 2 })).toEqual({
      status: 0,
      value: { result: "conflict", version: 2, spec: spec({ global: 2 }) },
    });
    expect(await configure({ spec: spec({ global: 2 }), version: 2 })).toEqual({ status: 0, value: { result: "installed", version: 2 } });
    for (const version of [0, -1, 1.5, "2", 2 ** 60]) {
      const res = await post(`/groups/${group}/configure`, { spec: spec({ global: 4 }), version });
      expect(res.status, String(version)).toBe(400);
      expect(await res.json()).toMatchObject({ status: StoreStatus.BadRequest });
    }
    expect(await stats(group)).toMatchObject({ status: 0, value: { scopes: { global: { max: 2 } } } });
    expect(await configure({ spec: spec({ global: 3 }), version: 3 })).toEqual({ status: 0, value: { result: "installed", version: 3 } });
    expect(await stats(group)).toMatchObject({ status: 0, value: { scopes: { global: { max: 3 } } } });
  });

  it("refuses bad input with 400/413/422 Replies, unknown routes with 404, wrong methods with 405", async () => {
    const group = freshGroup("bad");
    await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) });
    const cases: [Promise<Response>, number, number | undefined][] = [
      [api(`/groups/${group}/acquire`, { method: "POST", body: "{not json", headers: auth }), 400, StoreStatus.BadRequest],
      [api(`/groups/${group}/acquire`, { method: "POST", body: "[1,2]", headers: auth }), 400, StoreStatus.BadRequest],
      [api(`/groups/${group}/acquire`, { method: "POST", body: new Uint8Array([0x7b, 0xff, 0x7d]), headers: auth }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "" }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/acquire`, { request: request(["global"], { leaseTtlMs: -1 }), waiterId: "w" }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/acquire`, { request: request(["nope"]), waiterId: "w" }), 422, StoreStatus.UnknownScope],
      [post(`/groups/${group}/release`, { leaseId: 42 }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/release`, { leaseId: "x" }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/renew`, { leaseId: "x", ttlMs: 1000, leaseSecret: "not-a-secret" }), 400, StoreStatus.BadRequest],
      [post(`/groups/${group}/renew`, { leaseId: "x", ttlMs: "soon" }), 400, StoreStatus.BadRequest],
      [
        post(`/groups/${group}/configure`, { spec: { limits: { global: { max: -1, maxqueue: null, keyed: false } }, backends: {} } }),
        400,
        StoreStatus.BadRequest,
      ],
      [api(`/groups/${encodeURIComponent("bad group{}")}/stats`, { headers: auth }), 400, StoreStatus.BadRequest],
      [api(`/groups/${group}/configure`, { method: "POST", body: `{"spec": "${"x".repeat(1024 * 1024)}"}`, headers: auth }), 413, StoreStatus.BadRequest],
      [api(`/groups/${group}/nope`, { headers: auth }), 404, undefined],
      [api("/nope", { headers: auth }), 404, undefined],
      [api(`/groups/${group}/stats`, { method: "POST", headers: auth }), 405, undefined],
      [api(`/groups/${group}/acquire`, { headers: auth }), 405, undefined],
    ];
    for (const [pending, status, replyStatus] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      if (replyStatus === undefined) await res.body?.cancel();
      else expect(await res.json()).toMatchObject({ status: replyStatus, detail: expect.any(String) });
    }
    expect(await stats(group)).toMatchObject({ value: { scopes: { global: { in_use: 0, granted: 0 } } } });
  });

  it("long-polls a queued acquire: the answer comes when the slot frees up", async () => {
    const group = freshGroup("poll");
    await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) });
    const holder = await (
      await post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "h" })
    ).json<{ value: { lease: { id: string } }; leaseSecret: string }>();
    const t0 = Date.now();
    const waiting = post(`/groups/${group}/acquire`, { request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId: "w" });
    await sleep(1200);
    await post(`/groups/${group}/release`, { leaseId: holder.value.lease.id, leaseSecret: holder.leaseSecret });
    const res = await waiting;
    expect(res.status).toBe(200);
    const body = await res.text();
    // The long poll's reply carries the secret of its lease too.
    expect(JSON.parse(body)).toMatchObject({
      status: 0,
      value: { ok: true, lease: { waitedMs: expect.any(Number) } },
      leaseSecret: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
  });

  it("cancels the ticket of a client that disconnects from its long poll, and cancel by waiter id works too", async () => {
    const group = freshGroup("gone");
    await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) });
    await post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "h" });
    const tickets = async () => ((await stats(group)) as { value: { tickets: number } }).value.tickets;

    const ac = new AbortController();
    const gone = api(`/groups/${group}/acquire`, {
      method: "POST",
      body: JSON.stringify({ request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId: "gone" }),
      headers: auth,
      signal: ac.signal,
    }).catch((e: unknown) => (e as Error).name);
    await until(async () => (await tickets()) === 1);
    ac.abort();
    expect(await gone).toBe("AbortError");
    await until(async () => (await tickets()) === 0, 2000);

    const waiting = post(`/groups/${group}/acquire`, { request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId: "w2" });
    await until(async () => (await tickets()) === 1);
    expect(await (await post(`/groups/${group}/cancel`, { waiterId: "w2" })).json()).toEqual({ status: 0, value: true });
    expect(await (await waiting).json()).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    expect(await stats(group)).toMatchObject({ value: { tickets: 0, scopes: { global: { in_use: 1, aborted: 2 } } } });
  });

  it("the HTTP store client runs in workerd too: a guard over the slot API", async () => {
    const store = createDurableObjectHttpStore({ url: "https://edge.example", token: API_TOKEN, fetch: (input, init) => env.EDGE_DENY.fetch(input, init) });
    await store.ping();
    const group = freshGroup("client");
    const guard = createGuard({ store, group, limits: { global: 1 } });
    const first = await guard.acquire({ scopes: ["global"] });
    if (!first.ok) throw new Error("expected a grant");
    const ac = new AbortController();
    const queued = guard.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, signal: ac.signal });
    await until(async () => (await guard.stats()).tickets === 1);
    ac.abort();
    expect(await queued).toMatchObject({ ok: false, reason: "aborted" });
    const next = guard.acquire({ scopes: ["global"], queueTimeoutMs: 10_000 });
    await until(async () => (await guard.stats()).tickets === 1);
    await first.lease.release();
    const second = await next;
    expect(second.ok).toBe(true);
    expect((await guard.stats()).scopes.global).toMatchObject({ in_use: 1, aborted: 1, granted: 2 });
    await guard.close();
    expect(await guard.stats().catch(() => null)).toBeNull();

    const wrong = createDurableObjectHttpStore({
      url: "https://edge.example",
      token: "wrong-token-0123456789",
      fetch: (input, init) => env.EDGE_DENY.fetch(input, init),
    });
    await expect(wrong.ping()).rejects.toMatchObject({ code: "SLOTGATE_STORE_UNAVAILABLE", message: expect.stringContaining("credentials") });
  });
});
