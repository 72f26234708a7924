/**
 * What the HTTP and TCP frontends share: the process-wide `node.maxconn` counter, the per-frontend
 * counters the stats listener shows ({@link NodeStats}), and the listener contract the edge node
 * drives through start, drain and stop.
 */
import type { Guard } from "../core/guard.js";
import type { NodeLimit } from "../edge/node-limit.js";
import type { EdgeConfig } from "../edge/config/schema.js";
import type { RequestPlanner } from "../edge/config/to-guard.js";
import type { Server } from "node:net";
import type { BindAddress } from "../edge/config/schema.js";
import { errorFields, type Logger } from "./logger.js";

/** Outcomes counted per frontend, by reason. */
export type RejectCounterName = "full" | "queue-full" | "queue-timeout" | "unavailable" | "aborted" | "bad-request" | "client-timeout" | "error" | "lease-lost";

/** This process's numbers for one frontend. */
export interface FrontendCounters {
  /** Requests (http) or connections (tcp) holding a slot right now. */
  active: number;
  /** Waiting for a slot right now (queued in the store, or in the acquire's round trip). */
  queued: number;
  /** Requests (http) or connections (tcp) received since start. */
  requests: number;
  /**
   * Not served, by reason: `full`, `queue-full`, `queue-timeout`, `unavailable` (answered with
   * deny_status, or closed in tcp mode), `aborted` (the client left while queued), `bad-request`
   * (4xx answered by the node), `client-timeout` (408 or a cut connection: the client was too slow), `error` (502/503/504 from the upstream side, or a fault),
   * `lease-lost` (the slot was lost mid-request or mid-connection, and the node cut it).
   */
  rejected: Record<string, number>;
}

/** This process's numbers, for the stats listener (declared by it; {@link FrontendCounters} per frontend). */
export type { NodeStats } from "./stats/index.js";

export function emptyCounters(): FrontendCounters {
  return { active: 0, queued: 0, requests: 0, rejected: Object.create(null) as Record<string, number> };
}

export function countReject(counters: FrontendCounters, reason: RejectCounterName): void {
  counters.rejected[reason] = (counters.rejected[reason] ?? 0) + 1;
}

/** What a frontend needs from its edge node. */
export interface FrontendContext {
  guard: Guard;
  planner: RequestPlanner;
  limit: NodeLimit;
  logger: Logger;
  config: EdgeConfig;
  leases: LeaseWatch;
}

/**
 * Stops work whose lease was lost (SPEC §2 rules 9 and 12: the slot may be someone else's by now),
 * fed by the guard's `lease-lost` events. A map entry per proxied request costs far less than
 * reading `lease.signal`, which makes an AbortController per request.
 *
 * `onLost` is given the lost lease's id, so that a caller can register one callback per client
 * connection rather than a closure per request: a long-lived map that takes and drops a value per
 * request keeps those values alive through young-generation collections, and a closure over a
 * request holds its whole object graph (sockets, parsers, buffers), which the collector then
 * copies and promotes (see "Cost per request" in docs/edge-node.md).
 */
export class LeaseWatch {
  readonly #watching = new Map<string, (leaseId: string) => void>();

  watch(leaseId: string, onLost: (leaseId: string) => void): void {
    this.#watching.set(leaseId, onLost);
  }

  unwatch(leaseId: string): void {
    this.#watching.delete(leaseId);
  }

  /** The guard reported the lease lost: its work is stopped, once. */
  lost(leaseId: string): void {
    const onLost = this.#watching.get(leaseId);
    if (onLost === undefined) return;
    this.#watching.delete(leaseId);
    onLost(leaseId);
  }
}

export interface FrontendListener {
  readonly name: string;
  readonly mode: "http" | "tcp";
  /** Binds the frontend's address. Rejects when the address cannot be bound. */
  listen(): Promise<void>;
  /** The bound address (the real port when the config says 0), or null before listen / after close. */
  address(): { host: string; port: number } | null;
  counters(): FrontendCounters;
  /** Requests / connections not finished yet (waiting, proxied, or held before a delayed close). */
  inFlight(): number;
  /** Stops accepting; work already accepted goes on. */
  stopAccepting(): void;
  /** Resolves once nothing is in flight. */
  whenIdle(): Promise<void>;
  /** Ends everything still open (after the grace period) and resolves when the listener is closed. */
  close(): Promise<void>;
}

// Log-line helpers live with the logger; re-exported for the proxies that import them from here.
export { clip } from "./logger.js";

/**
 * Starts `server` on the frontend's bind address. A listen error (EADDRINUSE…) rejects; once
 * listening, later server errors are logged, never thrown.
 */
export function listenOn(server: Server, bind: BindAddress, logger: Logger, frontend: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off("listening", onListening);
      reject(error);
    };
    const onListening = () => {
      server.off("error", onError);
      server.on("error", (error) => logger.error({ frontend, err: errorFields(error) }, "listener error"));
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ host: bind.host, port: bind.port, ipv6Only: bind.family === 6 });
  });
}

/** The address a listening server is bound to, or null before it listens. */
export function boundAddress(server: Server, listening: boolean): { host: string; port: number } | null {
  const a = listening ? server.address() : null;
  return a !== null && typeof a === "object" ? { host: a.address, port: a.port } : null;
}
