/**
 * Messages between the Redis benchmark's main process and its workers (IPC of child_process.fork).
 * Every request carries an id and gets exactly one reply with that id; workers also send events
 * (FIFO phase: a waiter finished) without an id.
 *
 * Times are nanoseconds of CLOCK_MONOTONIC (process.hrtime.bigint()) minus a base the main
 * process hands out: on Linux every process reads the same monotonic clock, so timestamps taken
 * in different workers are directly comparable.
 */
import type { LibName } from "./contenders.js";

export type Request =
  | { t: "setup"; lib: LibName; port: number; key: string; limit: number; leaseTtlMs: number; queueTimeoutMs: number; clockBase: string }
  | { t: "loop"; mode: "handoff" | "skew"; callers: number; holdMs: number; counterKey: string; limit: number }
  | { t: "stop" }
  | { t: "hold" }
  | { t: "unhold" }
  | { t: "enqueue"; waiter: number; priority: number | null; holdMs: number; orderKey: string }
  | { t: "queued" }
  | { t: "close" };

export type RequestMessage = Request & { id: number };

export interface SetupReply {
  pid: number;
  /** Date.now() − real time in this process (the injected skew), ms. */
  skewMs: number;
  /** (performance.timeOrigin + performance.now()) − monotonic ms: equal across processes when their clocks are comparable. */
  wallMinusMonotonicMs: number;
}

export interface LoopReply {
  ops: number;
  /** handoff: grant, acquire-call and release-call times (ns since the clock base); acquireStarts[i] belongs to grants[i]. */
  grants: number[];
  acquireStarts: number[];
  releases: number[];
  /** skew: highest INCR result on the holders counter, and how many INCRs exceeded the limit. */
  maxHolders: number;
  overLimit: number;
  /** Worker process CPU (user + system) during the loop, ms. */
  cpuMs: number;
  /** Commands this worker's library connections sent during the loop, by name. */
  sent: Record<string, number>;
  faults: number;
  /** Acquires that failed (the loop carries on); and the first error's message. */
  acquireErrors: number;
  firstError: string | null;
}

export type Reply = { id: number; ok: true; data?: unknown } | { id: number; ok: false; error: string };

export type WorkerEvent = { ev: "ready" } | { ev: "done"; waiter: number } | { ev: "failed"; waiter: number; error: string };
