/** Small drivers of GroupState shared by the state machine's unit tests (fair queuing, disciplines, early rejection). */
import { expect } from "vitest";
import { buildGroupSpec, type BackendsOption, type LimitsOption, type QueueOption } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import type { ChainRequest } from "../../src/core/store.js";

export function state(limits: LimitsOption, queue?: QueueOption, backends: BackendsOption = {}): GroupState {
  let n = 0;
  return new GroupState(buildGroupSpec(limits, backends, queue), { newId: () => `L${++n}` });
}

export function req(scopes: string[], opts: Partial<ChainRequest> = {}): ChainRequest {
  return { scopes, priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 60_000, leaseTtlMs: 60_000, ...opts };
}

export function lease(s: GroupState, r: ChainRequest, now = 0): string {
  const d = s.acquire(r, now);
  if (d.status !== "granted") throw new Error(`expected a grant, got ${d.status}`);
  return d.lease.id;
}

export function queue(s: GroupState, r: ChainRequest, id: string, now = 0): void {
  expect(s.acquire(r, now, id).status).toBe("queued");
}

/** The tickets granted since the last call, with their lease ids. */
export function granted(s: GroupState): { ticketId: string; leaseId: string }[] {
  return s.drainEffects().granted.map((g) => ({ ticketId: g.ticketId, leaseId: g.lease.id }));
}

/**
 * Releases `leaseId` at `now` and returns the one ticket that took the slot, with its lease, so a
 * test can walk a limit-1 queue grant by grant.
 */
export function handOff(s: GroupState, leaseId: string, now: number): { ticketId: string; leaseId: string } {
  s.drainEffects();
  expect(s.release(leaseId, now)).toBe(true);
  const g = granted(s);
  expect(g).toHaveLength(1);
  return g[0]!;
}

/** Serves the whole queue of a limit-1 group, one release at a time at `now`, and returns the order. */
export function drain(s: GroupState, leaseId: string, now = 1): string[] {
  const order: string[] = [];
  let current = leaseId;
  while (s.ticketCount > 0) {
    const next = handOff(s, current, now);
    order.push(next.ticketId);
    current = next.leaseId;
  }
  return order;
}
