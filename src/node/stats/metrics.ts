/**
 * `/metrics`: the snapshot in Prometheus text format (0.0.4), through prom-client with a private
 * {@link Registry} (never the global default one, so that an embedding application's metrics and
 * ours cannot clash, and two listeners in one process stay apart).
 *
 * Metrics (every series also carries `group`):
 *
 * | name | type | labels | what |
 * |---|---|---|---|
 * | `slotgate_in_use` | gauge | scope, kind | slots held, cluster-wide |
 * | `slotgate_max` | gauge | scope, kind | limit (absent when unlimited; for kind `keyed_limit` the per-key limit) |
 * | `slotgate_maxqueue` | gauge | scope, kind | queue limit (absent when unlimited) |
 * | `slotgate_queued` | gauge | scope, kind | tickets waiting |
 * | `slotgate_peak_in_use`, `slotgate_peak_queued` | gauge | scope, kind | peaks the store has seen |
 * | `slotgate_keys` | gauge | scope, kind | active keys of a keyed limit (kind `keyed_limit`) |
 * | `slotgate_server_up` | gauge | scope, kind | 1 up, 0 marked down (kind `server`) |
 * | `slotgate_granted_total`, `slotgate_rejected_full_total`, `slotgate_rejected_queue_full_total`, `slotgate_queue_timeouts_total`, `slotgate_aborted_total`, `slotgate_expired_total`, `slotgate_released_total` | counter | scope, kind | SPEC §3 counters, cluster-wide |
 * | `slotgate_rejected_early_total` | counter | scope, kind | acquires rejected at once because the store's estimate of their wait exceeded their queue timeout (`queue_timeout_early`), on the scope they would have waited on |
 * | `slotgate_codel_dropped_total` | counter | scope, kind | tickets a standing codel queue answered `queue-timeout` at once |
 * | `slotgate_queue_discipline` | gauge | discipline | 1 for the group's discipline (`fifo`, `codel`, `lifo`) |
 * | `slotgate_queue_standing` | gauge | | 1 while the queue stands (its minimum wait stayed above the target for an interval), else 0 (absent when the store does not say) |
 * | `slotgate_flow_waiting`, `slotgate_flow_granted` | gauge | flow | per flow with waiting requests: requests waiting, and granted since the flow started waiting |
 * | `slotgate_flow_grant_share` | gauge | flow | the flow's share (0–1) of the grants of all flows with waiting requests |
 * | `slotgate_holders`, `slotgate_tickets` | gauge | | leases held / tickets queued in the group |
 * | `slotgate_local_holders` | gauge | | leases this node holds |
 * | `slotgate_queue_wait_seconds` | histogram | le | wait of every grant (0 for an immediate grant), cluster-wide |
 * | `slotgate_fallback_decisions_total` | counter | policy | this node's outage-policy decisions (`fail-closed`, `fail-open`, `local`) |
 * | `slotgate_store_errors_total` | counter | | this node's renew/release calls that failed on a store fault |
 * | `slotgate_store_up` | gauge | | 1 if the store answered this scrape, else 0 (and the store's series are absent) |
 * | `slotgate_spec_version` | gauge | | this node's spec version (absent when unversioned) |
 * | `slotgate_spec_superseded` | gauge | | 1 when the store runs another (newer) spec than this node's, else 0 |
 * | `slotgate_scope_unavailable_total` | counter | | this node's acquires answered `unavailable` because the store's spec has no scope they named |
 * | `slotgate_leases_reregistered_total`, `slotgate_leases_lost_total` | counter | | leases re-created after the store lost its state / that could not be, cluster-wide (absent on a store that cannot lose its state, e.g. memory) |
 * | `slotgate_learning` | gauge | | 1 while a learning window after a state loss is in progress, else 0 (absent as above) |
 * | `slotgate_learning_remaining_seconds` | gauge | | seconds left of that window on the store's clock, 0 when none (absent as above) |
 * | `slotgate_node_in_use`, `slotgate_node_maxconn` | gauge | | this process's slots and `node.maxconn` |
 * | `slotgate_node_frontend_active`, `slotgate_node_frontend_queued` | gauge | frontend | this process, per frontend |
 * | `slotgate_node_frontend_requests_total` | counter | frontend | this process, per frontend |
 * | `slotgate_node_frontend_rejected_total` | counter | frontend, reason | this process, per frontend and reason |
 *
 * `kind` is one of `global`, `frontend`, `keyed_limit`, `key`, `backend`, `server`, `other` (see
 * model.ts).
 *
 * Counters: the totals live in the store (they are cluster-wide, and survive this process), so the
 * exporter does not count anything itself: on each scrape it resets prom-client `Counter`s and sets
 * them to the store's totals. They are typed `counter`, so `rate()` works, and a total that goes
 * back (a memory store restarted, a key row dropped when idle and created again) reads as a
 * counter reset, which PromQL handles. Every node of a fleet exports the same cluster-wide
 * totals: aggregate with `max by (scope)`, not `sum`.
 *
 * The histogram comes from the store's fixed buckets (WAIT_BUCKETS_MS), converted to seconds and
 * made cumulative; `_count` equals the `+Inf` bucket, `_sum` is in seconds.
 *
 * Cardinality: keyed limits create one scope per distinct client value, and those values are the
 * clients' choice. By default only each keyed limit's aggregate row is exported (kind
 * `keyed_limit`), never per-key rows; `keyRows: N` exports the N busiest keys of each limit
 * (label values escaped by prom-client). Scopes the config does not declare are capped at 200.
 * Flows are client values too: the `flow` label is the flow's digest (keys.ts) unless
 * `stats.show_keys`, and only the `flowRows` flows with the most waiting requests are exported.
 */
