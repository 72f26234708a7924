// The queue's numbers on every stats output (issue 13), from a snapshot as a store reports it:
// flows by digest (raw with stats.show_keys) with waiting, granted and share of grants, the
// discipline and whether the queue stands, and each scope's rejected_early and codel_dropped.

import { afterEach, describe, expect, it } from "vitest";
import { createGuard, type GuardStats } from "../../src/index.js";
import { validateEdgeConfig, type EdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { flowDigest, publicStats } from "../../src/node/stats/keys.js";
import { createStatsMetrics } from "../../src/node/stats/metrics.js";
import type { NodeStats } from "../../src/node/stats/model.js";
import { renderStatsPage } from "../../src/node/stats/render-html.js";
import { formatStatsTable } from "../../src/node/stats-table.js";

const HOSTILE = '<script>alert("x")</script>';
const SECRET = "sk_live_tenant_secret_0123";

function config(showKeys = false, queue: Record<string, unknown> | undefined = { discipline: "codel" }): EdgeConfig {
  return validateEdgeConfig({
    group: "fq",
    ...(queue ? { queue } : {}),
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { header: "x-tenant" } } },
    backends: { app: { servers: { s1: { address: "127.0.0.1:9001", maxconn: 1 } } } },
    stats: { bind: "127.0.0.1:0", show_keys: showKeys },
  });
}

const node: NodeStats = { nodeMaxconn: null, nodeInUse: 0, frontends: { web: { active: 0, queued: 0, requests: 0, rejected: {} } } };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A real snapshot of the config's group, with the queue's fields as a store reports them. */
async function snapshot(c: EdgeConfig, extra: Partial<GuardStats>): Promise<GuardStats> {
  const guard = createGuard(toGuardOptions(c));
  cleanups.push(() => guard.close());
  const stats = await guard.stats();
  const backend = stats.scopes["backend:app"]!;
  Object.assign(backend, { rejected_early: 4, codel_dropped: 7 });
  return { ...stats, ...extra };
}

/** A snapshot of a store of an older release: no queue or flows fields. */
async function olderStore(c: EdgeConfig): Promise<GuardStats> {
  const { queue: _queue, flows: _flows, ...rest } = await snapshot(c, {});
  return rest;
}

const FLOWS = { [SECRET]: { waiting: 3, granted: 6 }, [HOSTILE]: { waiting: 1, granted: 2 }, calm: { waiting: 5, granted: 0 } };

