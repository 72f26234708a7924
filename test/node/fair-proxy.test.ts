// Fair queuing, early rejection and their numbers through the edge node, over real loopback HTTP
// (issue 13): what the origin received, what the client was answered, and what the stats
// listener shows (flow names as digests, never raw).

import { describe, expect, it } from "vitest";
import { flowDigest } from "../../src/node/stats/keys.js";
import { origin, request, startNode, until, type Reply } from "../support/edge.js";

const GROUP = "t";

/**
 * A node whose one server takes one request at a time, held by a first request for `gateMs`, so
 * that everything sent next queues in the order it is sent: `enqueue` sends a request and waits
 * until the store has queued it.
 */
async function gated(frontend: Record<string, unknown>, gateMs = 1000, top: Record<string, unknown> = {}) {
  const o = await origin({ delayMs: 10 });
  const s = await startNode({
    top,
    servers: { s1: { address: o.address, maxconn: 1 } },
    backend: { timeout: { queue: "10s", connect: "1s", server: "10s" } },
    frontend: { priority: [], ...frontend },
  });
  const replies: Array<Promise<Reply>> = [request(`${s.url}/gate?delay=${gateMs}`)];
  await until(() => o.current === 1);
  let queued = 0;
  const enqueue = async (path: string, headers: Record<string, string> = {}) => {
    replies.push(request(`${s.url}${path}`, { headers }));
    queued++;
    await until(async () => (await s.stats()).tickets === queued, 2000);
  };
  /** What the origin received after the gate, once every reply is in. */
  const served = async () => {
    const all = await Promise.all(replies);
    expect(all.map((r) => r.status)).toEqual(new Array(all.length).fill(200));
    return o.requests.slice(1);
  };
  return { s, o, enqueue, served };
}