import { Counter, Gauge, Histogram, Registry, type MetricType } from "prom-client";
import type { GuardStats } from "../../core/guard.js";
import type { QueueCounters, ScopeCounters, ScopeStats, WaitHistogram } from "../../core/stats.js";
import type { EdgeConfig } from "../../edge/config/schema.js";
import { allRows, buildView, effectiveMax, type NodeStats, type Row } from "./model.js";

export interface StatsMetricsOptions {
  /** Busiest keys exported per keyed limit. @default 0 (aggregate rows only) */
  keyRows?: number;
  /** Flows exported, most waiting first. @default 20 */
  flowRows?: number;
}

export interface StatsMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** Updates every metric from one snapshot and renders them. `stats: null`: the store is down. */
  render(snapshot: { stats: GuardStats | null; node: NodeStats }): Promise<string>;
}

type ScopeLabel = "scope" | "kind";
const SCOPE_LABELS: ScopeLabel[] = ["scope", "kind"];

const COUNTER_HELP: Record<keyof ScopeCounters, string> = {
  granted: "Slots granted, cluster-wide.",
  rejected_full: "Acquires rejected at once because the scope was full and queueing was not allowed, cluster-wide.",
  rejected_queue_full: "Acquires rejected because a maxqueue on the chain was reached, cluster-wide.",
  queue_timeouts: "Tickets that ended with queue-timeout, cluster-wide.",
  aborted: "Tickets cancelled (client gone, signal aborted), cluster-wide.",
  expired: "Leases reclaimed because their holder stopped renewing, cluster-wide.",
  released: "Leases released by their holder, cluster-wide.",
};

const QUEUE_COUNTER_HELP: Record<keyof QueueCounters, string> = {
  rejected_early:
    "Acquires rejected at once because the estimated wait exceeded their queue timeout (queue_timeout_early), on the scope they would have waited on, cluster-wide.",
  codel_dropped: "Tickets a standing codel queue answered queue-timeout at once, cluster-wide.",
};

