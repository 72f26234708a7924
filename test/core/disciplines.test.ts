// Rule D (docs/semantics.md): the standing-queue detector, CoDel drops at the right instant with
// the right outcome and counter, and adaptive LIFO, on GroupState with a deterministic clock.
import { describe, expect, it } from "vitest";
import { buildGroupSpec } from "../../src/core/spec.js";
import { handOff, lease, queue, req, state } from "./state-helpers.js";

const CODEL = { discipline: "codel", targetMs: 5, intervalMs: 100 } as const;
const LIFO = { discipline: "lifo", targetMs: 5, intervalMs: 100 } as const;

describe("standing-queue detector", () => {
  it("stands one interval after a grant from the queue waited at least the target", () => {
    const s = state({ g: 1 }, LIFO);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1");
    queue(s, req(["g"]), "T2");
    expect(s.stats(0).queue).toEqual({ discipline: "lifo", standing: false });
    handOff(s, held, 10); // T1 waited 10 ≥ 5: above since 10
    expect(s.stats(109).queue!.standing).toBe(false);
    expect(s.stats(110).queue!.standing).toBe(true);
  });

  it("stands while the oldest ticket waited the target at every grant, whichever ticket is granted; an empty queue or a fresh oldest ticket ends it", () => {
    const s = state({ g: 1 }, LIFO);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 0);
    queue(s, req(["g"]), "T2", 0);
    let l = handOff(s, held, 10); // T1; the oldest (T1) waited 10 ≥ 5: above since 10
    expect(s.stats(110).queue!.standing).toBe(true);
    queue(s, req(["g"]), "T3", 110);
    l = handOff(s, l.leaseId, 111); // newest-first: T3, waited 1; the oldest (T2) waited 111: still standing
    expect(l.ticketId).toBe("T3");
    expect(s.stats(111).queue!.standing).toBe(true);
    l = handOff(s, l.leaseId, 112); // T2: the queue is empty, not standing
    expect(s.stats(112).queue!.standing).toBe(false);
    queue(s, req(["g"]), "T4", 200);
    queue(s, req(["g"]), "T5", 200);
    l = handOff(s, l.leaseId, 210); // T4; the oldest waited 10: above since 210
    queue(s, req(["g"]), "T6", 300);
    expect(s.cancel("T5", 300)).toBe(true);
    l = handOff(s, l.leaseId, 303); // T6, the oldest, waited 3 < 5: not above any more
    queue(s, req(["g"]), "T7", 303);
    queue(s, req(["g"]), "T8", 303);
    expect(s.stats(310).queue!.standing).toBe(false);
    expect(s.stats(1_000).queue!.standing).toBe(false);
  });

  it("fifo keeps none of it and reports no queue section without one", () => {
    const s = state({ g: 1 }, { discipline: "fifo" });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1");
    queue(s, req(["g"]), "T2");
    handOff(s, held, 500);
    expect(s.stats(10_000).queue).toEqual({ discipline: "fifo", standing: false });
    expect(state({ g: 1 }).stats(0).queue).toBeUndefined();
  });
});

