/**
 * The slot API when it is exposed: tokens per permission and group (SLOTGATE_API_TOKENS), the
 * constant-time check against every token, lease ownership (a secret per lease, kept through a
 * restart of the object; a ticket cancelled only by its token), and 5xx bodies that never carry
 * internal text. Through the deployable bundle (the workers of edge-fixtures.ts SLOT_API_WORKERS),
 * and through handleSlotApiRequest on the pool's own SLOT_GROUP where the object must restart.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { StoreStatus } from "../../src/core/errors.js";
import { createGuard } from "../../src/index.js";
import { handleSlotApiRequest, type SlotGroup } from "../../src/cloudflare/index.js";
import { globMatch, parseTokenVariables } from "../../src/cloudflare/slot-api-auth.js";
import { GroupTables } from "../../src/cloudflare/tables.js";
import { createDurableObjectHttpStore } from "../../src/stores/durable-object/index.js";
import { API_TOKEN, BAD_CONFIG_TOKEN, SCOPED_TOKENS } from "./edge-fixtures.js";
import { freshGroup, request, restart, spec, stubFor, until } from "./helpers.js";

const BASE = "https://api.example/_slotgate/v1";
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function get(path: string, token: string, worker: Fetcher = env.API_SCOPED): Promise<Response> {
  return worker.fetch(`${BASE}${path}`, { headers: bearer(token) });
}

function post(path: string, body: unknown, token: string, worker: Fetcher = env.API_SCOPED, signal?: AbortSignal): Promise<Response> {
  return worker.fetch(`${BASE}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...bearer(token) },
    ...(signal ? { signal } : {}),
  });
}

async function stats(
  group: string,
  token: string = SCOPED_TOKENS.adminA,
): Promise<{ tickets: number; scopes: Record<string, { in_use: number; max: number | null }> }> {
  const res = await get(`/groups/${group}/stats`, token);
  expect(res.status).toBe(200);
  return (await res.json<{ value: { tickets: number; scopes: Record<string, { in_use: number; max: number | null }> } }>()).value;
}

type Granted = { status: 0; value: { ok: true; lease: { id: string } }; leaseSecret: string };

async function grant(group: string, token: string, worker?: Fetcher): Promise<{ leaseId: string; leaseSecret: string }> {
  const res = await post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: crypto.randomUUID() }, token, worker);
  const body = await res.json<Granted>();
  expect(body).toMatchObject({ status: 0, value: { ok: true } });
  return { leaseId: body.value.lease.id, leaseSecret: body.leaseSecret };
}

async function expectForbidden(pending: Promise<Response>): Promise<void> {
  const res = await pending;
  expect(res.status).toBe(403);
  expect(await res.json()).toEqual({ status: StoreStatus.Forbidden, detail: expect.stringMatching(/^this token may not /) });
}

describe("slot API tokens (SLOTGATE_API_TOKENS)", () => {
  it("a lease token cannot configure or set server state; an admin-only token cannot lease", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }, { api: { servers: { s: {} } } }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    await expectForbidden(post(`/groups/${group}/configure`, { spec: spec({ global: 1000 }) }, SCOPED_TOKENS.leaseA));
    await expectForbidden(post(`/groups/${group}/server-state`, { backend: "api", server: "s", up: false }, SCOPED_TOKENS.leaseA));
    await expectForbidden(post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "admin-tries" }, SCOPED_TOKENS.adminA));
    // Both may read the numbers; the limit is still 1 and nothing is held.
    expect((await stats(group, SCOPED_TOKENS.leaseA)).scopes.global).toMatchObject({ in_use: 0, max: 1 });
    expect((await stats(group, SCOPED_TOKENS.adminA)).scopes["server:api/s"]).toMatchObject({ up: true });
    await grant(group, SCOPED_TOKENS.leaseA);
  });

  it("a token for group A cannot touch group B; patterns are globs or exact names", async () => {
    const a = freshGroup("scoped-a");
    const b = freshGroup("scoped-b");
    expect((await post(`/groups/${b}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminB)).status).toBe(200);
    await expectForbidden(post(`/groups/${b}/configure`, { spec: spec({ global: 1000 }) }, SCOPED_TOKENS.adminA));
    await expectForbidden(post(`/groups/${b}/server-state`, { backend: "x", server: "y", up: false }, SCOPED_TOKENS.adminA));
    await expectForbidden(get(`/groups/${b}/stats`, SCOPED_TOKENS.adminA));
    await expectForbidden(post(`/groups/${b}/acquire`, { request: request(["global"]), waiterId: "w" }, SCOPED_TOKENS.leaseA));
    await expectForbidden(post(`/groups/${a}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminB));
    expect((await stats(b, SCOPED_TOKENS.adminB)).scopes.global).toMatchObject({ in_use: 0, max: 1 });

    // `exact-shop` is one name, not a prefix.
    expect((await post("/groups/exact-shop/configure", { spec: spec({ global: 5 }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    await expectForbidden(post("/groups/exact-shop2/configure", { spec: spec({ global: 5 }) }, SCOPED_TOKENS.adminA));
    await expectForbidden(get("/groups/exact-shop/stats", SCOPED_TOKENS.leaseA2));
    // `scoped-a-*` needs the dash: `scoped-ab` is another group.
    await expectForbidden(get("/groups/scoped-ab/stats", SCOPED_TOKENS.leaseA));
  });

  it("refuses (401) a token one byte longer, shorter or different in its last byte, among several tokens", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    const t = SCOPED_TOKENS.leaseA;
    const last = t.charCodeAt(t.length - 1);
    for (const wrong of [`${t}x`, t.slice(0, -1), `${t.slice(0, -1)}${String.fromCharCode(last + 1)}`, `x${t.slice(1)}`, API_TOKEN]) {
      for (const res of await Promise.all([
        get("/ping", wrong),
        get(`/groups/${group}/stats`, wrong),
        post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "w" }, wrong),
      ])) {
        expect(res.status, wrong.length.toString()).toBe(401);
        expect(await res.json()).toEqual({ status: StoreStatus.Unauthorized, detail: "missing or wrong bearer token" });
      }
    }
    expect((await stats(group)).scopes.global).toMatchObject({ in_use: 0 });
    expect((await get("/ping", t)).status).toBe(200);
  });

  it("SLOTGATE_API_TOKEN keeps every permission next to SLOTGATE_API_TOKENS (given as a JSON array)", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 2 }) }, API_TOKEN, env.API_BOTH)).status).toBe(200);
    await expectForbidden(post(`/groups/${group}/configure`, { spec: spec({ global: 2 }) }, SCOPED_TOKENS.leaseA, env.API_BOTH));
    const lease = await grant(group, SCOPED_TOKENS.leaseA, env.API_BOTH);
    const other = freshGroup("other");
    expect((await post(`/groups/${other}/configure`, { spec: spec({ global: 2 }) }, API_TOKEN, env.API_BOTH)).status).toBe(200);
    await expectForbidden(get(`/groups/${other}/stats`, SCOPED_TOKENS.leaseA, env.API_BOTH));
    expect((await post(`/groups/${group}/release`, lease, SCOPED_TOKENS.leaseA, env.API_BOTH)).status).toBe(200);
  });

  it("a lease-only client over the slot API leases on the spec an admin pushed; its own configure is refused", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    const fetcher = (input: string, init: RequestInit) => env.API_SCOPED.fetch(input, init);
    const store = createDurableObjectHttpStore({ url: "https://api.example", token: SCOPED_TOKENS.leaseA, fetch: fetcher });
    const guard = createGuard({ store, group, limits: { global: 1 } });
    const first = await guard.acquire({ scopes: ["global"] });
    if (!first.ok) throw new Error("expected a grant");
    expect(JSON.stringify(first.lease)).not.toMatch(/secret/i);
    expect(await guard.acquire({ scopes: ["global"] })).toMatchObject({ ok: false, reason: "full" });
    expect(await first.lease.renew()).toBe(true);
    await first.lease.release();
    expect((await stats(group)).scopes.global).toMatchObject({ in_use: 0 });
    await expect(guard.configure({ limits: { global: 5 } })).rejects.toMatchObject({
      code: "SLOTGATE_STORE_UNAVAILABLE",
      retryable: false,
      message: expect.stringContaining("refused the operation"),
    });
    expect((await stats(group)).scopes.global).toMatchObject({ max: 1 });
    await guard.close();
  });
});

describe("lease ownership", () => {
  it("another token cannot release or renew a lease without its secret, and the lease stays held", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    const { leaseId, leaseSecret } = await grant(group, SCOPED_TOKENS.leaseA);

    // No secret: a malformed request, whoever sends it.
    for (const token of [SCOPED_TOKENS.leaseA2, SCOPED_TOKENS.leaseA]) {
      for (const res of await Promise.all([
        post(`/groups/${group}/release`, { leaseId }, token),
        post(`/groups/${group}/renew`, { leaseId, ttlMs: 60_000 }, token),
      ])) {
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ status: StoreStatus.BadRequest, detail: expect.stringContaining("leaseSecret") });
      }
    }
    // A wrong secret: answered as a lease that does not exist.
    const wrong = leaseSecret.startsWith("A") ? `B${leaseSecret.slice(1)}` : `A${leaseSecret.slice(1)}`;
    expect(await (await post(`/groups/${group}/release`, { leaseId, leaseSecret: wrong }, SCOPED_TOKENS.leaseA2)).json()).toEqual({ status: 0, value: false });
    expect(await (await post(`/groups/${group}/renew`, { leaseId, ttlMs: 60_000, leaseSecret: wrong }, SCOPED_TOKENS.leaseA2)).json()).toEqual({
      status: 0,
      value: { ok: false },
    });
    expect(await (await post(`/groups/${group}/release`, { leaseId: "no-such-lease", leaseSecret: wrong }, SCOPED_TOKENS.leaseA2)).json()).toEqual({
      status: 0,
      value: false,
    });
    expect((await stats(group)).scopes.global).toMatchObject({ in_use: 1 });
    expect(await (await post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: "second" }, SCOPED_TOKENS.leaseA2)).json()).toEqual({
      status: 0,
      value: { ok: false, reason: "full" },
    });

    // The secret is what counts, not the token: the holder, or whoever it handed the secret to.
    expect(await (await post(`/groups/${group}/renew`, { leaseId, ttlMs: 60_000, leaseSecret }, SCOPED_TOKENS.leaseA)).json()).toMatchObject({
      status: 0,
      value: { ok: true },
    });
    expect(await (await post(`/groups/${group}/release`, { leaseId, leaseSecret }, SCOPED_TOKENS.leaseA2)).json()).toEqual({ status: 0, value: true });
    expect((await stats(group)).scopes.global).toMatchObject({ in_use: 0 });
  });

  it("a queued ticket can be cancelled only with the token that queued it", async () => {
    const group = freshGroup("scoped-a");
    expect((await post(`/groups/${group}/configure`, { spec: spec({ global: 1 }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
    const holder = await grant(group, SCOPED_TOKENS.leaseA);
    const waiterId = crypto.randomUUID();
    const waiting = post(`/groups/${group}/acquire`, { request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId }, SCOPED_TOKENS.leaseA);
    await until(async () => (await stats(group)).tickets === 1);
    expect(await (await post(`/groups/${group}/cancel`, { waiterId }, SCOPED_TOKENS.leaseA2)).json()).toEqual({ status: 0, value: false });
    expect((await stats(group)).tickets).toBe(1);
    // An early cancel by another token does not doom a later acquire with that id either.
    const later = crypto.randomUUID();
    expect(await (await post(`/groups/${group}/cancel`, { waiterId: later }, SCOPED_TOKENS.leaseA2)).json()).toEqual({ status: 0, value: false });

    expect(await (await post(`/groups/${group}/release`, holder, SCOPED_TOKENS.leaseA)).json()).toEqual({ status: 0, value: true });
    const granted = await (await waiting).json<Granted>();
    expect(granted).toMatchObject({ status: 0, value: { ok: true }, leaseSecret: expect.any(String) });
    expect(
      await (await post(`/groups/${group}/release`, { leaseId: granted.value.lease.id, leaseSecret: granted.leaseSecret }, SCOPED_TOKENS.leaseA)).json(),
    ).toEqual({ status: 0, value: true });
    expect(await (await post(`/groups/${group}/acquire`, { request: request(["global"]), waiterId: later }, SCOPED_TOKENS.leaseA)).json()).toMatchObject({
      status: 0,
      value: { ok: true },
    });

    // The owner's cancel works.
    const queued = post(`/groups/${group}/acquire`, { request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId: "own" }, SCOPED_TOKENS.leaseA);
    await until(async () => (await stats(group)).tickets === 1);
    expect(await (await post(`/groups/${group}/cancel`, { waiterId: "own" }, SCOPED_TOKENS.leaseA)).json()).toEqual({ status: 0, value: true });
    expect(await (await queued).json()).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
  });

  it("keeps the secret's hash (never the secret) through a restart of the object", async () => {
    const group = freshGroup("restart-secret");
    const token = "restart-test-token-0123456789";
    const call = (op: string, body: unknown) =>
      handleSlotApiRequest(
        new Request(`${BASE}/groups/${group}/${op}`, {
          method: "POST",
          body: JSON.stringify(body),
          headers: { "content-type": "application/json", ...bearer(token) },
        }),
        { namespace: env.SLOT_GROUP, token },
      );
    expect((await call("configure", { spec: spec({ global: 1 }) })).status).toBe(200);
    const granted = await (await call("acquire", { request: request(["global"]), waiterId: "w" })).json<Granted>();
    const leaseId = granted.value.lease.id;
    const rows = await runInDurableObject(stubFor(group), (_i: SlotGroup, state) =>
      state.storage.sql.exec<{ secret_hash: string }>("SELECT secret_hash FROM slotgate_leases").toArray(),
    );
    expect(rows).toEqual([{ secret_hash: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(JSON.stringify(rows)).not.toContain(granted.leaseSecret);

    await restart(group);

    const wrong = `${granted.leaseSecret.slice(0, -1)}${granted.leaseSecret.endsWith("A") ? "B" : "A"}`;
    expect(await (await call("release", { leaseId, leaseSecret: wrong })).json()).toEqual({ status: 0, value: false });
    expect(await (await call("renew", { leaseId, ttlMs: 30_000, leaseSecret: granted.leaseSecret })).json()).toMatchObject({ status: 0, value: { ok: true } });
    expect(await (await call("release", { leaseId, leaseSecret: granted.leaseSecret })).json()).toEqual({ status: 0, value: true });
  });

  it("adds the secret column to the lease table of an object created before it, keeping its leases", async () => {
    const group = freshGroup("migrate");
    const stub = stubFor(group);
    await stub.configure(spec({ global: 2 }));
    const r = await stub.acquire(request(["global"]), "w");
    if (r.status !== 0 || !r.value.ok) throw new Error("expected a grant");
    const leaseId = r.value.lease.id;
    const after = await runInDurableObject(stub, (_i: SlotGroup, state) => {
      const sql = state.storage.sql;
      // The table as an earlier version left it.
      sql.exec("ALTER TABLE slotgate_leases DROP COLUMN secret_hash");
      const tables = new GroupTables(sql);
      return {
        leases: tables.load().snapshot.leases.map((l) => l.id),
        hash: tables.leaseSecretHash(leaseId),
        columns: sql
          .exec("PRAGMA table_info(slotgate_leases)")
          .toArray()
          .map((c) => c.name),
      };
    });
    expect(after).toEqual({ leases: [leaseId], hash: null, columns: expect.arrayContaining(["secret_hash"]) });
  });

  it("a lease granted over RPC (the Worker's own store) cannot be released over HTTP with any secret", async () => {
    const group = freshGroup("rpc-lease");
    const stub = stubFor(group);
    await stub.configure(spec({ global: 1 }));
    const r = await stub.acquire(request(["global"]), "w");
    if (r.status !== 0 || !r.value.ok) throw new Error("expected a grant");
    const token = "rpc-lease-test-token-0123456789";
    const res = await handleSlotApiRequest(
      new Request(`${BASE}/groups/${group}/release`, {
        method: "POST",
        body: JSON.stringify({ leaseId: r.value.lease.id, leaseSecret: "AAAAAAAAAAAAAAAAAAAAAA" }),
        headers: bearer(token),
      }),
      { namespace: env.SLOT_GROUP, token },
    );
    expect(await res.json()).toEqual({ status: 0, value: false });
    // Trusted code still releases it without a secret.
    expect(await stub.release(r.value.lease.id)).toEqual({ status: 0, value: true });
  });
});

describe("5xx bodies never carry internal text", () => {
  it("a SLOTGATE_API_TOKENS that does not validate closes the API with a generic 500", async () => {
    for (const worker of [env.API_BAD_TOKENS, env.API_BAD_JSON]) {
      for (const token of [BAD_CONFIG_TOKEN, "short"]) {
        const res = await get("/ping", token, worker);
        expect(res.status).toBe(500);
        expect(res.headers.get("x-slotgate-error")).toBe("api-config");
        const body = await res.text();
        expect(body).toBe("slot API misconfigured (see the Worker's logs)\n");
      }
    }
  });

  it("names every problem by its path and never shows a token", () => {
    const bad = (tokens: unknown, token?: unknown) => {
      const parsed = parseTokenVariables(token, tokens);
      if (parsed.kind !== "invalid") throw new Error(`expected problems, got ${parsed.kind}`);
      for (const p of parsed.problems) expect(p).not.toContain(BAD_CONFIG_TOKEN.slice(0, 12));
      return parsed.problems;
    };
    const entry = { token: BAD_CONFIG_TOKEN, permissions: ["lease"], groups: ["*"] };
    expect(bad(`[${JSON.stringify(entry)}`)).toEqual([expect.stringMatching(/^SLOTGATE_API_TOKENS: expected a JSON array .* do not parse$/)]);
    expect(bad({})).toEqual([expect.stringMatching(/^SLOTGATE_API_TOKENS: expected a JSON array/)]);
    expect(bad("[]")).toEqual([expect.stringContaining("at least one entry")]);
    expect(bad([{ ...entry, token: "short" }])).toEqual([
      "SLOTGATE_API_TOKENS[0].token: expected 16 to 4096 printable ASCII characters without spaces, got 5 characters (not shown)",
    ]);
    expect(bad([{ ...entry, token: `${BAD_CONFIG_TOKEN} with space` }])[0]).toMatch(/^SLOTGATE_API_TOKENS\[0\]\.token: .*\(not shown\)$/);
    expect(bad([entry, { ...entry, permissions: ["lease", "write"] }])).toEqual([
      expect.stringMatching(/^SLOTGATE_API_TOKENS\[1\]\.permissions\[1\]: expected "lease" or "admin", got "write"$/),
    ]);
    expect(bad([{ ...entry, permissions: [] }])[0]).toMatch(/^SLOTGATE_API_TOKENS\[0\]\.permissions: expected a non-empty array/);
    expect(bad([{ ...entry, groups: ["shop", "a(b|c)+"] }])[0]).toMatch(/^SLOTGATE_API_TOKENS\[0\]\.groups\[1\]: expected a group name or a glob/);
    expect(bad([{ ...entry, scope: "all" }])[0]).toMatch(/^SLOTGATE_API_TOKENS\[0\]: unknown key "scope"/);
    expect(bad([entry, { ...entry, groups: ["other"] }])).toEqual(["#1: expected a token of its own, got the same token as #0"]);
    expect(bad([entry], "short-token")).toEqual([
      "SLOTGATE_API_TOKEN: expected 16 to 4096 printable ASCII characters without spaces, got 11 characters (not shown)",
    ]);
    expect(parseTokenVariables(undefined, "")).toEqual({ kind: "disabled" });
    expect(parseTokenVariables(API_TOKEN, undefined)).toMatchObject({ kind: "entries", entries: [{ permissions: ["lease", "admin"], groups: ["*"] }] });
  });

  it("the object failing mid-call answers 503 with a fixed detail, not the runtime's error text", async () => {
    const group = freshGroup("fault");
    const token = "fault-test-token-0123456789";
    const marker = "internal-detail-7f3a9c";
    const call = (op: string, body: unknown) =>
      handleSlotApiRequest(new Request(`${BASE}/groups/${group}/${op}`, { method: "POST", body: JSON.stringify(body), headers: bearer(token) }), {
        namespace: env.SLOT_GROUP,
        token,
      });
    expect((await call("configure", { spec: spec({ global: 1 }) })).status).toBe(200);
    await call("acquire", { request: request(["global"]), waiterId: "holder" });
    // A queued acquire still within its plain-answer window when the object is torn down.
    const queued = call("acquire", { request: request(["global"], { queueTimeoutMs: 10_000 }), waiterId: "queued" });
    await until(async () => {
      const r = await stubFor(group).stats();
      return r.status === 0 && r.value.tickets === 1;
    });
    await runInDurableObject(stubFor(group), (_i: SlotGroup, state) => state.abort(marker)).catch(() => undefined);
    const res = await queued;
    const body = await res.text();
    expect(res.status).toBe(503);
    expect(body).not.toContain(marker);
    expect(JSON.parse(body)).toMatchObject({
      error: "SLOTGATE_STORE_UNAVAILABLE",
      detail: expect.stringMatching(/^acquire: the group's Durable Object (was reset|could not be reached)/),
      retryable: expect.any(Boolean),
    });
  });

  it("a fault of the API itself answers a generic 500", async () => {
    const token = "fault-test-token-0123456789";
    const res = await handleSlotApiRequest(new Request(`${BASE}/groups/g/stats`, { headers: bearer(token) }), {
      namespace: env.SLOT_GROUP,
      token,
      group: () => {
        throw new Error("internal-detail-of-a-bug");
      },
    });
    expect(res.status).toBe(500);
    expect(res.headers.get("x-slotgate-error")).toBe("internal");
    expect(await res.text()).toBe("slot API internal error\n");
  });
});

describe("group patterns", () => {
  it("match * globs without backtracking", () => {
    expect(globMatch("shop", "shop")).toBe(true);
    expect(globMatch("shop", "shop2")).toBe(false);
    expect(globMatch("*", "anything")).toBe(true);
    expect(globMatch("tenant-*", "tenant-")).toBe(true);
    expect(globMatch("tenant-*", "tenant-42")).toBe(true);
    expect(globMatch("tenant-*", "tenant")).toBe(false);
    expect(globMatch("*-eu", "shop-eu")).toBe(true);
    expect(globMatch("a*b*c", "abc")).toBe(true);
    expect(globMatch("a*b*c", "a-c-b")).toBe(false);
    expect(globMatch("a*ab", "aab")).toBe(true);
    expect(globMatch("a*a", "a")).toBe(false);
    expect(globMatch("x.y", "xzy")).toBe(false);
    // The shape that makes backtracking matchers exponential: linear here.
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) expect(globMatch(`${"a*".repeat(60)}b`, "a".repeat(128))).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
