import type { Discipline } from "./spec.js";

/**
 * The numbers of SPEC §3. Every store reports the same shape; counters are cluster-wide where the
 * store is shared. The queue-wait histogram uses fixed bucket bounds so that stores can keep it
 * as plain integer counters (a Redis hash, SQLite columns) and add them up.
 */

export interface ScopeCounters {
  granted: number;
  rejected_full: number;
  rejected_queue_full: number;
  queue_timeouts: number;
  aborted: number;
  /** Leases reclaimed because their holder stopped renewing. */
  expired: number;
  released: number;
}

/**
 * The counters of the queue's overload rules (docs/semantics.md), cluster-wide like the others.
 * Optional in {@link ScopeStats}: a store that predates them (a Durable Object deployed before)
 * reports none; read them as 0.
 */
export interface QueueCounters {
  /**
   * Acquires rejected at once because the estimated wait exceeded their queue timeout (rule E),
   * counted on the scope they would have waited on only.
   */
  rejected_early: number;
  /** Tickets a standing codel queue answered `queue-timeout` at once (rule D), on each scope of their chain. */
  codel_dropped: number;
}

export interface ScopeStats extends ScopeCounters, Partial<QueueCounters> {
  in_use: number;
  /** null: unlimited. */
  max: number | null;
  maxqueue: number | null;
  queued: number;
  peak_in_use: number;
  peak_queued: number;
  /** For a keyed limit's aggregate row: how many keys are active (holding or queued). */
  keys?: number;
  /** For a server: false while marked down. */
  up?: boolean;
}

export interface WaitHistogram {
  /** Upper bounds in ms of each bucket; the last bucket (+Inf) is implied. */
  bounds: readonly number[];
  /** counts.length === bounds.length + 1 */
  counts: number[];
  count: number;
  sumMs: number;
}

export interface GroupStatsSnapshot {
  /** Store clock at the time of the snapshot. */
  now: number;
  /** Highest fence issued so far. */
  fence: number;
  /**
   * One row per scope: named limits; a keyed limit's aggregate under its name plus one row per
   * active key (`tenant:acme`); `backend:<b>`; `server:<b>/<s>`.
   */
  scopes: Record<string, ScopeStats>;
  /** Wait of every grant, queued or not (0 for an immediate grant). */
  queueWait: WaitHistogram;
  holders: number;
  tickets: number;
  /**
   * SPEC §2 rule 12, from a store that can lose its state (Redis): leases re-created by their
   * holders' renewals after the group's state was lost or replaced, leases that could not be and
   * were reported lost, and the end of the current learning window (store clock; null: none).
   */
  stateLoss?: { reregistered: number; lost: number; learningUntil: number | null };
  /** The group's queue discipline and whether its queue stands now (rule D). */
  queue?: { discipline: Discipline; standing: boolean };
  /**
   * Per flow with tickets in the queue: how many wait, and how many of them were granted so far
   * (rule F: a flow's entry lives while it has waiting tickets). Raw flow names: display digests them.
   */
  flows?: Record<string, FlowStats>;
}

export interface FlowStats {
  waiting: number;
  granted: number;
}

export const WAIT_BUCKETS_MS: readonly number[] = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];

export function emptyCounters(): ScopeCounters & QueueCounters {
  return { granted: 0, rejected_full: 0, rejected_queue_full: 0, queue_timeouts: 0, aborted: 0, expired: 0, released: 0, rejected_early: 0, codel_dropped: 0 };
}

export const COUNTER_NAMES = Object.keys(emptyCounters()) as (keyof (ScopeCounters & QueueCounters))[];

export function emptyHistogram(): WaitHistogram {
  return { bounds: WAIT_BUCKETS_MS, counts: new Array<number>(WAIT_BUCKETS_MS.length + 1).fill(0), count: 0, sumMs: 0 };
}

/** Index of the bucket a wait falls in: the first bound ≥ ms, or the +Inf bucket. */
export function bucketIndex(ms: number): number {
  for (let i = 0; i < WAIT_BUCKETS_MS.length; i++) if (ms <= WAIT_BUCKETS_MS[i]!) return i;
  return WAIT_BUCKETS_MS.length;
}

/**
 * Estimates a quantile (0–1) from the histogram by linear interpolation inside the bucket; the
 * +Inf bucket reports its lower bound. Returns 0 when nothing was recorded.
 */
export function histogramQuantile(h: WaitHistogram, q: number): number {
  if (h.count === 0) return 0;
  const rank = q * h.count;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i]!;
    if (c > 0 && seen + c >= rank) {
      const lower = i === 0 ? 0 : h.bounds[i - 1]!;
      const upper = i < h.bounds.length ? h.bounds[i]! : lower;
      return lower + (upper - lower) * Math.min(1, Math.max(0, (rank - seen) / c));
    }
    seen += c;
  }
  return h.bounds[h.bounds.length - 1]!;
}
