/**
 * The stats listener's view of a snapshot: the store's flat scope rows (`GuardStats.scopes`)
 * arranged the way the config declares them, so that the HTML page and the Prometheus exporter
 * agree on what each row is.
 *
 * Scope names (see config/to-guard.ts):
 * - `global`                               kind `global`
 * - `frontend:<f>`                         kind `frontend`
 * - `frontend:<f>:<limit>`                 kind `keyed_limit` (the aggregate row of a keyed limit)
 * - `frontend:<f>:<limit>:<value>`         kind `key` (one row per active key value: user input!)
 * - `backend:<b>`, `server:<b>/<s>`        kinds `backend`, `server`
 * - anything else                          kind `other` (a scope the config does not declare, e.g.
 *                                          written by a node running a newer config)
 *
 * Beside the scopes, the group's queue: its discipline, whether it stands (rule D), and its flows
 * (rule F: the flows with waiting tickets, their names already digested by keys.ts unless
 * `stats.show_keys`), each with its share of the grants the listed flows received.
 */
import type { GuardStats } from "../../core/guard.js";
import { MAX_LIMIT, backendScope, serverScope } from "../../core/spec.js";
import type { FlowStats, ScopeStats } from "../../core/stats.js";
import { GLOBAL_SCOPE, frontendScope, keyedLimitName } from "../../edge/config/to-guard.js";
import type { EdgeConfig } from "../../edge/config/schema.js";

/** The edge node's own numbers (not from the store): what the proxy reports about this process. */
export interface NodeStats {
  /** `node.maxconn` of the config; `null`: unlimited. */
  nodeMaxconn: number | null;
  /** Slots this process holds right now, across all frontends. */
  nodeInUse: number;
  frontends: Record<string, { active: number; queued: number; requests: number; rejected: Record<string, number> }>;
}

export type ScopeKind = "global" | "frontend" | "keyed_limit" | "key" | "backend" | "server" | "other";

export interface Row {
  /** Full scope name (may hold a hostile key value: escape before display). */
  scope: string;
  kind: ScopeKind;
  /** `undefined`: the store has no row for it (yet). */
  stats: ScopeStats | undefined;
}

export interface KeyedLimitView {
  name: string;
  row: Row;
  /** The busiest keys first, at most `maxKeys`. */
  keys: Array<Row & { value: string }>;
  /** Active keys not listed. */
  moreKeys: number;
}

export interface FrontendView {
  name: string;
  mode: string;
  row: Row;
  limits: KeyedLimitView[];
}

export interface BackendView {
  name: string;
  balance: string;
  row: Row;
  servers: Array<Row & { name: string; up: boolean }>;
}

/** One flow of the queue: `flow` is its displayed name (a digest unless `stats.show_keys`: user input!). */
export interface FlowRow extends FlowStats {
  flow: string;
  /** Its grants over the grants of every flow listed in the snapshot, 0–1 (0 when none were granted). */
  share: number;
}

export interface QueueView {
  /** The store's (the config's when the store reports none: a store of an older release). */
  discipline: string;
  /** Whether the queue stands now; `null`: the store does not say. */
  standing: boolean | null;
  /** Most waiting first, at most `maxFlows`. */
  flows: FlowRow[];
  /** Flows not listed. */
  moreFlows: number;
}

export interface StatsView {
  global: Row | null;
  queue: QueueView;
  frontends: FrontendView[];
  backends: BackendView[];
  /** Scopes the config does not declare, sorted by name, at most `maxOther`. */
  other: Row[];
  moreOther: number;
}

/** Limits at or above this are shown as unlimited: an unlimited frontend is stored with max 1e9. */
export function effectiveMax(stats: ScopeStats | undefined): number | null {
  const max = stats?.max ?? null;
  return max === null || max >= MAX_LIMIT ? null : max;
}

export interface ViewOptions {
  /** Key rows listed under each keyed limit. @default 20 */
  maxKeys?: number;
  /** Undeclared scopes listed. @default 200 */
  maxOther?: number;
  /** Flows listed. @default 20 */
  maxFlows?: number;
}