describe("fair_by: a tenant's value reaches the store as the acquire's flow", () => {
  it("interleaves a light tenant's requests with a heavy tenant's 10x backlog (FIFO would serve them last)", async () => {
    const g = await gated({ fair_by: { header: "x-tenant" } });
    for (let i = 0; i < 20; i++) await g.enqueue(`/heavy/${i}`, { "x-tenant": "heavy" });
    for (let i = 0; i < 2; i++) await g.enqueue(`/light/${i}`, { "x-tenant": "light" });
    const served = await g.served();
    const order = served.map((r) => String(r.headers["x-tenant"]));
    // Start-time fair queuing: both flows backlogged and of weight 1, so each gets every other
    // grant: heavy, light, heavy, light, then the rest of the heavy backlog (FIFO: light last).
    expect(order.slice(0, 5), `origin order: ${order.join(",")}`).toEqual(["heavy", "light", "heavy", "light", "heavy"]);
    // Within a flow, FIFO.
    const heavy = served.filter((r) => r.headers["x-tenant"] === "heavy").map((r) => Number(r.url.split("/")[2]));
    expect(heavy).toEqual(Array.from({ length: 20 }, (_, i) => i));
  }, 20_000);

  it("weights flows by queue.flow_weights", async () => {
    const g = await gated({ fair_by: { query: "tenant" } }, 1000, { queue: { flow_weights: { gold: 3 } } });
    for (let i = 0; i < 8; i++) await g.enqueue(`/w?tenant=bronze&i=${i}`);
    for (let i = 0; i < 8; i++) await g.enqueue(`/w?tenant=gold&i=${i}`);
    const order = (await g.served()).slice(0, 8).map((r) => new URL(r.url, "http://x").searchParams.get("tenant"));
    // Of the first 8 grants with both flows backlogged, gold (weight 3) takes 6, bronze 2.
    expect(
      order.filter((t) => t === "gold"),
      `origin order: ${order.join(",")}`,
    ).toHaveLength(6);
  }, 20_000);

  it("keeps arrival order for requests without the header (no flow)", async () => {
    const g = await gated({ fair_by: { header: "x-tenant" } }, 500);
    for (let i = 0; i < 6; i++) await g.enqueue(`/n/${i}`);
    expect((await g.served()).map((r) => Number(r.url.split("/")[2]))).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe("queue_timeout_early", () => {
  it("answers 503 at once with a Retry-After from the store's estimate, counted rejected_early", async () => {
    const DELAY = 300;
    const o = await origin({ delayMs: DELAY });
    const s = await startNode({
      servers: { s1: { address: o.address, maxconn: 1 } },
      backend: { timeout: { queue: "1500ms", connect: "1s", server: "10s" } },
      frontend: { queue_timeout_early: true, priority: [] },
    });
    // Learn the hand-off rate: one request holds the slot, two are handed it from the queue.
    const first = await Promise.all([0, 1, 2].map((i) => request(`${s.url}/learn/${i}`)));
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);

    // Now a backlog: each request is sent once the one before is queued (or answered).
    const replies: Array<Promise<Reply>> = [];
    let rejected: Reply | undefined;
    for (let i = 0; i < 10 && rejected === undefined; i++) {
      const reply = request(`${s.url}/burst/${i}`);
      replies.push(reply);
      // Served or queued: the origin's one request and the queue add up to what was sent.
      const inside = until(async () => o.current + (await s.stats()).tickets >= i + 1, 2000).then(() => undefined);
      const settled = await Promise.race([reply, inside]);
      if (settled !== undefined && settled.status === 503) rejected = settled;
    }
    expect(rejected, "no request was rejected early").toBeDefined();
    expect(rejected!.headers["x-slotgate-reason"]).toBe("queue-timeout");
    // Rejected at once, not after waiting out its 1.5 s queue timeout.
    expect(rejected!.ms).toBeLessThan(500);
    // The estimate exceeded the 1.5 s timeout: Retry-After is at least 2 s (the constant is 1 s),
    // and no more than the whole backlog would take (every waiting request plus this one).
    const retryAfter = Number(rejected!.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(2);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(((replies.length + 1) * DELAY * 2) / 1000));
    const backend = await s.scope("backend:app");
    expect(backend.rejected_early).toBeGreaterThanOrEqual(1);
    // The wait it would have had: until the last request queued before it was done.
    const done = await Promise.all(replies);
    const lastQueued = done[done.length - 2]!;
    expect(lastQueued.status).toBe(200);
    expect(retryAfter * 1000).toBeGreaterThanOrEqual(lastQueued.ms / 2);
    expect(retryAfter * 1000).toBeLessThanOrEqual(2 * lastQueued.ms + 1000); // + the rounding up to whole seconds
    console.log(
      `[early] rejected after ${rejected!.ms.toFixed(0)} ms with Retry-After ${retryAfter} s behind ${done.length - 2} queued; the last of them was answered after ${lastQueued.ms.toFixed(0)} ms`,
    );
    const log = s.logs.find((l) => l.msg === "request rejected");
    expect(log).toMatchObject({ reason: "queue-timeout", status: 503 });
  }, 20_000);

  it("is off by default: the same backlog waits and times out instead", async () => {
    const o = await origin({ delayMs: 200 });
    const s = await startNode({
      servers: { s1: { address: o.address, maxconn: 1 } },
      backend: { timeout: { queue: "300ms", connect: "1s", server: "10s" } },
      frontend: { priority: [] },
    });
    const replies = await Promise.all([0, 1, 2, 3].map((i) => request(`${s.url}/x/${i}`)));
    const timedOut = replies.filter((r) => r.status === 503);
    expect(timedOut.length).toBeGreaterThan(0);
    for (const r of timedOut) {
      expect(r.headers["retry-after"]).toBe("1");
      expect(r.ms).toBeGreaterThanOrEqual(250);
    }
    expect((await s.scope("backend:app")).rejected_early ?? 0).toBe(0);
  });
});

describe("queue.discipline: codel", () => {
  it("answers requests that waited past the target at once once the queue stands, instead of at their queue timeout", async () => {
    const o = await origin({ delayMs: 50 });
    const s = await startNode({
      top: { queue: { discipline: "codel", target: "20ms", interval: "100ms" } },
      servers: { s1: { address: o.address, maxconn: 1 } },
      backend: { timeout: { queue: "5s", connect: "1s", server: "10s" } },
      frontend: { priority: [] },
    });
    // Sustained overload of one slot: 30 requests at once, 50 ms each (1.5 s of work).
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => request(`${s.url}/c/${i}`)));
    const dropped = replies.filter((r) => r.status === 503);
    expect(dropped.length).toBeGreaterThan(0);
    for (const r of dropped) {
      expect(r.headers["x-slotgate-reason"]).toBe("queue-timeout");
      // Far from the 5 s queue timeout: the standing queue was cut after about target + interval.
      expect(r.ms).toBeLessThan(2000);
    }
    const backend = await s.scope("backend:app");
    expect(backend.codel_dropped).toBe(dropped.length);
    expect(backend.queue_timeouts).toBe(0);
    expect(o.served).toBe(30 - dropped.length);
    console.log(
      `[codel] 30 requests on 1 slot of 50 ms: ${o.served} served, ${dropped.length} dropped after at most ${Math.max(...dropped.map((r) => r.ms)).toFixed(0)} ms`,
    );
  });
});

describe("stats: flows by digest", () => {
  const SECRET = "tenant-sk_live_0123456789abcdef";

  async function backlog(showKeys: boolean) {
    const o = await origin();
    const s = await startNode({
      top: { group: GROUP, stats: { bind: "127.0.0.1:0", show_keys: showKeys }, queue: { discipline: "codel", target: "5s", interval: "10s" } },
      servers: { s1: { address: o.address, maxconn: 1 } },
      frontend: { fair_by: { header: "x-tenant" }, priority: [] },
    });
    // Cut when the node stops: nobody waits for these answers.
    void request(`${s.url}/hang`, { headers: { "x-tenant": SECRET } }).catch(() => undefined);
    await until(() => o.current === 1);
    for (let i = 0; i < 2; i++) void request(`${s.url}/q`, { headers: { "x-tenant": SECRET } }).catch(() => undefined);
    await until(async () => (await s.stats()).tickets === 2);
    const base = `http://127.0.0.1:${s.node.statsAddress!.port}`;
    const get = async (path: string) => {
      const r = await fetch(`${base}${path}`);
      return { status: r.status, body: await r.text() };
    };
    const pages = { json: await get("/stats.json"), html: await get("/stats"), metrics: await get("/metrics") };
    return { s, pages };
  }

  it("shows each flow's digest, waiting, granted and share on the page, in JSON and in metrics; never the raw value", async () => {
    const { s, pages } = await backlog(false);
    const digest = flowDigest(GROUP, SECRET);
    for (const [name, page] of Object.entries(pages)) {
      expect(page.status, name).toBe(200);
      expect(page.body, name).not.toContain("sk_live_");
      expect(page.body, name).toContain(digest);
    }
    const json = JSON.parse(pages.json.body) as { stats: { flows: Record<string, { waiting: number; granted: number; share: number }>; queue: unknown } };
    expect(json.stats.flows).toEqual({ [digest]: { waiting: 2, granted: 0, share: 0 } });
    expect(json.stats.queue).toEqual({ discipline: "codel", standing: false });
    expect(pages.metrics.body).toContain(`slotgate_flow_waiting{flow="${digest}",group="${GROUP}"} 2`);
    expect(pages.metrics.body).toContain(`slotgate_queue_discipline{discipline="codel",group="${GROUP}"} 1`);
    expect(pages.metrics.body).toContain(`slotgate_queue_standing{group="${GROUP}"} 0`);
    expect(pages.metrics.body).toMatch(/slotgate_rejected_early_total\{scope="backend:app",kind="backend",group="t"\} 0/);
    expect(pages.metrics.body).toMatch(/slotgate_codel_dropped_total\{scope="backend:app",kind="backend",group="t"\} 0/);
    expect(pages.html.body).toMatch(
      new RegExp(`<tr class="flow" data-flow="${digest}"><td class="left"><span class="key">${digest}</span></td><td>2</td><td>0</td><td>0\\.0 %</td></tr>`),
    );
    expect(pages.html.body).toContain("<th>discipline</th><td>codel</td><th>standing</th><td>no</td>");
    await s.node.stop(0);
    expect(JSON.stringify(s.logs)).not.toContain("sk_live_");
  });

  it("shows raw flow names with stats.show_keys", async () => {
    const { s, pages } = await backlog(true);
    const json = JSON.parse(pages.json.body) as { stats: { flows: Record<string, unknown> } };
    expect(Object.keys(json.stats.flows)).toEqual([SECRET]);
    expect(pages.html.body).toContain(SECRET);
    expect(pages.metrics.body).toContain(`slotgate_flow_waiting{flow="${SECRET}",group="${GROUP}"} 2`);
    await s.node.stop(0);
  });
});