describe("codel", () => {
  it("drops every ticket whose wait reached the target once the queue stands, at that instant, as queue-timeout counted codel_dropped", () => {
    const s = state({ g: 1 }, CODEL);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 0);
    queue(s, req(["g"]), "T2", 1);
    queue(s, req(["g"]), "T3", 2);
    queue(s, req(["g"]), "T4", 108); // reaches the target at 113
    handOff(s, held, 10); // T1 waited 10: above since 10, standing from 110
    expect(s.nextDeadline()).toBe(110); // the standing transition is a deadline
    s.tick(109);
    expect(s.drainEffects().timedOut).toEqual([]);
    s.tick(110);
    expect(s.drainEffects().timedOut).toEqual(["T2", "T3"]);
    expect(s.nextDeadline()).toBe(113);
    s.tick(112);
    expect(s.drainEffects().timedOut).toEqual([]);
    s.tick(113);
    expect(s.drainEffects().timedOut).toEqual(["T4"]);
    const g = s.stats(113).scopes.g!;
    expect(g).toMatchObject({ codel_dropped: 3, queue_timeouts: 0, queued: 0 });
    expect(s.stats(113).queue!.standing).toBe(false); // the queue is empty
  });

  it("settles in time order when called late: a drop time passed before a later timeout", () => {
    const s = state({ g: 1 }, CODEL);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 0);
    queue(s, req(["g"]), "T2", 0);
    queue(s, req(["g"], { queueTimeoutMs: 150 }), "T3", 50);
    handOff(s, held, 10);
    s.tick(10_000); // T2 and T3 drop at 110 (T3's own deadline, 200, comes later)
    expect(s.drainEffects().timedOut).toEqual(["T2", "T3"]);
    expect(s.stats(10_000).scopes.g).toMatchObject({ codel_dropped: 2, queue_timeouts: 0 });
  });

  it("at one instant: lease expiries and queue timeouts first, then drops", () => {
    const s = state({ g: 1 }, CODEL);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 0);
    queue(s, req(["g"], { leaseTtlMs: 100 }), "T2", 0);
    queue(s, req(["g"], { queueTimeoutMs: 110 }), "T3", 0); // its own deadline is the drop time
    queue(s, req(["g"]), "T4", 0);
    const t1 = handOff(s, held, 10);
    s.drainEffects();
    expect(s.release(t1.leaseId, 11)).toBe(true); // T2 granted at 11 (waited 11): its lease ends at 111
    s.drainEffects();
    s.tick(110);
    // T3 times out at 110 (its deadline), T4 is dropped at 110 (standing since 110).
    const e = s.drainEffects();
    expect(e.timedOut).toEqual(["T3", "T4"]);
    expect(s.stats(110).scopes.g).toMatchObject({ codel_dropped: 1, queue_timeouts: 1 });
  });

  it("a lease expiring at the drop instant serves the ticket instead of dropping it", () => {
    const s = state({ g: 1 }, CODEL);
    const held = lease(s, req(["g"], { leaseTtlMs: 110 }));
    queue(s, req(["g"], { leaseTtlMs: 1000 }), "T1", 0);
    queue(s, req(["g"]), "T2", 0);
    queue(s, req(["g"]), "T3", 0);
    s.drainEffects();
    expect(s.release(held, 10)).toBe(true); // T1: above since 10
    const t1 = s.drainEffects().granted[0]!;
    s.renew(t1.lease.id, 100, 10); // T1's lease now expires at 110, the standing instant
    s.tick(110);
    const e = s.drainEffects();
    expect(e.granted.map((g) => g.ticketId)).toEqual(["T2"]);
    expect(e.timedOut).toEqual(["T3"]);
  });

  it("changing the discipline to codel indexes the tickets already queued; back to fifo drops nothing", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 0);
    queue(s, req(["g"]), "T2", 0);
    queue(s, req(["g"]), "T3", 0);
    s.configure(buildGroupSpec({ g: 1 }, undefined, CODEL), 1);
    handOff(s, held, 10);
    expect(s.nextDeadline()).toBe(110);
    s.configure(buildGroupSpec({ g: 1 }, undefined, { discipline: "fifo" }), 20);
    expect(s.nextDeadline()).toBe(60_000);
    s.configure(buildGroupSpec({ g: 1 }, undefined, CODEL), 30);
    expect(s.nextDeadline()).toBe(60_000); // fifo unset the detector: a new grant must set it again
  });
});

