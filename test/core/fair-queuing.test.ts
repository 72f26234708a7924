// Rule F (docs/semantics.md): start-time fair queuing in GroupState. Tags and virtual time are
// checked to the integer, as the Redis scripts must compute them.
import { describe, expect, it } from "vitest";
import { FairQueue, FLOW_COST_UNIT, MAX_TAG } from "../../src/core/state/fairness.js";
import { drain, granted, handOff, lease, queue, req, state } from "./state-helpers.js";

const C = FLOW_COST_UNIT;

describe("fair queuing tags", () => {
  it("tags each flow's tickets from max(V, its last finish), cost 1e6 / weight", () => {
    const s = state({ g: 1 }, { flowWeights: { b: 2, c: 3 } });
    const held = lease(s, req(["g"]));
    for (const [id, flow] of [
      ["a1", "a"],
      ["a2", "a"],
      ["a3", "a"],
      ["b1", "b"],
      ["b2", "b"],
      ["c1", "c"],
      ["c2", "c"],
    ] as const) {
      queue(s, req(["g"], { flow }), id);
    }
    queue(s, req(["g"]), "n1"); // no flow while flows wait: the default flow "", tag V
    const tag = (id: string) => s.ticket(id)!.tag;
    expect([tag("a1"), tag("a2"), tag("a3")]).toEqual([0, C, 2 * C]);
    expect([tag("b1"), tag("b2")]).toEqual([0, 500_000]);
    expect([tag("c1"), tag("c2")]).toEqual([0, 333_333]);
    expect(tag("n1")).toBe(0);
    expect(s.stats(0).flows).toEqual({
      a: { waiting: 3, granted: 0 },
      b: { waiting: 2, granted: 0 },
      c: { waiting: 2, granted: 0 },
      "": { waiting: 1, granted: 0 },
    });

    // Order (cls, tag, at, seq): the tag-0 tickets in arrival order, then by tag.
    let current = held;
    const serve = () => {
      const next = handOff(s, current, 1);
      current = next.leaseId;
      return next.ticketId;
    };
    expect(Array.from({ length: 6 }, serve)).toEqual(["a1", "b1", "c1", "n1", "c2", "b2"]);
    expect(s.virtualTime).toBe(500_000); // the largest tag granted so far (b2's)
    // A flow that starts now starts at V: before a2 (tag 1e6).
    queue(s, req(["g"], { flow: "d" }), "d1", 1);
    expect(tag("d1")).toBe(500_000);
    // A flow that left the queue and comes back starts at V too (its entry is gone).
    expect(s.stats(1).flows?.b).toBeUndefined();
    queue(s, req(["g"], { flow: "b" }), "b3", 1);
    expect(tag("b3")).toBe(500_000);
    expect(drain(s, current, 2)).toEqual(["d1", "b3", "a2", "a3"]);
  });

  it("serves each backlogged flow its weighted share, whatever its number of waiting tickets", () => {
    const s = state({ g: 1 }, { flowWeights: { heavy: 1, light: 1, gold: 2 } });
    let current = lease(s, req(["g"]));
    let n = 0;
    const flows = { heavy: 100, light: 10, gold: 10 } as const;
    for (const [flow, count] of Object.entries(flows)) for (let i = 0; i < count; i++) queue(s, req(["g"], { flow }), `${flow}-${++n}`);
    const counts: Record<string, number> = { heavy: 0, light: 0, gold: 0 };
    // The first 20 grants, while every flow is backlogged: gold twice as often as each other.
    for (let i = 0; i < 20; i++) {
      const next = handOff(s, current, 1);
      current = next.leaseId;
      counts[next.ticketId.split("-")[0]!]!++;
    }
    expect(counts).toEqual({ heavy: 5, light: 5, gold: 10 });
  });

  it("keeps the order of today when no ticket names a flow: every tag is 0", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"], { priorityOffsetMs: 50 }), "late");
    queue(s, req(["g"]), "early", 10);
    queue(s, req(["g"], { priorityClass: -1 }), "vip", 20);
    for (const id of ["late", "early", "vip"]) expect(s.ticket(id)!.tag).toBe(0);
    expect(drain(s, held, 30)).toEqual(["vip", "early", "late"]);
    expect(s.virtualTime).toBe(0);
  });

  it("priority classes still come first, and within a flow it is FIFO", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"], { flow: "a" }), "a1");
    queue(s, req(["g"], { flow: "a" }), "a2");
    queue(s, req(["g"], { flow: "a", priorityClass: 1 }), "a-low");
    queue(s, req(["g"], { flow: "b", priorityClass: 1 }), "b-low");
    queue(s, req(["g"], { flow: "b" }), "b1");
    // A flow's finish tag is one across classes: b1 comes after b-low's cost (tag 1e6), a-low
    // after a2's (2e6). Class first, then tag.
    expect([s.ticket("b-low")!.tag, s.ticket("b1")!.tag, s.ticket("a-low")!.tag]).toEqual([0, C, 2 * C]);
    expect(drain(s, held, 1)).toEqual(["a1", "a2", "b1", "b-low", "a-low"]);
  });

  it("V = max(V, tag) at every grant from the queue, and 0 again when the queue is empty", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"], { flow: "a" }), "a1");
    queue(s, req(["g"], { flow: "a" }), "a2");
    queue(s, req(["g"], { flow: "a" }), "a3");
    const first = handOff(s, held, 1);
    expect(s.virtualTime).toBe(0);
    handOff(s, first.leaseId, 2);
    expect(s.virtualTime).toBe(C);
    // a3 times out: the queue is empty, V starts again.
    s.tick(60_001);
    expect(s.drainEffects().timedOut).toEqual(["a3"]);
    expect(s.virtualTime).toBe(0);
    expect(s.stats(60_001).flows).toBeUndefined();
    queue(s, req(["g"], { flow: "a" }), "a4", 60_001);
    expect(s.ticket("a4")!.tag).toBe(0);
  });

  it("an immediate grant touches none of it", () => {
    const s = state({ g: 2 });
    const held = lease(s, req(["g"], { flow: "a" }));
    expect(s.stats(0).flows).toBeUndefined();
    lease(s, req(["g"], { flow: "a" }));
    queue(s, req(["g"], { flow: "a" }), "a1");
    expect(s.ticket("a1")!.tag).toBe(0);
    s.release(held, 1);
    expect(granted(s).map((g) => g.ticketId)).toEqual(["a1"]);
    expect(s.virtualTime).toBe(0); // the queue is empty again
  });

  it("deletes a flow's entry when it stops waiting: 10,000 hostile flow names leave no state", () => {
    const s = state({ g: 1 });
    lease(s, req(["g"]));
    const hostile = (i: number) => `{x}:${i}\n${"z".repeat(i % 50)}`;
    for (let i = 0; i < 10_000; i++) queue(s, req(["g"], { flow: hostile(i), queueTimeoutMs: 1 + (i % 3) }), `h${i}`);
    queue(s, req(["g"], { flow: "__proto__" }), "proto");
    expect(Object.keys(s.stats(0).flows!)).toHaveLength(10_001);
    expect(s.stats(0).flows!["__proto__"]).toEqual({ waiting: 1, granted: 0 });
    s.tick(3);
    expect(Object.keys(s.stats(3).flows!)).toEqual(["__proto__"]);
    s.cancel("proto", 4);
    expect(s.stats(4).flows).toBeUndefined();
    expect(s.ticketCount).toBe(0);
  });

  it("counts each flow's grants while it waits", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    for (let i = 0; i < 3; i++) queue(s, req(["g"], { flow: "a" }), `a${i}`);
    const next = handOff(s, held, 1);
    handOff(s, next.leaseId, 2);
    expect(s.stats(2).flows).toEqual({ a: { waiting: 1, granted: 2 } });
  });
});

