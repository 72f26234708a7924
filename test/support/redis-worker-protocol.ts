// The messages between ./redis-fleet.ts (the test process) and ./redis-worker.ts (a node
// process), and the figures a node reports. A module of its own, so that the test process never
// imports the worker script itself (its top level would run).
import type { GuardEvent, GuardStats, RejectReason, StoreErrorPolicy } from "../../src/index.js";
import type { QueueOption } from "../../src/core/spec.js";
import type { RedisStoreFaults, RedisStoreOptions } from "../../src/stores/redis/index.js";

export const EXIT_UNHANDLED_REJECTION = 70;
export const EXIT_UNCAUGHT_EXCEPTION = 71;

export interface WorkerConfig {
  target: { url: string } | { nodes: { host: string; port: number }[] };
  group: string;
  /** The group has one limit, `global`, with this max. */
  limit: number;
  onStoreError?: StoreErrorPolicy;
  localShare?: number;
  leaseTtlMs: number;
  queueTimeoutMs: number;
  store?: Omit<RedisStoreOptions, "redis">;
  /** The group's queue section (discipline, flow weights). */
  queue?: QueueOption;
}

/** Where a decision came from: the store, one of the outage policies, or a rejection. */
export const OUTCOME = { store: 0, local: 1, failOpen: 2, unavailable: 3, otherReject: 4 } as const;
/** [acquire started, acquire resolved, OUTCOME code], local clock (ms). */
export type TimelineEntry = [number, number, number];

export interface LoadCommand {
  cmd: "load";
  /** Concurrent loops in this process. */
  workers: number;
  /** Acquires in all (shared by the loops), or null to run until `stop`. */
  quota: number | null;
  /** Each critical section lasts a random 0…holdMaxMs ms. */
  holdMaxMs: number;
  /** Pause after an `unavailable` rejection, so a fail-closed loop does not spin. */
  retryDelayMs: number;
  timeline: boolean;
  fences: boolean;
}

export type Command =
  | LoadCommand
  /** Probe key for leases granted from now on, or null: no probing. */
  | { cmd: "probe"; key: string | null }
  /** Ends the running load; replies with its report once every loop has finished. */
  | { cmd: "stop" }
  | { cmd: "progress" }
  /** Acquires `n` slots at once (no queueing) and holds them, renewing, until exit. */
  | { cmd: "hold"; n: number }
  /** Queues `n` acquires; each grant is held and reported as a `granted` event. */
  | { cmd: "wait"; n: number }
  /** Acquires one slot without auto-renew and never releases it: a holder that vanished. */
  | { cmd: "abandon"; leaseTtlMs: number }
  | { cmd: "stats" }
  /**
   * Backlogged flows: `loops[flow]` loops each acquire under that flow (none: without a flow, when
   * `fair` is false), hold `holdMs`, release and acquire again, for `durationMs`. Replies with the
   * local time of every grant, per flow.
   */
  | { cmd: "flows"; loops: Record<string, number>; fair: boolean; holdMs: number; durationMs: number }
  | { cmd: "exit" };

export interface ProbeFigures {
  max: number;
  samples: number;
}

export interface Progress {
  acquires: number;
  granted: { store: number; local: number; failOpen: number };
  rejected: Partial<Record<RejectReason, number>>;
  probe: Record<string, ProbeFigures>;
  probeErrors: number;
  /** Most local-fallback leases this process held at once. */
  localMax: number;
  /** Leases found lost (signal aborted) at the end of their critical section. */
  lost: number;
  /** Guard events by type (fallback, renew-failed, release-failed, lease-lost). */
  events: Partial<Record<GuardEvent["type"], number>>;
  /** `error` events of the ioredis clients (store and probe). */
  clientErrors: number;
}

export interface LoadReport extends Progress {
  elapsedMs: number;
  timeline?: TimelineEntry[];
  fences?: number[];
}

export interface NodeStats {
  stats: GuardStats;
  faults: RedisStoreFaults;
  clientStatus: string;
}

export interface Results {
  load: LoadReport;
  probe: null;
  stop: LoadReport | null;
  progress: Progress;
  hold: number[];
  wait: null;
  abandon: string;
  stats: NodeStats;
  flows: Record<string, number[]>;
  exit: null;
}

export type WorkerEvent = { event: "ready"; pid: number } | { event: "granted"; at: number; fence: number } | { event: "wait-ended"; reason: string };

export type WorkerRequest = Command & { id: number };
export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
