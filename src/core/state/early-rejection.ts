/**
 * Early rejection (rule E, docs/semantics.md): an acquire that opted in and would be queued is
 * rejected at once when the scope it would wait on has a queue and hands slots to it too slowly
 * for the acquire to be served within its queue timeout. The estimate is the tickets ahead plus this one, times the
 * mean time between hand-offs (ScopeState.handoff); the Redis scripts compute it with the same
 * float operations in the same order.
 */
import type { ScopeState } from "./scopes.js";
import type { WaitPoint } from "./tickets.js";
import { BackendState, ServerState } from "./scopes.js";

/** The scope whose hand-off rate decides for a ticket that would wait on `point`. */
export function scopeOfPoint(point: WaitPoint): ScopeState {
  if (point instanceof ServerState || point instanceof BackendState) return point.scope;
  return point as ScopeState;
}

/** The estimated wait in ms of one more ticket waiting on `scope`, or undefined before its first hand-off interval. */
export function estimatedWaitMs(scope: ScopeState): number | undefined {
  const h = scope.handoffMs;
  return h === undefined ? undefined : (scope.queued + 1) * h;
}