export function createStatsMetrics(config: EdgeConfig, options: StatsMetricsOptions = {}): StatsMetrics {
  const keyRows = options.keyRows ?? 0;
  const flowRows = options.flowRows ?? 20;
  const registry = new Registry();
  registry.setDefaultLabels({ group: config.group });
  const registers = [registry];
  const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) => new Gauge<L>({ name, help, labelNames, registers });
  const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) => new Counter<L>({ name, help, labelNames, registers });

  const inUse = gauge("slotgate_in_use", "Slots held in the scope, cluster-wide.", SCOPE_LABELS);
  const max = gauge("slotgate_max", "The scope's limit (absent when unlimited).", SCOPE_LABELS);
  const maxqueue = gauge("slotgate_maxqueue", "The scope's queue limit (absent when unlimited).", SCOPE_LABELS);
  const queued = gauge("slotgate_queued", "Tickets waiting on the scope, cluster-wide.", SCOPE_LABELS);
  const peakInUse = gauge("slotgate_peak_in_use", "Highest slots held in the scope seen by the store.", SCOPE_LABELS);
  const peakQueued = gauge("slotgate_peak_queued", "Highest tickets waiting on the scope seen by the store.", SCOPE_LABELS);
  const keys = gauge("slotgate_keys", "Active keys (holding or queued) of a keyed limit.", SCOPE_LABELS);
  const serverUp = gauge("slotgate_server_up", "1 while the server may be chosen, 0 while marked down.", SCOPE_LABELS);
  const counters = Object.fromEntries(
    (Object.keys(COUNTER_HELP) as (keyof ScopeCounters)[]).map((name) => [name, counter(`slotgate_${name}_total`, COUNTER_HELP[name], SCOPE_LABELS)]),
  ) as Record<keyof ScopeCounters, Counter<ScopeLabel>>;
  const queueCounters = Object.fromEntries(
    (Object.keys(QUEUE_COUNTER_HELP) as (keyof QueueCounters)[]).map((name) => [
      name,
      counter(`slotgate_${name}_total`, QUEUE_COUNTER_HELP[name], SCOPE_LABELS),
    ]),
  ) as Record<keyof QueueCounters, Counter<ScopeLabel>>;
  const discipline = gauge("slotgate_queue_discipline", "1 for the group's queue discipline (fifo, codel, lifo).", ["discipline"]);
  const standing = gauge(
    "slotgate_queue_standing",
    "1 while the group's queue stands (its minimum wait stayed above the target for an interval), else 0; absent when the store does not say.",
  );
  const flowWaiting = gauge("slotgate_flow_waiting", "Requests of the flow waiting in the queue, cluster-wide (flow: its digest unless stats.show_keys).", [
    "flow",
  ]);
  const flowGranted = gauge("slotgate_flow_granted", "Requests of the flow granted from the queue since the flow started waiting, cluster-wide.", ["flow"]);
  const flowShare = gauge("slotgate_flow_grant_share", "The flow's share (0-1) of the grants of all flows with waiting requests.", ["flow"]);

  const holders = gauge("slotgate_holders", "Leases held in the group, cluster-wide.");
  const tickets = gauge("slotgate_tickets", "Tickets queued in the group, cluster-wide.");
  const localHolders = gauge("slotgate_local_holders", "Leases this node holds.");
  const wait = new FixedBucketHistogram(registry);
  const fallback = counter("slotgate_fallback_decisions_total", "This node's acquires decided by the store-outage policy (on_store_error).", ["policy"]);
  const storeErrors = counter("slotgate_store_errors_total", "This node's renew and release calls that failed on a store fault.");
  const storeUp = gauge("slotgate_store_up", "1 if the store answered this scrape, 0 if it could not be read.");

  const specVersion = gauge(
    "slotgate_spec_version",
    "The version of this node's spec (absent when unversioned); nodes below the fleet's highest run under the store's newer spec.",
  );
  const specSuperseded = gauge(
    "slotgate_spec_superseded",
    "1 when the store runs another spec than this node's (a newer version), so this node runs an older version; else 0.",
  );
  const scopeUnavailable = counter(
    "slotgate_scope_unavailable_total",
    "This node's acquires answered unavailable because the store's spec has no scope they named (removed or renamed by a newer version).",
  );
  const reregistered = counter(
    "slotgate_leases_reregistered_total",
    "Leases re-created by their holders' renewals after the store lost the group's state, cluster-wide (absent when the store cannot lose its state).",
  );
  const lost = counter(
    "slotgate_leases_lost_total",
    "Leases lost with the store's state that could not be re-created, cluster-wide (absent when the store cannot lose its state).",
  );
  const learning = gauge(
    "slotgate_learning",
    "1 while the group is in a learning window after a state loss (nothing new is granted), else 0; cluster-wide (absent when the store cannot lose its state).",
  );
  const learningLeft = gauge(
    "slotgate_learning_remaining_seconds",
    "Seconds left of the current learning window on the store's clock, 0 when none (absent when the store cannot lose its state).",
  );
  const optional = [specVersion, specSuperseded, scopeUnavailable, reregistered, lost, learning, learningLeft, standing];

  const nodeInUse = gauge("slotgate_node_in_use", "Slots this process holds (process-local).");
  const nodeMax = gauge("slotgate_node_maxconn", "node.maxconn of this process (absent when unlimited).");
  const feActive = gauge("slotgate_node_frontend_active", "Requests or connections this process holds, per frontend.", ["frontend"]);
  const feQueued = gauge("slotgate_node_frontend_queued", "Requests or connections this process has queued, per frontend.", ["frontend"]);
  const feRequests = counter("slotgate_node_frontend_requests_total", "Requests or connections this process received, per frontend.", ["frontend"]);
  const feRejected = counter("slotgate_node_frontend_rejected_total", "Requests or connections this process rejected, per frontend and reason.", [
    "frontend",
    "reason",
  ]);

  function update(stats: GuardStats | null, node: NodeStats): void {
    registry.resetMetrics();
    storeUp.set(stats ? 1 : 0);
    nodeInUse.set(node.nodeInUse);
    if (node.nodeMaxconn !== null) nodeMax.set(node.nodeMaxconn);
    for (const [frontend, f] of Object.entries(node.frontends)) {
      feActive.set({ frontend }, f.active);
      feQueued.set({ frontend }, f.queued);
      feRequests.inc({ frontend }, f.requests);
      for (const [reason, n] of Object.entries(f.rejected)) feRejected.inc({ frontend, reason }, n);
    }
    wait.snapshot = stats ? stats.queueWait : null;
    // prom-client gives an unlabelled metric a 0 sample on reset: a series that has nothing to
    // report (no snapshot, an unversioned spec, a store that cannot lose its state) is removed.
    for (const metric of optional) metric.remove();
    if (!stats) return;

    holders.set(stats.holders);
    tickets.set(stats.tickets);
    localHolders.set(stats.localHolders);
    fallback.inc({ policy: "fail-closed" }, stats.fallback.fail_closed);
    fallback.inc({ policy: "fail-open" }, stats.fallback.fail_open);
    fallback.inc({ policy: "local" }, stats.fallback.local);
    storeErrors.inc(stats.fallback.store_errors);

    if (stats.spec.version !== null) specVersion.set(stats.spec.version);
    specSuperseded.set(stats.spec.superseded ? 1 : 0);
    scopeUnavailable.inc(nonNegative(stats.spec.unavailable));
    const loss = stats.stateLoss;
    if (loss) {
      reregistered.inc(nonNegative(loss.reregistered));
      lost.inc(nonNegative(loss.lost));
      const left = loss.learningUntil === null ? 0 : nonNegative(loss.learningUntil - stats.now) / 1000;
      learning.set(left > 0 ? 1 : 0);
      learningLeft.set(left);
    }

    const view = buildView(stats, config, { maxKeys: keyRows, maxFlows: flowRows });
    discipline.set({ discipline: view.queue.discipline }, 1);
    if (view.queue.standing !== null) standing.set(view.queue.standing ? 1 : 0);
    for (const f of view.queue.flows) {
      flowWaiting.set({ flow: f.flow }, nonNegative(f.waiting));
      flowGranted.set({ flow: f.flow }, nonNegative(f.granted));
      flowShare.set({ flow: f.flow }, nonNegative(f.share));
    }
    for (const row of allRows(view)) {
      const s: ScopeStats | undefined = row.stats;
      if (!s) continue;
      const labels = labelsOf(row);
      inUse.set(labels, s.in_use);
      const limit = effectiveMax(s);
      if (limit !== null) max.set(labels, limit);
      if (s.maxqueue !== null) maxqueue.set(labels, s.maxqueue);
      queued.set(labels, s.queued);
      peakInUse.set(labels, s.peak_in_use);
      peakQueued.set(labels, s.peak_queued);
      if (s.keys !== undefined) keys.set(labels, s.keys);
      if (s.up !== undefined) serverUp.set(labels, s.up ? 1 : 0);
      for (const name of Object.keys(counters) as (keyof ScopeCounters)[]) counters[name].inc(labels, nonNegative(s[name]));
      // Absent from a store of an older release: read as 0.
      for (const name of Object.keys(queueCounters) as (keyof QueueCounters)[]) queueCounters[name].inc(labels, nonNegative(s[name] ?? 0));
    }
  }

  // Scrapes are serialised: update() and the registry's read of the values must not interleave.
  let chain: Promise<unknown> = Promise.resolve();
  return {
    registry,
    contentType: registry.contentType,
    render(snapshot) {
      const next = chain.then(() => {
        update(snapshot.stats, snapshot.node);
        return registry.metrics();
      });
      chain = next.catch(() => undefined);
      return next;
    },
  };
}

