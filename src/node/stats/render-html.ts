/**
 * The stats page: a pure function from a snapshot (plus the config and this node's numbers) to an
 * HTML document, in the spirit of HAProxy's stats page. One table per frontend (its row, then each
 * keyed limit's aggregate row and its busiest keys), one per backend (its row, then one row per
 * server with UP/DOWN), the global row, this node's process-local numbers, queue-wait quantiles
 * and histogram, the outage-policy (fallback) counters, and the spec and state-loss panel (this
 * node's spec version, whether the store runs a newer one, and leases re-registered or lost after
 * the store lost its state), and the queue panel: the group's discipline, whether its queue stands,
 * and its flows (digests unless `stats.show_keys`) with their waiting and granted requests and
 * share of grants. Each scope row also shows its early rejections and CoDel drops.
 *
 * Colour cues: a row at or above 80 % of its limit is amber, at its limit red, a server marked down
 * grey (a queue at its `maxqueue` colours the queue cells red). The page refreshes itself with
 * `<meta http-equiv="refresh">`; it has no script at all (the listener's CSP forbids scripts), and
 * every string is escaped: scope names carry client-chosen key values.
 */
import type { GuardStats } from "../../core/guard.js";
import type { ScopeStats, WaitHistogram } from "../../core/stats.js";
import type { EdgeConfig } from "../../edge/config/schema.js";
import { displayName, html, visible } from "./escape.js";
import {
  buildView,
  effectiveMax,
  type BackendView,
  type FrontendView,
  type NodeStats,
  type QueueView,
  type Row,
  type StatsView,
  type ViewOptions,
} from "./model.js";

export interface StatsPageInput {
  config: EdgeConfig;
  node: NodeStats;
  /** `null` when the store could not be read: the page then shows `error` and the node section. */
  stats: GuardStats | null;
  error?: { code: string; message: string } | null;
  generatedAt: Date;
  /** Seconds between automatic reloads; `null` or 0: none. */
  refreshSeconds: number | null;
  /** Query parameters to carry on links to the other endpoints (e.g. a token given as `?token=`). */
  linkQuery?: string;
  /** Key rows listed under each keyed limit. @default 20 */
  maxKeys?: number;
  /** Flows listed in the queue panel. @default 20 */
  maxFlows?: number;
}

/** Fraction of a limit from which a row is shown amber. */
export const NEAR_LIMIT = 0.8;

const COLUMNS = 17;

export function renderStatsPage(input: StatsPageInput): string {
  const { config, stats, node } = input;
  const refresh = input.refreshSeconds !== null && input.refreshSeconds > 0 ? input.refreshSeconds : null;
  const q = input.linkQuery ? `?${input.linkQuery}` : "";
  const parts: string[] = [];
  parts.push(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
${refresh === null ? "" : `<meta http-equiv="refresh" content="${refresh}">\n`}<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>slotgate stats — ${html(config.group)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1><span class="brand">slotgate</span> statistics</h1>
<p class="sub">group <b>${html(config.group)}</b> · store <b>${html(stats?.store ?? config.store.type)}</b> · generated ${html(input.generatedAt.toISOString())}
${refresh === null ? "· auto-refresh off" : `· refreshes every ${refresh} s`} · <a href="/stats.json${html(q)}">stats.json</a> · <a href="/metrics${html(q)}">metrics</a></p>
</header>
`);

  if (input.error || !stats) {
    const e = input.error ?? { code: "SLOTGATE_STORE_UNAVAILABLE", message: "no stats" };
    parts.push(
      `<div class="error" id="store-error"><b>Store unavailable</b> — cluster-wide numbers cannot be read right now (${html(e.code)}: ${displayName(e.message, "msg")}). This node's own numbers follow.</div>\n`,
    );
  }

  const options: ViewOptions = {};
  if (input.maxKeys !== undefined) options.maxKeys = input.maxKeys;
  if (input.maxFlows !== undefined) options.maxFlows = input.maxFlows;
  const view = stats ? buildView(stats, config, options) : null;
  parts.push(`<div class="panels">\n`);
  if (stats && view) parts.push(renderSummary(stats), renderSpecAndStateLoss(stats), renderQueue(view.queue), renderHistogram(stats.queueWait));
  parts.push(renderLegend(), `</div>\n`);
  parts.push(renderNode(node, config));

  if (view) parts.push(renderScopes(view));
  parts.push(`<footer>slotgate · numbers marked cluster-wide come from the shared store; "this node" numbers are process-local</footer>\n</body>\n</html>\n`);
  return parts.join("");
}

// ---------------------------------------------------------------------------------------------
// Panels

