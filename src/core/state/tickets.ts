/**
 * Queued acquires and where they wait. A ticket waits on exactly one *wait point*: one thing that
 * keeps its chain from fitting now. Between calls of the state machine every waiting ticket's
 * point is blocked, so when slots free up only the tickets waiting on the points that cleared
 * can have started to fit, and dispatch looks at those alone, in queue order, instead of
 * scanning the whole queue. A ticket looked at that still does not fit moves to the point that
 * blocks it now.
 *
 * Wait points: a scope of the chain without room; a pinned server that is down; the servers of
 * the backend the store is to choose from, none of them eligible.
 */
import type { ArrivalEntry } from "./arrivals.js";
import type { HeapEntry, NewestEntry, NewestFirstHeap, OrderEntry, OrderHeap } from "./heap.js";
import type { BackendState, ScopeState, ServerState } from "./scopes.js";

export interface WaitPoint {
  /** Tickets waiting here, in queue order. */
  readonly waiting: OrderHeap<Ticket>;
  /** The same tickets newest-first within each class: kept only while the group's discipline is `lifo`. */
  newest: NewestFirstHeap<Ticket> | undefined;
  /** True when this no longer keeps a ticket from fitting. */
  readonly clear: boolean;
}

export interface Ticket extends OrderEntry, HeapEntry, NewestEntry, ArrivalEntry<Ticket> {
  id: string;
  /** The fairness flow it was queued under (rule F): its own, the default flow "" (it named none), or none. */
  flow: string | undefined;
  /** Scopes the ticket needs and is queued on: named, keyed, backend, and a pinned server. */
  fixed: ScopeState[];
  backend?: BackendState;
  /** Set when the request named a server (persistence); otherwise the server is chosen at grant time. */
  pinned?: ServerState;
  enqueuedAt: number;
  deadline: number;
  leaseTtlMs: number;
  waitsOn: WaitPoint;
}

/**
 * What keeps a chain from fitting now, undefined when it fits: the last scope of the chain
 * without room (chains run from the widest scope to the narrowest, and the narrowest frees up
 * least often for others), else the pinned server when it is down, else the backend's servers.
 * The Redis scripts choose the same (includes/dispatch.lua, blocker).
 */
export function blockerOf(fixed: readonly ScopeState[], backend: BackendState | undefined, pinned: ServerState | undefined): WaitPoint | undefined {
  for (let i = fixed.length - 1; i >= 0; i--) if (!fixed[i]!.hasRoom) return fixed[i];
  if (pinned) return pinned.up ? undefined : pinned;
  if (backend && !backend.clear) return backend;
  return undefined;
}