describe("tickets without a flow", () => {
  it("share the default flow while a named flow waits: a flow's later tickets are served between them", () => {
    const s = state({ g: 1 });
    let current = lease(s, req(["g"]));
    for (let i = 1; i <= 40; i++) queue(s, req(["g"], { flow: "A" }), `A${i}`);
    // One acquire without a flow per step, each step one grant. Before the default flow they all
    // took tag V, ahead of A's second ticket for good: A, then nothing but them.
    let order = "";
    for (let i = 1; i <= 40; i++) {
      queue(s, req(["g"]), `N${i}`, i);
      const next = handOff(s, current, i);
      order += next.ticketId[0];
      current = next.leaseId;
    }
    // One flow's share each: strictly alternating.
    expect(order).toBe("AN".repeat(20));
    expect(s.stats(40).flows).toEqual({ A: { waiting: 20, granted: 20 }, "": { waiting: 20, granted: 20 } });
  });

  it("keep tag V and no entry while no named flow waits, and leave the entry they joined", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "N1"); // nobody names a flow: tag V, no entry
    queue(s, req(["g"], { flow: "a" }), "a1");
    queue(s, req(["g"]), "N2"); // joins "" (tag 0, its first)
    queue(s, req(["g"]), "N3"); // "" again: tag 1e6
    expect([s.ticket("N1")!.flow, s.ticket("N2")!.flow, s.ticket("N3")!.flow]).toEqual([undefined, "", ""]);
    expect([s.ticket("N1")!.tag, s.ticket("N2")!.tag, s.ticket("N3")!.tag]).toEqual([0, 0, C]);
    expect(s.stats(0).flows).toEqual({ a: { waiting: 1, granted: 0 }, "": { waiting: 2, granted: 0 } });
    // N1 leaves without having joined: the default flow's count stays.
    expect(s.cancel("N1", 1)).toBe(true);
    expect(s.stats(1).flows).toEqual({ a: { waiting: 1, granted: 0 }, "": { waiting: 2, granted: 0 } });
    expect(s.cancel("N2", 1)).toBe(true);
    expect(s.stats(1).flows).toEqual({ a: { waiting: 1, granted: 0 }, "": { waiting: 1, granted: 0 } });
    // Only the default flow left: a ticket without a flow no longer joins it.
    expect(s.cancel("a1", 1)).toBe(true);
    queue(s, req(["g"]), "N4", 1);
    expect(s.ticket("N4")!.flow).toBeUndefined();
    // N4 has tag V = 0, N3 kept the tag it was charged.
    expect(drain(s, held, 2)).toEqual(["N4", "N3"]);
    expect(s.stats(2).flows).toBeUndefined();
  });
});