describe("adaptive lifo", () => {
  it("serves newest-first within a class while the queue stands, fifo otherwise; the lowest class still first", () => {
    const s = state({ g: 1 }, LIFO);
    const held = lease(s, req(["g"]));
    for (let i = 1; i <= 5; i++) queue(s, req(["g"]), `T${i}`, i - 1);
    let l = handOff(s, held, 10); // not standing: T1 (waited 10: above since 10)
    expect(l.ticketId).toBe("T1");
    l = handOff(s, l.leaseId, 50); // not standing yet: T2
    expect(l.ticketId).toBe("T2");
    l = handOff(s, l.leaseId, 120); // standing: the newest, T5
    expect(l.ticketId).toBe("T5");
    queue(s, req(["g"]), "T6", 121);
    queue(s, req(["g"], { priorityClass: -1 }), "VIP", 1); // offset-free, older than T6 but a lower class
    l = handOff(s, l.leaseId, 130);
    expect(l.ticketId).toBe("VIP"); // waited 129 ≥ 5: still standing
    l = handOff(s, l.leaseId, 131);
    expect(l.ticketId).toBe("T6"); // waited 10
    l = handOff(s, l.leaseId, 140);
    expect(l.ticketId).toBe("T4");
    l = handOff(s, l.leaseId, 141);
    expect(l.ticketId).toBe("T3");
    expect(s.ticketCount).toBe(0);
  });

  it("keeps fair order across flows while standing: newest-first only among tickets of equal tag", () => {
    const s = state({ g: 1 }, LIFO);
    const held = lease(s, req(["g"]));
    for (const [id, flow, at] of [
      ["A1", "A", 0],
      ["A2", "A", 0],
      ["A3", "A", 0],
      ["B1", "B", 1],
      ["B2", "B", 2],
      ["C1", "C", 3],
    ] as const) {
      queue(s, req(["g"], { flow }), id, at);
    }
    let l = handOff(s, held, 10); // not standing: A1 (tag 0, the oldest); above since 10
    const order = [l.ticketId];
    for (let t = 120; s.ticketCount > 0; t++) {
      l = handOff(s, l.leaseId, t);
      order.push(l.ticketId);
    }
    // Standing from 120: tag 0 newest-first (C1, B1), then tag 1e6 newest-first (B2, A2), then A3.
    // Reversing the tags too would serve the heaviest flow's newest ticket (A3) first.
    expect(order).toEqual(["A1", "C1", "B1", "B2", "A2", "A3"]);
    expect(s.stats(130).queue).toEqual({ discipline: "lifo", standing: false }); // empty again
  });

  it("serving fresh tickets newest-first keeps the queue standing while old ones wait", () => {
    const s = state({ g: 1 }, LIFO);
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "A", 0);
    queue(s, req(["g"]), "B", 0);
    queue(s, req(["g"]), "C", 0);
    let l = handOff(s, held, 10); // A, above since 10
    queue(s, req(["g"]), "D", 118);
    l = handOff(s, l.leaseId, 120); // standing: D, waited 2; the oldest (B) waited 120
    expect(l.ticketId).toBe("D");
    l = handOff(s, l.leaseId, 121);
    expect(l.ticketId).toBe("C");
    expect(s.stats(121).queue!.standing).toBe(true);
  });

  it("newest-first across wait points too, and when the discipline changes under a queue", () => {
    const s = state({ a: 1, b: 1 });
    const ha = lease(s, req(["a"]));
    lease(s, req(["b"], { leaseTtlMs: 120 }));
    queue(s, req(["a"], { leaseTtlMs: 110 }), "A1", 0);
    queue(s, req(["b"]), "B1", 1);
    queue(s, req(["a", "b"]), "AB", 2); // waits on b
    queue(s, req(["a"]), "A2", 3);
    queue(s, req(["b"]), "B2", 4);
    s.configure(buildGroupSpec({ a: 1, b: 1 }, undefined, LIFO), 5);
    expect(handOff(s, ha, 10).ticketId).toBe("A1"); // waited 10: above since 10; its lease ends at 120
    s.drainEffects();
    // At 120 both leases expire together: one merged pass, newest-first: B2 (4) takes b, A2 (3) a.
    s.tick(120);
    expect(s.drainEffects().granted.map((g) => g.ticketId)).toEqual(["B2", "A2"]);
    // Back to fifo under the same queue: the oldest first again.
    s.configure(buildGroupSpec({ a: 3, b: 3 }, undefined, { discipline: "fifo" }), 121);
    expect(s.drainEffects().granted.map((g) => g.ticketId)).toEqual(["B1", "AB"]);
  });
});
