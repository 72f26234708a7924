/**
 * The Worker end to end, inside workerd: the deployable bundle run as edge workers (one config of
 * edge-fixtures.ts each), called through service bindings (each call is an invocation of its own),
 * in front of a fake origin that records its own concurrency. The slots live in the SlotGroup
 * objects of the bundle, shared by every edge worker of a config.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EDGE_CONFIGS } from "./edge-fixtures.js";
import { edge, freshBucket, groupStats, originStats } from "./edge-helpers.js";
import { sleep, until } from "./helpers.js";

/** Waits until the group has `n` tickets queued. */
const ticketsAre = async (config: "priority" | "deny", n: number) => {
  let seen = -1;
  await until(async () => (seen = (await groupStats(config)).tickets) === n).catch(() => {
    throw new Error(`expected ${n} tickets in ${config}, saw ${seen}`);
  });
};
const originServing = (bucket: string, n: number) => until(async () => (await originStats(bucket)).current === n);
/** The status, once the body has been read (a lease is held until then). */
const statusOf = async (response: Response | Promise<Response>) => {
  const res = await response;
  await res.arrayBuffer();
  return res.status;
};

describe("the Worker as an edge proxy", () => {
  it("200 concurrent requests through two isolates: the origin never sees more than the backend's and each server's maxconn", async () => {
    const bucket = freshBucket("limit");
    const before = await groupStats("limit");
    const workers = [env.EDGE_LIMIT_1, env.EDGE_LIMIT_2];
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await edge(workers[i % 2]!, `/r/${i}?delay=25`, bucket);
        return { status: res.status, host: res.headers.get("x-origin-host"), body: await res.text() };
      }),
    );
    const elapsed = Date.now() - started;
    expect(replies.filter((r) => r.status !== 200)).toEqual([]);
    const o = await originStats(bucket);
    const { app } = EDGE_CONFIGS.limit.backends;
    expect(o.count).toBe(200);
    expect(o.max).toBeLessThanOrEqual(app.maxconn);
    expect(o.hosts["s1.origin.test"]!.max).toBeLessThanOrEqual(app.servers.s1.maxconn);
    expect(o.hosts["s2.origin.test"]!.max).toBeLessThanOrEqual(app.servers.s2.maxconn);
    // Saturated: the limit is reached, not just respected, and both servers took traffic.
    expect(o.max).toBe(app.maxconn);
    expect(new Set(replies.map((r) => r.host))).toEqual(new Set(["s1.origin.test", "s2.origin.test"]));
    await until(async () => (await groupStats("limit")).scopes["backend:app"]?.in_use === 0);
    const after = await groupStats("limit");
    expect(after.scopes["backend:app"]!.granted - (before.scopes["backend:app"]?.granted ?? 0)).toBe(200);
    expect(after.scopes["backend:app"]!.peak_in_use).toBe(app.maxconn);
    console.log(
      `[edge] 200 requests via 2 isolates in ${elapsed} ms; origin max ${o.max} (s1 ${o.hosts["s1.origin.test"]!.max}, s2 ${o.hosts["s2.origin.test"]!.max})`,
    );
  });

  it("grants by priority class under overload, then by arrival shifted by the offset", async () => {
    const bucket = freshBucket("priority");
    const send = (id: string, path: string, headers: Record<string, string> = {}) =>
      edge(env.EDGE_PRIORITY, path, bucket, { headers: { "x-test-id": id, ...headers } });
    const holder = send("holder", "/hold?delay=300");
    await originServing(bucket, 1);
    const queued: Promise<Response>[] = [];
    const plan: [string, string, Record<string, string>?][] = [
      ["low1", "/p/1?delay=10"],
      ["low2", "/p/2?delay=10"],
      ["checkout1", "/checkout/1?delay=10"],
      ["gold", "/p/3?delay=10", { "x-tier": "gold" }],
      ["low3", "/p/4?delay=10"],
      ["checkout2", "/checkout/2?delay=10"],
      ["regex-miss", `/api/${"/".repeat(2000)}?delay=10`],
      ["regex", `/api/${"/".repeat(2000)}x?delay=10`],
    ];
    for (const [i, [id, path, headers]] of plan.entries()) {
      queued.push(send(id, path, headers));
      await ticketsAre("priority", i + 1);
    }
    const statuses = await Promise.all([holder, ...queued].map(statusOf));
    expect(statuses.every((s) => s === 200)).toBe(true);
    // class 1 first (FIFO; the path_reg match too), then class 2: gold's -10s offset puts it before
    // the earlier arrivals.
    expect((await originStats(bucket)).arrivals).toEqual(["holder", "checkout1", "checkout2", "regex", "gold", "low1", "low2", "low3", "regex-miss"]);
  });

  it("rejects with deny_status, Retry-After and x-slotgate-reason: queue-full, queue-timeout, full", async () => {
    const bucket = freshBucket("deny");
    const key = (k: string) => ({ headers: { "x-api-key": k } });
    const holder = edge(env.EDGE_DENY, "/a?delay=1500", bucket, key("A"));
    await originServing(bucket, 1);
    const second = edge(env.EDGE_DENY, "/a", bucket, key("A"));
    await ticketsAre("deny", 1);

    // The keyed limit's queue (maxqueue 1) is full.
    const third = await edge(env.EDGE_DENY, "/a", bucket, key("A"));
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("1");
    expect(third.headers.get("x-slotgate-reason")).toBe("queue-full");
    expect(third.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await third.text()).toBe("429 Too Many Requests: no slot (queue-full)\n");

    // The queued one waits for its queue timeout (400ms).
    const t0 = Date.now();
    const timedOut = await second;
    expect(timedOut.status).toBe(429);
    expect(timedOut.headers.get("x-slotgate-reason")).toBe("queue-timeout");
    expect(timedOut.headers.get("retry-after")).toBe("1");
    await timedOut.body?.cancel();
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(await statusOf(holder)).toBe(200);

    // node.maxconn 4: the isolate sheds the fifth concurrent request at once, without the store.
    const held = ["B", "C", "D", "E"].map((k) => edge(env.EDGE_DENY, "/n?delay=800", bucket, key(k)));
    await originServing(bucket, 4);
    const shed = await edge(env.EDGE_DENY, "/n", bucket, key("F"));
    expect(shed.status).toBe(429);
    expect(shed.headers.get("x-slotgate-reason")).toBe("full");
    expect(shed.headers.get("retry-after")).toBe("1");
    await shed.body?.cancel();
    expect(await Promise.all(held.map(statusOf))).toEqual([200, 200, 200, 200]);

    const s = await groupStats("deny");
    expect(s.scopes["frontend:web:apikey"]).toMatchObject({ rejected_queue_full: expect.any(Number), queue_timeouts: expect.any(Number) });
    expect(s.scopes["frontend:web:apikey"]!.rejected_queue_full).toBeGreaterThanOrEqual(1);
    expect(s.scopes["frontend:web:apikey"]!.queue_timeouts).toBeGreaterThanOrEqual(1);
  });

  it("answers a key value too long for a keyed limit with 431, without touching the store", async () => {
    const bucket = freshBucket("431");
    const before = (await groupStats("deny")).scopes["frontend:web"]!;
    const res = await edge(env.EDGE_DENY, "/x", bucket, { headers: { "x-api-key": "k".repeat(2000) } });
    expect(res.status).toBe(431);
    expect(await res.text()).toContain("x-api-key");
    const after = (await groupStats("deny")).scopes["frontend:web"]!;
    expect(after.granted).toBe(before.granted);
    expect((await originStats(bucket)).count).toBe(0);
  });

  it("holds the lease while the body streams and releases it once the body has been read", async () => {
    const bucket = freshBucket("stream");
    const inUse = async () => (await groupStats("deny")).scopes["frontend:web"]!.in_use;
    await until(async () => (await inUse()) === 0);
    const res = await edge(env.EDGE_DENY, "/s?chunks=6&interval=100", bucket, { headers: { "x-api-key": "stream" } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    expect(await inUse()).toBe(1);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text.split("\n").filter(Boolean)).toHaveLength(6);
    await until(async () => (await inUse()) === 0, 1000);
  });

  it("releases the lease as soon as the client cancels the body", async () => {
    const bucket = freshBucket("cancel");
    const inUse = async () => (await groupStats("deny")).scopes["frontend:web"]!.in_use;
    await until(async () => (await inUse()) === 0);
    const res = await edge(env.EDGE_DENY, "/s?chunks=100&interval=100", bucket, { headers: { "x-api-key": "cancel" } });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await inUse()).toBe(1);
    const t0 = Date.now();
    await reader.cancel();
    await until(async () => (await inUse()) === 0, 2000);
    // The stream would have run for 10 s. (The upstream fetch is aborted too; whether a JavaScript
    // origin in the same workerd sees that as a cancel is up to the runtime, so it is not checked.)
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("renews the lease of a stream that outlives its TTL (lease_ttl 1s, a 2.5 s stream)", async () => {
    const bucket = freshBucket("renew");
    const before = (await groupStats("deny")).scopes["frontend:web"]!;
    const res = await edge(env.EDGE_DENY, "/s?chunks=25&interval=100", bucket, { headers: { "x-api-key": "renew" } });
    const reader = res.body!.getReader();
    let chunks = 0;
    let inUseLate = -1;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      if (++chunks === 20) inUseLate = (await groupStats("deny")).scopes["frontend:web"]!.in_use;
    }
    expect(chunks).toBe(25);
    expect(inUseLate).toBe(1);
    const after = (await groupStats("deny")).scopes["frontend:web"]!;
    expect(after.expired).toBe(before.expired);
  });

  it("a client that disconnects while queued leaves the queue at once", async () => {
    const bucket = freshBucket("gone");
    const holder = edge(env.EDGE_PRIORITY, "/hold?delay=1000", bucket, { headers: { "x-test-id": "holder" } });
    await originServing(bucket, 1);
    const before = (await groupStats("priority")).scopes["frontend:web"]!;
    const ac = new AbortController();
    const queued = edge(env.EDGE_PRIORITY, "/queued", bucket, { signal: ac.signal, headers: { "x-test-id": "queued" } }).then(
      () => "answered",
      (e: unknown) => (e as Error).name,
    );
    await ticketsAre("priority", 1);
    ac.abort();
    expect(await queued).toBe("AbortError");
    await ticketsAre("priority", 0);
    const after = (await groupStats("priority")).scopes["frontend:web"]!;
    expect(after.aborted - before.aborted).toBe(1);
    expect(await statusOf(holder)).toBe(200);
    await sleep(100);
    // The aborted request never reached the origin, and nothing is left holding a slot.
    expect((await originStats(bucket)).arrivals).toEqual(["holder"]);
    await until(async () => (await groupStats("priority")).scopes["frontend:web"]!.in_use === 0);
  });

  it("forwards as the Node edge node: hop-by-hop headers dropped both ways, x-forwarded-* set, bodies streamed", async () => {
    const bucket = freshBucket("headers");
    const res = await edge(env.EDGE_LIMIT_1, "/base/path?q=1&echo=1", bucket, {
      method: "POST",
      body: "payload",
      headers: {
        "x-forwarded-for": "203.0.113.7",
        "cf-connecting-ip": "198.51.100.9",
        connection: "x-private",
        "x-private": "1",
        "keep-alive": "timeout=5",
        "x-custom": "kept",
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-secret")).toBeNull();
    expect(res.headers.get("keep-alive")).toBeNull();
    const echo = await res.json<{ method: string; url: string; headers: Record<string, string>; body: string }>();
    expect(echo.method).toBe("POST");
    expect(echo.body).toBe("payload");
    expect(new URL(echo.url).pathname + new URL(echo.url).search).toBe("/base/path?q=1&echo=1");
    expect(echo.headers["x-custom"]).toBe("kept");
    expect(echo.headers["x-private"]).toBeUndefined();
    expect(echo.headers["keep-alive"]).toBeUndefined();
    // The client is no trusted proxy: its x-forwarded-for is replaced (the rule the Node edge node follows).
    expect(echo.headers["x-forwarded-for"]).toBe("198.51.100.9");
    expect(echo.headers["x-forwarded-proto"]).toBe("https");
    expect(echo.headers["x-forwarded-host"]).toBe("edge.example");
  });
});
