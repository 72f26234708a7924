// GroupState's dispatch over wait points (src/core/state/tickets.ts): grants come in queue order
// across every point that cleared, a ticket that a cleared point cannot take waits on what blocks
// it now, and a deep queue on one scope costs nothing to a release elsewhere, nor to the hand-off
// behind it (counted in how often tickets are compared, not in time).
import { describe, expect, it } from "vitest";
import { buildGroupSpec, type BackendsOption, type LimitsOption } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import { OrderHeap } from "../../src/core/state/heap.js";
import type { OrderEntry } from "../../src/core/state/heap.js";
import type { ChainRequest } from "../../src/core/store.js";

function state(limits: LimitsOption, backends: BackendsOption = {}): GroupState {
  let n = 0;
  return new GroupState(buildGroupSpec(limits, backends), { newId: () => `L${++n}` });
}

function req(scopes: string[], opts: Partial<ChainRequest> = {}): ChainRequest {
  return { scopes, priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs: 60_000, leaseTtlMs: 60_000, ...opts };
}

function lease(s: GroupState, r: ChainRequest, now = 0): string {
  const d = s.acquire(r, now);
  if (d.status !== "granted") throw new Error(`expected a grant, got ${d.status}`);
  return d.lease.id;
}

function queue(s: GroupState, r: ChainRequest, id: string, now = 0): void {
  expect(s.acquire(r, now, id).status).toBe("queued");
}

const grantedIds = (s: GroupState) => s.drainEffects().granted.map((g) => g.ticketId);

describe("dispatch over wait points", () => {
  it("grants in queue order across the scopes one release frees", () => {
    const s = state({ G: 1, A: 1, B: 1 });
    const held = lease(s, req(["G", "A", "B"]));
    queue(s, req(["G", "A"]), "T1"); // waits on A
    queue(s, req(["G", "B"], { priorityClass: -1 }), "T2"); // waits on B, and comes first
    s.release(held, 1);
    expect(grantedIds(s)).toEqual(["T2"]); // G is full again: T1 does not overtake
    expect(s.ticketCount).toBe(1);
  });

  it("a ticket that a freed scope cannot take waits on the scope that blocks it, in order there", () => {
    const s = state({ global: 1, tenant: { perKey: 1 } });
    const holder = lease(s, req(["global", "tenant:a"]));
    const other = lease(s, req(["tenant:b"]));
    queue(s, req(["global", "tenant:b"]), "T1"); // both full: waits on tenant:b
    queue(s, req(["global", "tenant:c"]), "T2"); // waits on global
    s.release(other, 1);
    expect(grantedIds(s)).toEqual([]); // T1 now waits on global, before T2
    s.release(holder, 2);
    expect(grantedIds(s)).toEqual(["T1"]);
  });

  it("a server coming up serves its pinned tickets and its backend's in queue order", () => {
    const s = state({}, { b: { balance: "leastconn", servers: { s1: { max: 1 }, s2: { max: 1, down: true } } } });
    lease(s, req([], { backend: "b" })); // s1
    queue(s, req([], { backend: "b" }), "T1");
    queue(s, req([], { backend: "b", server: "s2" }), "T2");
    s.setServerState("b", "s2", true, 1);
    expect(grantedIds(s)).toEqual(["T1"]);
    const t1 = s.lease("L2");
    expect(t1?.server?.name).toBe("s2");
    s.release("L2", 2); // s2 has room again: T2, pinned to it, takes it
    expect(grantedIds(s)).toEqual(["T2"]);
  });

  it("with 5,000 tickets on one scope, a release elsewhere compares no ticket, and a hand-off a few", () => {
    const s = state({ tenant: { perKey: 1 } });
    const hot = lease(s, req(["tenant:hot"]));
    for (let i = 0; i < 5_000; i++) queue(s, req(["tenant:hot"]), `T${i}`);
    // Comparisons of tickets in queue order, counted where every one happens: the order heaps.
    const proto = OrderHeap.prototype as unknown as { before(a: OrderEntry, b: OrderEntry): boolean };
    const counted = (fn: () => void): number => {
      let n = 0;
      const before = proto.before;
      proto.before = function (this: unknown, a: OrderEntry, b: OrderEntry) {
        n++;
        return before.call(this, a, b);
      };
      try {
        fn();
      } finally {
        proto.before = before;
      }
      return n;
    };
    const elsewhere = counted(() => s.release(lease(s, req(["tenant:k"])), 1));
    expect(elsewhere).toBe(0);
    const handOff = counted(() => s.release(hot, 2));
    expect(grantedIds(s)).toEqual(["T0"]);
    expect(handOff).toBeGreaterThan(0);
    expect(handOff).toBeLessThan(64); // O(log n): a heap removal, not a pass over 5,000
  });
});