function renderSummary(stats: GuardStats): string {
  const q = stats.queueWaitQuantiles;
  const f = stats.fallback;
  const h = stats.queueWait;
  const mean = h.count === 0 ? 0 : h.sumMs / h.count;
  return `<section class="panel" id="summary">
<h2>Cluster</h2>
<table class="kv">
<tr><th>holders</th><td>${num(stats.holders)}</td><th>queued tickets</th><td>${num(stats.tickets)}</td></tr>
<tr><th>held by this node</th><td>${num(stats.localHolders)}</td><th>last fence</th><td>${num(stats.fence)}</td></tr>
</table>
<h2>Queue wait</h2>
<table class="kv" id="queue-wait">
<tr><th>p50</th><td>${ms(q.p50)}</td><th>p90</th><td>${ms(q.p90)}</td><th>p99</th><td>${ms(q.p99)}</td></tr>
<tr><th>grants</th><td>${num(h.count)}</td><th>mean</th><td>${ms(mean)}</td><th></th><td></td></tr>
</table>
<h2>Store outage decisions <small>(this node)</small></h2>
<table class="kv" id="fallback">
<tr><th>fail-closed</th><td>${num(f.fail_closed)}</td><th>fail-open</th><td>${num(f.fail_open)}</td></tr>
<tr><th>local</th><td>${num(f.local)}</td><th>store errors</th><td>${num(f.store_errors)}</td></tr>
</table>
</section>
`;
}

/** "—" for a field the snapshot does not have (an unversioned spec, a store that cannot lose its state). */
const ABSENT = "—";

function renderSpecAndStateLoss(stats: GuardStats): string {
  const spec = stats.spec;
  const loss = stats.stateLoss;
  const superseded = spec.superseded
    ? `<tr class="warn" id="spec-superseded"><th>superseded</th><td colspan="3">yes: this node runs an older version</td></tr>\n<tr><td colspan="4" class="note">The store decides this node's requests under a newer spec.</td></tr>`
    : `<tr id="spec-superseded"><th>superseded</th><td colspan="3">no</td></tr>`;
  let learning = ABSENT;
  let learningClass = "";
  if (loss && loss.learningUntil !== null && loss.learningUntil > stats.now) {
    const until = new Date(loss.learningUntil);
    learning = `${html(Number.isFinite(until.getTime()) ? until.toISOString() : String(loss.learningUntil))} (${ms(loss.learningUntil - stats.now)} left)`;
    learningClass = ` class="warn"`;
  } else if (loss) learning = "none";
  const lostClass = loss && loss.lost > 0 ? ` class="warn"` : "";
  return `<section class="panel" id="spec-state">
<h2>Spec <small>(this node)</small></h2>
<table class="kv" id="spec">
<tr><th>version</th><td>${spec.version === null ? ABSENT : num(spec.version)}</td><th>unavailable</th><td>${num(spec.unavailable)}</td></tr>
${superseded}
</table>
<h2>State loss <small>(cluster-wide, from the store)</small></h2>
<table class="kv" id="state-loss">
<tr><th>re-registered</th><td>${loss ? num(loss.reregistered) : ABSENT}</td><th>lost</th><td${lostClass}>${loss ? num(loss.lost) : ABSENT}</td></tr>
<tr${learningClass} id="learning"><th>learning until</th><td colspan="3">${learning}</td></tr>
</table>
</section>
`;
}

function renderQueue(q: QueueView): string {
  const standing = q.standing === null ? ABSENT : q.standing ? "yes" : "no";
  const rows = q.flows.map(
    (f) =>
      `<tr class="flow" data-flow="${html(scopeAttr(f.flow))}"><td class="left">${displayName(f.flow, "key")}</td><td>${num(f.waiting)}</td><td>${num(f.granted)}</td><td>${html(`${(f.share * 100).toFixed(1)} %`)}</td></tr>`,
  );
  if (q.flows.length === 0) rows.push(`<tr class="more"><td colspan="4">no flow is waiting</td></tr>`);
  if (q.moreFlows > 0) rows.push(`<tr class="more"><td colspan="4">${html(`… ${q.moreFlows} more flows (see /stats.json)`)}</td></tr>`);
  return `<section class="panel" id="queue">
<h2>Queue <small>(cluster-wide, from the store)</small></h2>
<table class="kv" id="queue-discipline">
<tr${q.standing === true ? ` class="warn"` : ""}><th>discipline</th><td>${html(q.discipline)}</td><th>standing</th><td>${standing}</td></tr>
</table>
<h2>Flows <small>(waiting now)</small></h2>
<table class="flows" id="flows">
<tr><th class="left">flow</th><th>waiting</th><th>granted</th><th>share</th></tr>
${rows.join("\n")}
</table>
</section>
`;
}