describe("stats outputs: flows and the queue", () => {
  it("publicStats digests flow names, adds each flow's share of grants, and leaves the queue as it is", async () => {
    const c = config();
    const shown = publicStats(await snapshot(c, { flows: FLOWS, queue: { discipline: "codel", standing: true } }), c);
    expect(shown.flows).toEqual({
      [flowDigest("fq", SECRET)]: { waiting: 3, granted: 6, share: 0.75 },
      [flowDigest("fq", HOSTILE)]: { waiting: 1, granted: 2, share: 0.25 },
      [flowDigest("fq", "calm")]: { waiting: 5, granted: 0, share: 0 },
    });
    expect(shown.queue).toEqual({ discipline: "codel", standing: true });
    expect(JSON.stringify(shown)).not.toContain("sk_live_");
    const raw = publicStats(await snapshot(config(true), { flows: FLOWS }), config(true));
    expect(raw.flows![SECRET]).toEqual({ waiting: 3, granted: 6, share: 0.75 });
    // A flow named like a prototype key is an entry like any other, digested or raw.
    const proto = { ["__proto__"]: { waiting: 1, granted: 1 } };
    expect(Object.keys(publicStats(await snapshot(c, { flows: proto }), c).flows!)).toEqual([flowDigest("fq", "__proto__")]);
    const rawProto = publicStats(await snapshot(config(true), { flows: proto }), config(true)).flows!;
    expect(Object.keys(rawProto)).toEqual(["__proto__"]);
    expect(JSON.parse(JSON.stringify(rawProto))).toEqual(JSON.parse('{"__proto__":{"waiting":1,"granted":1,"share":1}}'));
    // No flows in the snapshot (a store of an older release): none added.
    expect(publicStats(await olderStore(c), c)).not.toHaveProperty("flows");
  });

  it("the page shows the discipline, a standing queue in amber, flows most waiting first, and the new counters", async () => {
    const c = config();
    const stats = publicStats(await snapshot(c, { flows: FLOWS, queue: { discipline: "codel", standing: true } }), c);
    const page = renderStatsPage({ config: c, node, stats, generatedAt: new Date(0), refreshSeconds: null });
    expect(page).not.toContain("sk_live_");
    expect(page).not.toContain("<script>");
    expect(page).toContain(`<tr class="warn"><th>discipline</th><td>codel</td><th>standing</th><td>yes</td></tr>`);
    const flows = [
      ...page.matchAll(/<tr class="flow" data-flow="([^"]+)"><td class="left">.*?<\/td><td>(\d+)<\/td><td>(\d+)<\/td><td>([\d.]+ %)<\/td><\/tr>/g),
    ].map((m) => m.slice(1));
    expect(flows).toEqual([
      [flowDigest("fq", "calm"), "5", "0", "0.0 %"],
      [flowDigest("fq", SECRET), "3", "6", "75.0 %"],
      [flowDigest("fq", HOSTILE), "1", "2", "25.0 %"],
    ]);
    const row = /<tr class="backend[^"]*" data-scope="backend:app">(.*?)<\/tr>/.exec(page)![1]!;
    const cells = [...row.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ""));
    expect(cells.slice(-3)).toEqual(["4", "7", "UP"]);
  });

  it("caps the flows listed, and says how many more there are", async () => {
    const c = config();
    const many = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`t${i}`, { waiting: i + 1, granted: 1 }]));
    const stats = publicStats(await snapshot(c, { flows: many, queue: { discipline: "codel", standing: false } }), c);
    const page = renderStatsPage({ config: c, node, stats, generatedAt: new Date(0), refreshSeconds: null, maxFlows: 5 });
    expect(page.match(/<tr class="flow"/g)).toHaveLength(5);
    expect(page).toContain("… 25 more flows (see /stats.json)");
    expect(page).toContain(`data-flow="${flowDigest("fq", "t29")}"`);
  });

  it("without the store's word, the page shows the config's discipline and standing as —", async () => {
    const c = config(false, { discipline: "lifo" });
    const page = renderStatsPage({ config: c, node, stats: await olderStore(c), generatedAt: new Date(0), refreshSeconds: null });
    expect(page).toContain("<tr><th>discipline</th><td>lifo</td><th>standing</th><td>—</td></tr>");
    expect(page).toContain("no flow is waiting");
  });

  it("metrics: discipline, standing, per-flow series by digest (capped), rejected_early and codel_dropped per scope", async () => {
    const c = config();
    const stats = publicStats(await snapshot(c, { flows: FLOWS, queue: { discipline: "codel", standing: true } }), c);
    const text = await createStatsMetrics(c).render({ stats, node });
    expect(text).not.toContain("sk_live_");
    expect(text).toContain('slotgate_queue_discipline{discipline="codel",group="fq"} 1');
    expect(text).toContain('slotgate_queue_standing{group="fq"} 1');
    const secret = flowDigest("fq", SECRET);
    expect(text).toContain(`slotgate_flow_waiting{flow="${secret}",group="fq"} 3`);
    expect(text).toContain(`slotgate_flow_granted{flow="${secret}",group="fq"} 6`);
    expect(text).toContain(`slotgate_flow_grant_share{flow="${secret}",group="fq"} 0.75`);
    expect(text).toContain('slotgate_rejected_early_total{scope="backend:app",kind="backend",group="fq"} 4');
    expect(text).toContain('slotgate_codel_dropped_total{scope="backend:app",kind="backend",group="fq"} 7');
    expect(text).toContain("# TYPE slotgate_rejected_early_total counter");
    const capped = await createStatsMetrics(c, { flowRows: 1 }).render({ stats, node });
    expect(capped.match(/^slotgate_flow_waiting\{/gm)).toHaveLength(1);
    expect(capped).toContain(`slotgate_flow_waiting{flow="${flowDigest("fq", "calm")}",group="fq"} 5`);
    // A store that does not say whether the queue stands: no standing series.
    const silent = await createStatsMetrics(c).render({ stats: await olderStore(c), node });
    expect(silent).not.toMatch(/^slotgate_queue_standing\{/m);
    expect(silent).toContain('slotgate_queue_discipline{discipline="codel",group="fq"} 1');
  });

  it("slotgate stats prints the queue line and the flows, terminal-safe", async () => {
    const c = config(true);
    const stats = publicStats(await snapshot(c, { flows: { "a\u001b[2Jb": { waiting: 2, granted: 1 } }, queue: { discipline: "codel", standing: false } }), c);
    const table = formatStatsTable(stats, c);
    expect(table).toContain("\nqueue (cluster-wide): discipline codel · standing no · 1 flow waiting\n");
    expect(table).toContain("  flow a\\x1b[2Jb: waiting 2 · granted 1 · share 100.0%\n");
    expect(table).not.toContain("\u001b");
    expect(table).toMatch(/REJ_EARLY +CODEL/);
    expect(table).toMatch(/backend:app .* 4 +7\n/);
  });
});
