/**
 * The slot API's `batch` and `wait` routes, through the deployable bundle's scoped API worker
 * (SLOTGATE_API_TOKENS): each op authorised and checked as if sent alone, answered at its index;
 * lease secrets for granted and queued acquires; `wait` only for the token that queued; hostile
 * batches answered with a clean 4xx. Then the HTTP store client: the calls of one turn are one
 * request.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { StoreStatus } from "../../src/core/errors.js";
import { createGuard } from "../../src/index.js";
import { MAX_BATCH_OPS } from "../../src/stores/durable-object/batch-protocol.js";
import { createDurableObjectHttpStore } from "../../src/stores/durable-object/index.js";
import { MAX_SLOT_API_BODY_BYTES } from "../../src/stores/durable-object/slot-api-protocol.js";
import { SCOPED_TOKENS } from "./edge-fixtures.js";
import { burstThenLone, freshGroup, request, spec } from "./helpers.js";

const BASE = "https://api.example/_slotgate/v1";

function post(path: string, body: unknown, token: string): Promise<Response> {
  return env.API_SCOPED.fetch(`${BASE}${path}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
  });
}

type Entry = { status: number; value?: unknown; detail?: string; leaseSecret?: string };

async function batch(group: string, ops: unknown[], token: string = SCOPED_TOKENS.leaseA): Promise<Entry[]> {
  const res = await post(`/groups/${group}/batch`, { ops }, token);
  expect(res.status).toBe(200);
  const body = await res.json<{ status: number; value: Entry[] }>();
  expect(body.status).toBe(0);
  expect(body.value).toHaveLength(ops.length);
  return body.value;
}

async function configured(limit: number): Promise<string> {
  const group = freshGroup("scoped-a");
  expect((await post(`/groups/${group}/configure`, { spec: spec({ global: limit }, { api: { servers: { s: {} } } }) }, SCOPED_TOKENS.adminA)).status).toBe(200);
  return group;
}

const acquire = (waiterId: string, queueTimeoutMs = 0) => ({ op: "acquire", request: request(["global"], { queueTimeoutMs }), waiterId });

async function inUse(group: string): Promise<number> {
  const [s] = await batch(group, [{ op: "stats" }]);
  return (s!.value as { scopes: { global: { in_use: number } } }).scopes.global.in_use;
}

describe("slot API batches", () => {
  it("apply in arrival order; a granted acquire's entry carries its lease secret, which a release in a later batch presents", async () => {
    const group = await configured(1);
    const [first] = await batch(group, [acquire("a")]);
    expect(first).toMatchObject({ status: 0, value: { ok: true }, leaseSecret: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    const leaseId = (first!.value as { lease: { id: string } }).lease.id;
    const [full, released, second] = await batch(group, [acquire("b"), { op: "release", leaseId, leaseSecret: first!.leaseSecret }, acquire("c")]);
    expect(full).toEqual({ status: 0, value: { ok: false, reason: "full" } });
    expect(released).toEqual({ status: 0, value: true });
    expect(second).toMatchObject({ status: 0, value: { ok: true }, leaseSecret: expect.any(String) });
    expect(await inUse(group)).toBe(1);
  });

  it("authorises each op as if sent alone: a lease token's server-state and an admin token's acquire are refused in place", async () => {
    const group = await configured(2);
    const lease = await batch(group, [acquire("x"), { op: "server-state", backend: "api", server: "s", up: false }, { op: "stats" }], SCOPED_TOKENS.leaseA);
    expect(lease[0]).toMatchObject({ status: 0, value: { ok: true } });
    expect(lease[1]).toEqual({ status: StoreStatus.Forbidden, detail: `this token may not server-state on group ${group}` });
    expect(lease[2]).toMatchObject({ status: 0, value: { scopes: { global: { in_use: 1 }, "server:api/s": { up: true } } } });

    const admin = await batch(group, [acquire("y"), { op: "server-state", backend: "api", server: "s", up: false }], SCOPED_TOKENS.adminA);
    expect(admin[0]).toEqual({ status: StoreStatus.Forbidden, detail: `this token may not acquire on group ${group}` });
    expect(admin[1]).toEqual({ status: 0, value: null });
    expect(await inUse(group)).toBe(1);

    // No access to the group at all: the whole batch is refused before the body is read.
    const other = await post(`/groups/${freshGroup("scoped-b")}/batch`, { ops: [acquire("z")] }, SCOPED_TOKENS.leaseA);
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ status: StoreStatus.Forbidden });
  });

  it("a wrong lease secret in a batch answers as a lease that does not exist; the other ops go through", async () => {
    const group = await configured(1);
    const [held] = await batch(group, [acquire("a")]);
    const leaseId = (held!.value as { lease: { id: string } }).lease.id;
    const wrong = held!.leaseSecret!.startsWith("A") ? `B${held!.leaseSecret!.slice(1)}` : `A${held!.leaseSecret!.slice(1)}`;
    const r = await batch(
      group,
      [{ op: "release", leaseId, leaseSecret: wrong }, { op: "release", leaseId }, { op: "renew", leaseId, ttlMs: 1000, leaseSecret: wrong }, acquire("b")],
      SCOPED_TOKENS.leaseA2,
    );
    expect(r[0]).toEqual({ status: 0, value: false });
    expect(r[1]).toMatchObject({ status: StoreStatus.BadRequest, detail: expect.stringContaining("leaseSecret") });
    expect(r[2]).toEqual({ status: 0, value: { ok: false } });
    expect(r[3]).toEqual({ status: 0, value: { ok: false, reason: "full" } });
    expect(await inUse(group)).toBe(1);
  });

  it("a queued acquire answers `queued` with its secret; only the token that queued it may wait for it", async () => {
    const group = await configured(1);
    const [held] = await batch(group, [acquire("holder")]);
    const [queued] = await batch(group, [acquire("w", 10_000)]);
    expect(queued).toEqual({ status: 0, value: { queued: true }, leaseSecret: expect.any(String) });

    // Another token: answered as an unknown ticket, and its hanging up cancels nothing.
    const intruder = await post(`/groups/${group}/wait`, { waiterId: "w" }, SCOPED_TOKENS.leaseA2);
    expect(intruder.status).toBe(410);
    expect(await intruder.json()).toMatchObject({ status: StoreStatus.TicketGone });

    const waiting = post(`/groups/${group}/wait`, { waiterId: "w" }, SCOPED_TOKENS.leaseA);
    const leaseId = (held!.value as { lease: { id: string } }).lease.id;
    expect((await batch(group, [{ op: "release", leaseId, leaseSecret: held!.leaseSecret }]))[0]).toEqual({ status: 0, value: true });
    const res = await waiting;
    expect(res.status).toBe(200);
    const granted = await res.json<Entry>();
    expect(granted).toMatchObject({ status: 0, value: { ok: true } });
    // The grant is released with the secret the batch answered with.
    const id = (granted.value as { lease: { id: string } }).lease.id;
    expect((await batch(group, [{ op: "release", leaseId: id, leaseSecret: queued!.leaseSecret }]))[0]).toEqual({ status: 0, value: true });
  });

  it("answers a hostile batch with a clean 4xx and changes nothing", async () => {
    const group = await configured(1);
    const tooMany = Array.from({ length: MAX_BATCH_OPS + 1 }, (_, i) => acquire(`w${i}`));
    for (const body of [{}, { ops: [] }, { ops: "acquire" }, { ops: { 0: acquire("a") } }, { ops: tooMany }, [acquire("a")], "not json", '{"ops": [']) {
      const res = await post(`/groups/${group}/batch`, body, SCOPED_TOKENS.leaseA);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(await res.json()).toMatchObject({ status: StoreStatus.BadRequest });
    }
    const huge = await post(`/groups/${group}/batch`, { ops: [{ op: "stats", pad: "x".repeat(MAX_SLOT_API_BODY_BYTES) }] }, SCOPED_TOKENS.leaseA);
    expect(huge.status).toBe(413);
    await huge.body?.cancel();

    // Ops that are not calls of a route, or whose fields are wrong, are refused in place.
    const r = await batch(group, [
      { op: "batch", ops: [] },
      { op: "wait", waiterId: "x" },
      { op: "__proto__" },
      { op: "constructor" },
      null,
      7,
      { op: "acquire", waiterId: "x".repeat(500), request: request(["global"]) },
      { op: "acquire", waiterId: "y", request: { ...request(["global"]), scopes: "global" } },
      { op: "acquire", waiterId: "z", request: request(["x".repeat(5000)]) },
      { op: "renew", leaseId: "l", ttlMs: "soon", leaseSecret: "A".repeat(22) },
      { op: "stats" },
    ]);
    expect(r.slice(0, -1).map((e) => e.status)).toEqual(Array(10).fill(StoreStatus.BadRequest));
    expect(r.at(-1)).toMatchObject({ status: 0, value: { scopes: { global: { in_use: 0, granted: 0 } } } });
  });
});

describe("the HTTP store client batches the calls of one turn", () => {
  it("16 acquires and their releases are one request each; a lone call goes on its own route; queued ones wait", async () => {
    const group = await configured(100);
    const paths: string[] = [];
    const store = createDurableObjectHttpStore({
      url: "https://api.example",
      token: SCOPED_TOKENS.leaseA,
      fetch: (input, init) => {
        paths.push(new URL(input).pathname.split("/").at(-1)!);
        return env.API_SCOPED.fetch(input, init);
      },
    });
    const guard = createGuard({ store, group, limits: { global: 100 } });
    await guard.open();
    await burstThenLone(guard);
    // The lease token may not configure: its push on open is refused (403) and the handle uses the stored spec.
    // The first of each burst leaves at once on its own route, the other 15 share a batch.
    expect(paths).toEqual(["configure", "acquire", "batch", "release", "batch", "acquire", "release"]);
    expect((await guard.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 17, released: 17 });

    // Limit 1: a holder and 3 acquires queued by one batch, granted in order through their waits.
    const narrow = createGuard({ store, group: await configured(1), limits: { global: 1 } });
    const holder = await narrow.acquire({ scopes: ["global"], autoRenew: false });
    if (!holder.ok) throw new Error("expected a grant");
    paths.length = 0;
    const order: number[] = [];
    // Behind a call in flight, so that all three go in one batch (separate requests have no order).
    const inFlight = narrow.stats();
    const waiting = Array.from({ length: 3 }, (_, i) =>
      narrow.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, autoRenew: false }).then(async (r) => {
        if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
        order.push(i);
        await r.lease.release();
      }),
    );
    await inFlight;
    await new Promise((resolve) => setTimeout(resolve, 50));
    await holder.lease.release();
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2]);
    expect(paths.filter((p) => p === "wait")).toHaveLength(3);
    expect(paths.slice(0, 2)).toEqual(["stats", "batch"]);
    await narrow.close();
    await guard.close();
  });
});