function renderHistogram(h: WaitHistogram): string {
  const top = Math.max(1, ...h.counts);
  const cells: string[] = [];
  const labels: string[] = [];
  const counts: string[] = [];
  h.counts.forEach((count, i) => {
    const bound = h.bounds[i];
    const label = bound === undefined ? "+Inf" : `≤${shortMs(bound)}`;
    const height = count === 0 ? 0 : Math.max(2, Math.round((count / top) * 60));
    cells.push(`<td class="bar"><div style="height:${height}px"></div></td>`);
    labels.push(`<th>${html(label)}</th>`);
    counts.push(`<td>${num(count)}</td>`);
  });
  return `<section class="panel" id="histogram">
<h2>Queue wait histogram <small>(grants per bucket, cluster-wide)</small></h2>
<table class="hist">
<tr>${cells.join("")}</tr>
<tr>${labels.join("")}</tr>
<tr class="counts">${counts.join("")}</tr>
</table>
</section>
`;
}

function renderLegend(): string {
  return `<section class="panel" id="legend">
<h2>Legend</h2>
<table class="legend">
<tr><td class="sw up"></td><td>server UP</td><td class="sw near"></td><td>≥ ${Math.round(NEAR_LIMIT * 100)} % of limit</td></tr>
<tr><td class="sw down"></td><td>server DOWN</td><td class="sw full"></td><td>at limit</td></tr>
</table>
<p class="note">Slots and queue: current, peak, limit. Rejected: full (no queueing) and queue-full (maxqueue reached); early: the estimated wait exceeded the queue timeout. CoDel drops: answered at once by a standing codel queue.</p>
</section>
`;
}

function renderNode(node: NodeStats, config: EdgeConfig): string {
  const rows: string[] = [];
  const cue = cueClass(node.nodeInUse, node.nodeMaxconn);
  rows.push(
    `<tr class="node${cue ? ` ${cue}` : ""}" data-scope="node"><td class="pxname">node</td><td>${num(node.nodeInUse)}</td><td>${limit(node.nodeMaxconn)}</td><td>-</td><td>-</td><td>-</td><td>-</td></tr>`,
  );
  const names = new Set([...Object.keys(config.frontends), ...Object.keys(node.frontends)]);
  for (const name of names) {
    const f = Object.hasOwn(node.frontends, name) ? node.frontends[name] : undefined;
    const rejected = f ? Object.entries(f.rejected).filter(([, n]) => n > 0) : [];
    const total = rejected.reduce((sum, [, n]) => sum + n, 0);
    const detail = rejected.length === 0 ? "-" : rejected.map(([reason, n]) => `${html(reason)} ${num(n)}`).join(", ");
    rows.push(
      `<tr class="frontend" data-scope="node:${html(name)}"><td>${displayName(name)}</td><td>${num(f?.active)}</td><td>-</td><td>${num(f?.queued)}</td><td>${num(f?.requests)}</td><td>${num(f ? total : undefined)}</td><td class="left">${detail}</td></tr>`,
    );
  }
  return `<section class="px" id="node">
<table class="tbl">
<caption><span class="pxtitle">This node</span> <small>process-local, not from the store</small></caption>
<thead><tr class="titre"><th class="left">Name</th><th>Active</th><th>Limit</th><th>Queued</th><th>Requests</th><th>Rejected</th><th class="left">Rejected by reason</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
</section>
`;
}

// ---------------------------------------------------------------------------------------------
// Scope tables

function renderScopes(view: StatsView): string {
  const parts: string[] = [];
  if (view.global) parts.push(table("global", "global", "cluster-wide", [scopeRow(view.global, "global", "global", "-")]));
  for (const f of view.frontends) parts.push(renderFrontend(f));
  for (const b of view.backends) parts.push(renderBackend(b));
  if (view.other.length > 0) {
    const rows = view.other.map((r) => scopeRow(r, "other", r.scope, "-"));
    if (view.moreOther > 0) rows.push(moreRow(`… ${view.moreOther} more scopes (see /stats.json)`));
    parts.push(table("other", "other scopes", "not declared in this node's config", rows));
  }
  return parts.join("");
}

