// Rule E (docs/semantics.md): the hand-off EWMA per scope, the estimate of an acquire that would
// be queued, its rejection with retryAfterMs, counted rejected_early on the scope it would wait on.
import { describe, expect, it } from "vitest";
import { handOff, lease, queue, req, state } from "./state-helpers.js";

/** A limit-1 group whose scope g has handed off at 10, 30 and 70: handoffMs = 20 + (40 - 20) / 8 = 22.5. */
function withHandoffs() {
  const s = state({ g: 1, other: 5 });
  const held = lease(s, req(["g"]));
  for (const id of ["T1", "T2", "T3"]) queue(s, req(["g"]), id);
  let l = handOff(s, held, 10);
  l = handOff(s, l.leaseId, 30);
  l = handOff(s, l.leaseId, 70);
  return { s, current: l.leaseId };
}

describe("early rejection", () => {
  it("rejects when (queued + 1) × handoffMs exceeds the queue timeout, with retryAfterMs = ceil(estimate)", () => {
    const { s } = withHandoffs();
    queue(s, req(["g"]), "T4", 70);
    queue(s, req(["g"]), "T5", 70);
    // estimate = (2 + 1) × 22.5 = 67.5
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 67 }), 71)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 68 });
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 68 }), 71, "T6").status).toBe("queued");
    // Without `early` nothing changes.
    expect(s.acquire(req(["g"], { queueTimeoutMs: 1 }), 71, "T7").status).toBe("queued");
    const g = s.stats(71).scopes.g!;
    expect(g).toMatchObject({ rejected_early: 1, queued: 4, rejected_full: 0, queue_timeouts: 0 });
  });

  it("counts only on the scope it would wait on, touches no flow, enqueues nothing", () => {
    const { s } = withHandoffs();
    queue(s, req(["g"], { flow: "f" }), "T4", 70);
    const d = s.acquire(req(["other", "g"], { early: true, queueTimeoutMs: 10, flow: "f" }), 71);
    expect(d).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 45 });
    const stats = s.stats(71);
    expect(stats.scopes.g).toMatchObject({ rejected_early: 1, queued: 1 });
    expect(stats.scopes.other).toMatchObject({ rejected_early: 0, queued: 0 });
    expect(stats.flows).toEqual({ f: { waiting: 1, granted: 0 } });
    expect(s.ticketCount).toBe(1);
  });

  it("has no estimate before the scope's second hand-off", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1");
    queue(s, req(["g"]), "T2");
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1 }), 0, "E1").status).toBe("queued");
    handOff(s, held, 1_000); // one hand-off: a time, no interval yet
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1 }), 1_000, "E2").status).toBe("queued");
  });

  it("immediate grants do not count as hand-offs", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1");
    const t1 = handOff(s, held, 10); // hand-off at 10
    s.release(t1.leaseId, 20);
    const free = lease(s, req(["g"]), 500); // immediate: not a hand-off
    queue(s, req(["g"]), "T2", 500);
    handOff(s, free, 1_000); // d = 1000 - 10
    // estimate = (0 + 1) × 990
    queue(s, req(["g"]), "T3", 1_000);
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1_500 }), 1_000)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 1_980 });
  });

  it("a ticket waiting on a backend's servers is judged by the backend's scope", () => {
    const s = state({}, undefined, { api: { balance: "leastconn", servers: { a: { max: 1 }, b: { max: 1 } } } });
    const h1 = lease(s, req([], { backend: "api" }));
    lease(s, req([], { backend: "api" }));
    for (const id of ["T1", "T2", "T3"]) queue(s, req([], { backend: "api" }), id);
    let l = handOff(s, h1, 10);
    l = handOff(s, l.leaseId, 30);
    // backend:api and the server's scope both saw hand-offs at 10 and 30: handoffMs 20.
    expect(s.acquire(req([], { backend: "api", early: true, queueTimeoutMs: 39 }), 31)).toEqual({
      status: "rejected",
      reason: "queue-timeout",
      retryAfterMs: 40,
    });
    expect(s.stats(31).scopes["backend:api"]).toMatchObject({ rejected_early: 1 });
    void l;
  });

  it("full and queue-full come first: early applies only to an acquire that would be queued", () => {
    const { s } = withHandoffs();
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 0 }), 71)).toEqual({ status: "rejected", reason: "full" });
  });
});