function labelsOf(row: Row): Record<ScopeLabel, string> {
  return { scope: row.scope, kind: row.kind };
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * A histogram whose buckets are already counted (by the store): prom-client's Histogram can only
 * observe values one by one, so this one overrides the export with the snapshot's counts, made
 * cumulative, in seconds. The registry calls `getForPromString()` for the text format and `get()`
 * for JSON.
 */
const WAIT_NAME = "slotgate_queue_wait_seconds";
const WAIT_HELP = "Queue wait of every grant (0 for an immediate grant), cluster-wide.";
type HistogramExport = Awaited<ReturnType<Histogram<"le">["get"]>>;

class FixedBucketHistogram extends Histogram<"le"> {
  snapshot: WaitHistogram | null = null;

  constructor(registry: Registry) {
    super({ name: WAIT_NAME, help: WAIT_HELP, labelNames: [], registers: [registry] });
  }

  override reset(): void {
    super.reset();
    this.snapshot = null;
  }

  async getForPromString(): Promise<HistogramExport> {
    return this.#export();
  }

  override async get(): Promise<HistogramExport> {
    return this.#export();
  }

  #export(): HistogramExport {
    const values: HistogramExport["values"] = [];
    const h = this.snapshot;
    if (h) {
      let cumulative = 0;
      h.counts.forEach((count, i) => {
        cumulative += nonNegative(count);
        const bound = h.bounds[i];
        values.push({ metricName: `${WAIT_NAME}_bucket`, labels: { le: bound === undefined ? "+Inf" : bound / 1000 }, value: cumulative });
      });
      values.push({ metricName: `${WAIT_NAME}_sum`, labels: {}, value: nonNegative(h.sumMs) / 1000 });
      // _count is the +Inf bucket by definition.
      values.push({ metricName: `${WAIT_NAME}_count`, labels: {}, value: cumulative });
    }
    return {
      name: WAIT_NAME,
      help: WAIT_HELP,
      // prom-client types `type` as a TypeScript-only enum; at run time it is this string.
      type: "histogram" as unknown as MetricType,
      values,
      aggregator: "sum",
      collect: () => undefined,
    };
  }
}