export function buildView(stats: GuardStats, config: EdgeConfig, options: ViewOptions = {}): StatsView {
  const maxKeys = options.maxKeys ?? 20;
  const maxOther = options.maxOther ?? 200;
  const scopes = stats.scopes;
  const row = (scope: string, kind: ScopeKind): Row => ({ scope, kind, stats: Object.hasOwn(scopes, scope) ? scopes[scope] : undefined });
  const claimed = new Set<string>();
  const claim = (r: Row): Row => {
    claimed.add(r.scope);
    return r;
  };

  // Key rows, bucketed by their limit's prefix in one pass over the scopes.
  const keyPrefixes = new Map<string, Array<Row & { value: string }>>();
  for (const f of Object.values(config.frontends)) {
    for (const l of f.limits) keyPrefixes.set(`${keyedLimitName(f.name, l.name)}:`, []);
  }
  for (const name of Object.keys(scopes)) {
    if (!name.startsWith("frontend:")) continue;
    // `frontend:<f>:<limit>:` — frontend and limit names never contain ":".
    const second = name.indexOf(":", "frontend:".length);
    const third = second < 0 ? -1 : name.indexOf(":", second + 1);
    if (third < 0) continue;
    const bucket = keyPrefixes.get(name.slice(0, third + 1));
    if (!bucket) continue;
    claimed.add(name);
    bucket.push({ scope: name, kind: "key", stats: scopes[name], value: name.slice(third + 1) });
  }

  const global = config.global.maxconn !== null || Object.hasOwn(scopes, GLOBAL_SCOPE) ? claim(row(GLOBAL_SCOPE, "global")) : null;

  const frontends: FrontendView[] = Object.values(config.frontends).map((f) => ({
    name: f.name,
    mode: f.mode,
    row: claim(row(frontendScope(f.name), "frontend")),
    limits: f.limits.map((l) => {
      const name = keyedLimitName(f.name, l.name);
      const keys = keyPrefixes.get(`${name}:`) ?? [];
      keys.sort(byBusiest);
      return { name: l.name, row: claim(row(name, "keyed_limit")), keys: keys.slice(0, maxKeys), moreKeys: Math.max(0, keys.length - maxKeys) };
    }),
  }));

  const backends: BackendView[] = Object.values(config.backends).map((b) => ({
    name: b.name,
    balance: b.balance,
    row: claim(row(backendScope(b.name), "backend")),
    servers: b.servers.map((s) => {
      const r = claim(row(serverScope(b.name, s.name), "server"));
      return { ...r, name: s.name, up: r.stats?.up ?? !s.down };
    }),
  }));

  const otherNames = Object.keys(scopes)
    .filter((n) => !claimed.has(n))
    .sort();
  const other = otherNames.slice(0, maxOther).map((n) => row(n, "other"));
  return { global, queue: queueView(stats, config, options.maxFlows ?? 20), frontends, backends, other, moreOther: otherNames.length - other.length };
}

/** Each flow with its share of the grants of all of them (FlowStats is what the store reports). */
export function flowShares(flows: Readonly<Record<string, FlowStats>> | undefined): FlowRow[] {
  if (flows === undefined) return [];
  const rows = Object.entries(flows).map(([flow, f]) => ({ flow, waiting: f.waiting, granted: f.granted, share: 0 }));
  const total = rows.reduce((sum, r) => sum + (Number.isFinite(r.granted) && r.granted > 0 ? r.granted : 0), 0);
  if (total > 0) for (const r of rows) r.share = Number.isFinite(r.granted) && r.granted > 0 ? r.granted / total : 0;
  return rows;
}

function queueView(stats: GuardStats, config: EdgeConfig, maxFlows: number): QueueView {
  const flows = flowShares(stats.flows).sort((a, b) => b.waiting - a.waiting || b.granted - a.granted || (a.flow < b.flow ? -1 : a.flow > b.flow ? 1 : 0));
  return {
    discipline: stats.queue?.discipline ?? config.queue?.discipline ?? "fifo",
    standing: stats.queue ? stats.queue.standing : null,
    flows: flows.slice(0, maxFlows),
    moreFlows: Math.max(0, flows.length - maxFlows),
  };
}

function byBusiest(a: Row & { value: string }, b: Row & { value: string }): number {
  const d = (b.stats?.in_use ?? 0) - (a.stats?.in_use ?? 0) || (b.stats?.queued ?? 0) - (a.stats?.queued ?? 0);
  if (d !== 0) return d;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** Every row of the view in display order (key rows included), for exporters. */
export function allRows(view: StatsView): Row[] {
  const rows: Row[] = [];
  if (view.global) rows.push(view.global);
  for (const f of view.frontends) {
    rows.push(f.row);
    for (const l of f.limits) rows.push(l.row, ...l.keys);
  }
  for (const b of view.backends) rows.push(b.row, ...b.servers);
  rows.push(...view.other);
  return rows;
}
