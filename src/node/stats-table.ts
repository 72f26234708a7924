/**
 * `slotgate stats`: the fleet's live numbers as a plain-text table, one row per scope in the
 * config's order (the same order as the stats page). Key values are user input: every row name
 * is made safe for a terminal (no control characters or escape sequences) and cut.
 */
import type { GuardStats } from "../core/guard.js";
import type { EdgeConfig } from "../edge/config/schema.js";
import type { NodeStats } from "./frontend.js";
import { allRows, buildView, effectiveMax, type QueueView, type Row } from "./stats/model.js";

const MAX_NAME = 48;

/** Makes text safe to print: control and format characters become `\xNN` / `\u{…}`, long text is cut. */
export function terminalSafe(text: string, max = MAX_NAME): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (/\p{Cf}|\p{Zl}|\p{Zp}|\p{Co}|\p{Cs}/u.test(ch)) out += `\\u{${cp.toString(16)}}`;
    else out += ch;
    if (out.length > max) return `${out.slice(0, max - 1)}…`;
  }
  return out;
}

function ms(value: number): string {
  return value >= 10_000 ? `${(value / 1000).toFixed(0)}s` : value >= 1000 ? `${(value / 1000).toFixed(1)}s` : `${Math.round(value)}ms`;
}

function label(row: Row): string {
  const name = terminalSafe(row.scope);
  if (row.kind === "key") return `  ${name}`;
  if (row.kind === "server") return `  ${name}${row.stats?.up === false ? " (down)" : ""}`;
  if (row.kind === "keyed_limit") return `  ${name} (per key${row.stats?.keys === undefined ? "" : `, ${row.stats.keys} active`})`;
  return name;
}

const ABSENT = "—";

/**
 * The spec line (this node's version, superseded, `unavailable` answers) and the state-loss line
 * (re-registered, lost, learning window; cluster-wide, from the store). The spec is node-local: it
 * is shown when the numbers came from a node (its stats listener), or when it says something; a
 * snapshot read straight from the store has the spec of no guard. Fields the snapshot lacks (an
 * unversioned spec, a store that cannot lose its state, a node of an older release) are "—".
 */
function specAndStateLoss(stats: GuardStats, fromNode: boolean): string[] {
  const lines: string[] = [];
  const spec = (stats as Partial<GuardStats>).spec;
  if (spec && (fromNode || spec.version !== null || spec.superseded || spec.unavailable > 0)) {
    const version = typeof spec.version === "number" ? String(spec.version) : ABSENT;
    const superseded = spec.superseded ? "yes (this node runs an older version; the store decides its requests under a newer spec)" : "no";
    lines.push(
      `spec (this node): version ${version} · unavailable ${typeof spec.unavailable === "number" ? spec.unavailable : ABSENT} · superseded ${superseded}`,
    );
  }
  const loss = stats.stateLoss;
  let learning = ABSENT;
  if (loss && typeof loss.learningUntil === "number" && loss.learningUntil > stats.now) {
    const until = new Date(loss.learningUntil);
    learning = `${Number.isFinite(until.getTime()) ? until.toISOString() : loss.learningUntil} (${ms(loss.learningUntil - stats.now)} left)`;
  } else if (loss) learning = "none";
  lines.push(`state loss (cluster-wide): re-registered ${loss ? loss.reregistered : ABSENT} · lost ${loss ? loss.lost : ABSENT} · learning until ${learning}`);
  return lines;
}

/** The queue's discipline and its flows (names as the snapshot gives them: digests unless `stats.show_keys`). */
function queueLines(q: QueueView): string[] {
  const standing = q.standing === null ? ABSENT : q.standing ? "yes" : "no";
  const flows = q.flows.length + q.moreFlows;
  const lines = [`queue (cluster-wide): discipline ${q.discipline} · standing ${standing} · ${flows} flow${flows === 1 ? "" : "s"} waiting`];
  for (const f of q.flows) {
    lines.push(`  flow ${terminalSafe(f.flow)}: waiting ${f.waiting} · granted ${f.granted} · share ${(f.share * 100).toFixed(1)}%`);
  }
  if (q.moreFlows > 0) lines.push(`  … ${q.moreFlows} more flows not shown`);
  return lines;
}

/** The table for `slotgate stats`. */
export function formatStatsTable(stats: GuardStats, config: EdgeConfig, node?: NodeStats): string {
  const view = buildView(stats, config, { maxKeys: 20, maxOther: 100 });
  const header = [
    "SCOPE",
    "IN_USE/MAX",
    "QUEUED",
    "PEAK_USE",
    "PEAK_Q",
    "GRANTED",
    "REJ_FULL",
    "REJ_QFULL",
    "TIMEOUTS",
    "ABORTED",
    "EXPIRED",
    "REJ_EARLY",
    "CODEL",
  ];
  const rows: string[][] = [header];
  for (const row of allRows(view)) {
    const s = row.stats;
    if (!s) {
      rows.push([label(row), ...header.slice(1).map(() => "-")]);
      continue;
    }
    const max = effectiveMax(s);
    rows.push([
      label(row),
      `${s.in_use}/${max === null ? "-" : max}`,
      String(s.queued),
      String(s.peak_in_use),
      String(s.peak_queued),
      String(s.granted),
      String(s.rejected_full),
      String(s.rejected_queue_full),
      String(s.queue_timeouts),
      String(s.aborted),
      String(s.expired),
      // Absent from a store of an older release: read as 0.
      String(s.rejected_early ?? 0),
      String(s.codel_dropped ?? 0),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );

  const q = stats.queueWaitQuantiles;
  const out = [
    `group ${terminalSafe(stats.group)} · store ${stats.store} · holders ${stats.holders} · queued ${stats.tickets} · fence ${stats.fence}`,
    `queue wait: p50 ${ms(q.p50)} · p90 ${ms(q.p90)} · p99 ${ms(q.p99)} (${stats.queueWait.count} grants)`,
    "",
    ...lines,
  ];
  if (view.moreOther > 0) out.push(`  … ${view.moreOther} more scopes not shown`);
  out.push("", ...queueLines(view.queue));
  const moreKeys = view.frontends.flatMap((f) => f.limits).reduce((n, l) => n + l.moreKeys, 0);
  if (moreKeys > 0) out.push(`  … ${moreKeys} more active keys not shown`);
  out.push("", ...specAndStateLoss(stats, node !== undefined));
  const fb = stats.fallback;
  if (fb.fail_closed + fb.fail_open + fb.local + fb.store_errors > 0) {
    out.push(
      "",
      `store outage decisions (this process): fail-closed ${fb.fail_closed} · fail-open ${fb.fail_open} · local ${fb.local} · store errors ${fb.store_errors}`,
    );
  }
  if (node) {
    out.push("", `this node: in use ${node.nodeInUse}/${node.nodeMaxconn ?? "-"}`);
    for (const [name, f] of Object.entries(node.frontends)) {
      const rejected = Object.entries(f.rejected)
        .filter(([, n]) => n > 0)
        .map(([reason, n]) => `${reason} ${n}`)
        .join(", ");
      out.push(`  ${terminalSafe(name)}: active ${f.active} · queued ${f.queued} · requests ${f.requests}${rejected ? ` · not served: ${rejected}` : ""}`);
    }
  }
  return `${out.join("\n")}\n`;
}