function renderFrontend(f: FrontendView): string {
  const rows = [scopeRow(f.row, "frontend", "Frontend", f.row.stats ? "OPEN" : "-")];
  for (const l of f.limits) {
    const keys = l.row.stats?.keys;
    rows.push(scopeRow(l.row, "limit", `limit ${l.name}`, keys === undefined ? "-" : `${num(keys)} key${keys === 1 ? "" : "s"}`, "per key"));
    for (const k of l.keys) rows.push(scopeRow(k, "key", k.value, "-", undefined, true));
    if (l.moreKeys > 0) rows.push(moreRow(`… ${l.moreKeys} more keys (see /stats.json)`));
  }
  return table(`frontend-${f.name}`, f.name, `frontend · ${f.mode}`, rows);
}

function renderBackend(b: BackendView): string {
  const anyUp = b.servers.some((s) => s.up);
  const rows = [scopeRow(b.row, "backend", "Backend", anyUp ? "UP" : "DOWN")];
  for (const s of b.servers) rows.push(scopeRow(s, s.up ? "server up" : "server down", s.name, s.up ? "UP" : "DOWN"));
  return table(`backend-${b.name}`, b.name, `backend · ${b.balance}`, rows);
}

function table(id: string, title: string, subtitle: string, rows: string[]): string {
  return `<section class="px" id="${html(id)}">
<table class="tbl">
<caption><span class="pxtitle">${displayName(title, "pxname")}</span> <small>${html(subtitle)}</small></caption>
<thead>
<tr class="titre"><th rowspan="2" class="left">Name</th><th colspan="3">Slots</th><th colspan="3">Queue</th><th colspan="1">Granted</th><th colspan="2">Rejected</th><th rowspan="2">Queue<br>timeouts</th><th rowspan="2">Aborted</th><th rowspan="2">Expired</th><th rowspan="2">Released</th><th rowspan="2">Rejected<br>early</th><th rowspan="2">CoDel<br>drops</th><th rowspan="2">Status</th></tr>
<tr class="titre"><th>Cur</th><th>Peak</th><th>Limit</th><th>Cur</th><th>Peak</th><th>Limit</th><th>Total</th><th>Full</th><th>Q-full</th></tr>
</thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
</section>
`;
}

function moreRow(text: string): string {
  return `<tr class="more"><td colspan="${COLUMNS}">${html(text)}</td></tr>`;
}

function scopeRow(row: Row, rowClass: string, label: string, status: string, limitNote?: string, isKey = false): string {
  const s: ScopeStats | undefined = row.stats;
  const max = effectiveMax(s);
  // A keyed limit's aggregate row adds up all keys, while its limit is per key: no cue there.
  const cue = rowClass.endsWith("down") || row.kind === "keyed_limit" ? null : cueClass(s?.in_use, max);
  const queueCue = s && s.maxqueue !== null && s.queued >= s.maxqueue ? "full" : null;
  const classes = [rowClass, cue].filter(Boolean).join(" ");
  const name = isKey ? `<span class="keyarrow">↳</span> ${displayName(label, "key")}` : displayName(label);
  const limitCell = max === null ? "-" : `${num(max)}${limitNote ? ` <small>${html(limitNote)}</small>` : ""}`;
  const cells = [
    `<td class="left">${name}</td>`,
    `<td class="cur${cue ? ` ${cue}` : ""}">${num(s?.in_use)}</td>`,
    `<td>${num(s?.peak_in_use)}</td>`,
    `<td>${limitCell}</td>`,
    `<td class="cur${queueCue ? ` ${queueCue}` : ""}">${num(s?.queued)}</td>`,
    `<td>${num(s?.peak_queued)}</td>`,
    `<td>${limit(s ? s.maxqueue : undefined)}</td>`,
    `<td>${num(s?.granted)}</td>`,
    `<td>${num(s?.rejected_full)}</td>`,
    `<td>${num(s?.rejected_queue_full)}</td>`,
    `<td>${num(s?.queue_timeouts)}</td>`,
    `<td>${num(s?.aborted)}</td>`,
    `<td>${num(s?.expired)}</td>`,
    `<td>${num(s?.released)}</td>`,
    // Absent from a store of an older release: read as 0.
    `<td>${num(s ? (s.rejected_early ?? 0) : undefined)}</td>`,
    `<td>${num(s ? (s.codel_dropped ?? 0) : undefined)}</td>`,
    `<td class="status">${status}</td>`,
  ];
  return `<tr class="${html(classes)}" data-scope="${html(scopeAttr(row.scope))}">${cells.join("")}</tr>`;
}

/** The scope name for `data-scope` (tests and scrapers of the DOM): control characters visible, cut at 256. */
function scopeAttr(scope: string): string {
  const shown = visible(scope);
  return shown.length > 256 ? shown.slice(0, 256) : shown;
}