describe("tag growth", () => {
  it("a flow is charged no more than its backlog ahead of V: acquire and cancel in a loop leaves its tags small", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"], { flow: "a" }), "parked");
    for (let i = 0; i < 10_000; i++) {
      queue(s, req(["g"], { flow: "a" }), `x${i}`);
      expect(s.cancel(`x${i}`, 0)).toBe(true);
    }
    queue(s, req(["g"], { flow: "a" }), "last");
    // One ticket waiting: at most V + (1 + 1) × cost (without the bound: 10,001 × cost).
    expect(s.ticket("last")!.tag).toBe(2 * C);
    queue(s, req(["g"], { flow: "b" }), "b1");
    expect(drain(s, held, 1)).toEqual(["parked", "b1", "last"]);
  });

  it("never goes above 2^50: past it a ticket takes tag V and its flow's finish stays", () => {
    // Virtual time this high takes ~10^9 grants without the queue emptying: set it directly.
    const q = new FairQueue();
    q.virtualTime = MAX_TAG - 1_500_000;
    const v = q.virtualTime;
    expect(q.enter("a", 1)).toBe(v); // v + 1e6 ≤ 2^50: F = v + 1e6
    expect(q.flows.get("a")!.finish).toBe(v + C);
    expect(q.enter("a", 1)).toBe(v); // v + 1e6 + 1e6 > 2^50: tag V, F stays
    expect(q.flows.get("a")).toEqual({ finish: v + C, waiting: 2, granted: 0 });
    q.virtualTime = MAX_TAG - 10;
    expect(q.enter("b", 1)).toBe(MAX_TAG - 10); // a new entry past the bound: F = V
    expect(q.flows.get("b")).toEqual({ finish: MAX_TAG - 10, waiting: 1, granted: 0 });
    expect(q.enter("c", 1000)).toBe(MAX_TAG - 10); // cost 1000: also past it
    q.virtualTime = MAX_TAG - 2_000;
    expect(q.enter("d", 1000)).toBe(MAX_TAG - 2_000); // cost 1000 fits: F = V + 1000
    expect(q.flows.get("d")!.finish).toBe(MAX_TAG - 1_000);
    expect(q.enter("d", 1000)).toBe(MAX_TAG - 1_000); // tag + 1000 = 2^50 exactly: allowed
    expect(q.enter("d", 1000)).toBe(MAX_TAG - 2_000); // would pass it: tag V
  });
});
