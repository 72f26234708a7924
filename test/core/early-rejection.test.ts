// Rule E (docs/semantics.md): the hand-off EWMA per scope, the estimate of an acquire that would
// be queued, its rejection with retryAfterMs, counted rejected_early on the scope it would wait on.
import { describe, expect, it } from "vitest";
import { handOff, lease, queue, req, state } from "./state-helpers.js";

/**
 * A limit-1 group whose scope g began to have a queue at 0 and handed off at 20, 40 and 80:
 * intervals 20, 20, 40, handoffMs = 20 + (40 - 20) / 8 = 22.5. The queue is empty again at 80.
 */
function withHandoffs() {
  const s = state({ g: 1, other: 5 });
  const held = lease(s, req(["g"]));
  for (const id of ["T1", "T2", "T3"]) queue(s, req(["g"]), id);
  let l = handOff(s, held, 20);
  l = handOff(s, l.leaseId, 40);
  l = handOff(s, l.leaseId, 80);
  return { s, current: l.leaseId };
}

describe("early rejection", () => {
  it("rejects when (queued + 1) × handoffMs exceeds the queue timeout, with retryAfterMs = ceil(estimate)", () => {
    const { s } = withHandoffs();
    queue(s, req(["g"]), "T4", 80);
    queue(s, req(["g"]), "T5", 80);
    // estimate = (2 + 1) × 22.5 = 67.5
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 67 }), 81)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 68 });
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 68 }), 81, "T6").status).toBe("queued");
    // Without `early` nothing changes.
    expect(s.acquire(req(["g"], { queueTimeoutMs: 1 }), 81, "T7").status).toBe("queued");
    const g = s.stats(81).scopes.g!;
    expect(g).toMatchObject({ rejected_early: 1, queued: 4, rejected_full: 0, queue_timeouts: 0 });
  });

  it("counts only on the scope it would wait on, touches no flow, enqueues nothing", () => {
    const { s } = withHandoffs();
    queue(s, req(["g"], { flow: "f" }), "T4", 80);
    const d = s.acquire(req(["other", "g"], { early: true, queueTimeoutMs: 10, flow: "f" }), 81);
    expect(d).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 45 });
    const stats = s.stats(81);
    expect(stats.scopes.g).toMatchObject({ rejected_early: 1, queued: 1 });
    expect(stats.scopes.other).toMatchObject({ rejected_early: 0, queued: 0 });
    expect(stats.flows).toEqual({ f: { waiting: 1, granted: 0 } });
    expect(s.ticketCount).toBe(1);
  });

  it("has no estimate before the scope's first hand-off; the first interval runs from when its queue began", () => {
    const s = state({ g: 1 });
    const held = lease(s, req(["g"]));
    queue(s, req(["g"]), "T1", 100); // the queue begins at 100
    queue(s, req(["g"]), "T2", 100);
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1 }), 100, "E1").status).toBe("queued");
    handOff(s, held, 1_000); // the first interval: 1000 - 100 (E1 has timed out by then)
    // estimate = (1 + 1) × 900
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1_799 }), 1_000)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 1_800 });
  });

  it("immediate grants do not count as hand-offs", () => {
    const s = state({ g: 2, h: 1 });
    const holdH = lease(s, req(["h"]));
    queue(s, req(["g", "h"]), "T1"); // queued on g too, which has room: it waits on h
    lease(s, req(["g"]), 500); // immediate: not a hand-off
    handOff(s, holdH, 1_000); // g's first interval: 1000 - 0, not 1000 - 500
    queue(s, req(["g"]), "T2", 1_000);
    // estimate = (1 + 1) × 1000
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 1_999 }), 1_000)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 2_000 });
  });

  it("time with nothing queued is no hand-off interval: after an idle hour the estimate is the rate of the busy time", () => {
    const s = state({ g: 1 });
    const hour = 3_600_000;
    let current = lease(s, req(["g"]));
    // Busy: a ticket handed off every 10 ms, with a queue all along.
    for (let i = 0; i < 4; i++) queue(s, req(["g"], { leaseTtlMs: 2 * hour }), `A${i}`);
    for (let i = 1; i <= 4; i++) current = handOff(s, current, 10 * i).leaseId;
    // Idle for an hour, the slot held all along; then a queue again, handed off 10 ms later.
    queue(s, req(["g"]), "B1", hour);
    queue(s, req(["g"]), "B2", hour);
    current = handOff(s, current, hour + 10).leaseId;
    // handoffMs stays 10 (each interval 10 ms): the estimate (1 + 1) × 10 admits a 20 ms timeout.
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 20 }), hour + 10, "E1").status).toBe("queued");
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 29 }), hour + 10)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 30 });
    void current;
  });

  it("is never rejected when nothing is queued on the scope it would wait on", () => {
    const s = state({ g: 1 });
    let current = lease(s, req(["g"]));
    queue(s, req(["g"]), "A1");
    queue(s, req(["g"]), "A2");
    current = handOff(s, current, 1_000).leaseId; // handoffMs 1000
    current = handOff(s, current, 2_000).leaseId; // the queue is empty again
    // The estimate would be (0 + 1) × 1000 > 10: behind no queue it does not apply.
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 10 }), 2_000, "E1").status).toBe("queued");
    // Behind one ticket it does.
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 10 }), 2_000)).toEqual({ status: "rejected", reason: "queue-timeout", retryAfterMs: 2_000 });
    expect(s.stats(2_000).scopes.g).toMatchObject({ rejected_early: 1, queued: 1 });
    void current;
  });

  it("a ticket waiting on a backend's servers is judged by the backend's scope", () => {
    const s = state({}, undefined, { api: { balance: "leastconn", servers: { a: { max: 1 }, b: { max: 1 } } } });
    const h1 = lease(s, req([], { backend: "api" }));
    lease(s, req([], { backend: "api" }));
    for (const id of ["T1", "T2", "T3"]) queue(s, req([], { backend: "api" }), id);
    let l = handOff(s, h1, 20);
    l = handOff(s, l.leaseId, 40);
    // backend:api's queue began at 0 and handed off at 20 and 40: handoffMs 20.
    expect(s.acquire(req([], { backend: "api", early: true, queueTimeoutMs: 39 }), 41)).toEqual({
      status: "rejected",
      reason: "queue-timeout",
      retryAfterMs: 40,
    });
    expect(s.stats(41).scopes["backend:api"]).toMatchObject({ rejected_early: 1 });
    void l;
  });

  it("full and queue-full come first: early applies only to an acquire that would be queued", () => {
    const { s } = withHandoffs();
    expect(s.acquire(req(["g"], { early: true, queueTimeoutMs: 0 }), 81)).toEqual({ status: "rejected", reason: "full" });
  });
});