/** `full` at or over the limit, `near` from {@link NEAR_LIMIT} of it, else null. */
export function cueClass(inUse: number | undefined, max: number | null): "full" | "near" | null {
  if (inUse === undefined || max === null) return null;
  if (inUse >= max) return "full";
  return inUse >= max * NEAR_LIMIT ? "near" : null;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function num(n: number | undefined | null): string {
  return n === undefined || n === null || !Number.isFinite(n) ? "-" : html(String(n));
}

function limit(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : num(n);
}

function ms(value: number): string {
  if (value >= 1000) return `${html((value / 1000).toFixed(value >= 10_000 ? 0 : 1))} s`;
  return `${html(value < 10 ? value.toFixed(value === Math.trunc(value) ? 0 : 1) : Math.round(value).toString())} ms`;
}

function shortMs(bound: number): string {
  return bound >= 1000 ? `${bound / 1000}s` : `${bound}ms`;
}

const CSS = `
body{font-family:Arial,Helvetica,sans-serif;font-size:12px;color:#000;background:#fff;margin:10px 14px}
a{color:#3030a0}
header h1{font-size:20px;margin:0 0 2px}
.brand{color:#b00040}
.sub{color:#555;margin:0 0 10px}
h2{font-size:12px;margin:8px 0 3px;color:#b00040}
small{font-weight:normal;color:#666}
.panels{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start;margin-bottom:12px}
.panel{border:1px solid #999;background:#f8f8f0;padding:4px 10px 8px}
.kv{border-collapse:collapse}
.kv th{text-align:left;font-weight:normal;color:#444;padding:1px 6px 1px 0}
.kv td{text-align:right;font-weight:bold;padding:1px 14px 1px 0;font-variant-numeric:tabular-nums}
.hist{border-collapse:collapse}
.hist td,.hist th{padding:0 2px;text-align:center;font-size:10px;font-weight:normal;min-width:30px}
.hist td.bar{height:62px;vertical-align:bottom}
.hist td.bar div{background:#20a0a0;margin:0 auto;width:18px}
.hist tr.counts td{color:#333;font-variant-numeric:tabular-nums}
.legend td{padding:2px 4px}
.flows{border-collapse:collapse}
.flows th,.flows td{padding:1px 8px 1px 0;text-align:right;font-variant-numeric:tabular-nums}
.flows th{font-weight:normal;color:#444}
.flows .left{text-align:left;max-width:260px;overflow:hidden;text-overflow:ellipsis}
.legend .sw{width:18px;border:1px solid #888}
.note{color:#555;max-width:260px;margin:6px 0 0}
.px{margin:0 0 14px}
.tbl{border-collapse:collapse;min-width:960px;border:1px solid #888}
.tbl caption{text-align:left;padding:0;caption-side:top}
.pxtitle{display:inline-block;background:#b00040;color:#fff;font-weight:bold;padding:3px 10px;font-size:13px}
.pxtitle .pxname,.pxtitle .name{color:#fff}
.tbl th,.tbl td{border:1px solid #bbb;padding:2px 6px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.tbl .left{text-align:left}
.tbl tr.titre th{background:#20d0d0;color:#000;font-weight:bold;text-align:center}
.tbl td.left{max-width:520px;overflow:hidden;text-overflow:ellipsis}
tr.frontend,tr.backend,tr.global,tr.node{background:#e8e8d0;font-weight:bold}
tr.limit{background:#f0f0e4}
tr.key{background:#fafaf5;color:#333}
tr.key td.left{padding-left:18px}
.keyarrow{color:#999}
tr.server.up{background:#c0ffc0}
tr.server.down{background:#cfcfcf;color:#555}
tr.more td{background:#fff;color:#666;font-style:italic;text-align:left}
tr.near,tr.server.near{background:#ffd27f}
tr.full,tr.server.full{background:#ff8080}
td.cur.near{background:#ffb733;font-weight:bold}
td.cur.full{background:#ff4040;color:#fff;font-weight:bold}
td.status{text-align:center;font-weight:bold}
tr.server.up td.status{color:#060}
tr.server.down td.status{color:#800}
.sw.up{background:#c0ffc0}.sw.down{background:#cfcfcf}.sw.near{background:#ffd27f}.sw.full{background:#ff8080}
.kv tr.warn th,.kv tr.warn td,.kv td.warn{background:#ffd27f;color:#700}
.kv td[colspan]{text-align:left}
.kv td.note{font-weight:normal;color:#555}
.error{background:#ff8080;border:1px solid #a00;padding:6px 10px;margin:0 0 10px;max-width:960px}
.msg{font-family:monospace}
span.key,span.msg{font-family:monospace}
footer{color:#888;margin-top:16px;font-size:11px}
`;
