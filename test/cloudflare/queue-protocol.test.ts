/**
 * The queue's new fields on the object's RPC surface: a request's `flow` and `early`, the spec's
 * `queue` section, checked like every other field; a rejection's `retryAfterMs` carried back.
 */
import { describe, expect, it } from "vitest";
import { StoreStatus } from "../../src/core/errors.js";
import { buildGroupSpec } from "../../src/core/spec.js";
import { checkAcquireOutcome } from "../../src/stores/durable-object/protocol.js";
import { freshGroup, request, sleep, spec, stubFor, until } from "./helpers.js";

describe("SlotGroup RPC: flows, disciplines, early rejection", () => {
  it("checks flow, early and the queue section like every other field", async () => {
    const stub = stubFor(freshGroup("rpc-queue"));
    const bad = StoreStatus.BadRequest;
    const withQueue = (queue: unknown) => ({ ...spec({ global: 1 }), queue }) as never;
    expect(await stub.configure(withQueue({ discipline: "red", targetMs: 5, intervalMs: 100, flowWeights: {} }))).toMatchObject({
      status: bad,
      detail: expect.stringContaining("spec.queue.discipline"),
    });
    expect(await stub.configure(withQueue({ discipline: "codel", targetMs: 5, intervalMs: 100, flowWeights: { a: 0 } }))).toMatchObject({
      status: bad,
      // The flow is named by its place, never by its name (it may be an API key).
      detail: expect.stringContaining("spec.queue.flowWeights: expected an integer weight from 1 to 1000 (flow 1 of the list)"),
    });
    expect(await stub.configure(buildGroupSpec({ global: 1 }, undefined, { discipline: "lifo", flowWeights: { a: 2 } }))).toMatchObject({ status: 0 });

    expect(await stub.acquire(request(["global"], { flow: "" }), "w1")).toMatchObject({ status: bad, detail: expect.stringContaining("request.flow") });
    expect(await stub.acquire(request(["global"], { flow: "f".repeat(1025) }), "w1")).toMatchObject({
      status: bad,
      detail: expect.stringContaining("request.flow"),
    });
    expect(await stub.acquire(request(["global"], { flow: 7 as never }), "w1")).toMatchObject({ status: bad, detail: expect.stringContaining("request.flow") });
    expect(await stub.acquire(request(["global"], { early: "yes" as never }), "w1")).toMatchObject({
      status: bad,
      detail: expect.stringContaining("request.early"),
    });

    const holder = await stub.acquire(request(["global"], { flow: "{a}:\n" }), "holder");
    expect(holder).toMatchObject({ status: 0, value: { ok: true } });
    void stub.acquire(request(["global"], { flow: "{a}:\n", queueTimeoutMs: 10_000 }), "w2");
    await until(async () => {
      const s = await stub.stats();
      return s.status === 0 && s.value.tickets === 1;
    });
    const stats = await stub.stats();
    if (stats.status !== 0) throw new Error("stats failed");
    expect(stats.value.queue).toEqual({ discipline: "lifo", standing: false });
    expect(stats.value.flows).toEqual({ "{a}:\n": { waiting: 1, granted: 0 } });
    expect(stats.value.scopes.global).toMatchObject({ rejected_early: 0, codel_dropped: 0 });
    expect(await stub.cancel("w2")).toEqual({ status: 0, value: true });
  });

  it("answers an early rejection with its retryAfterMs", async () => {
    const stub = stubFor(freshGroup("rpc-early"));
    await stub.configure(spec({ global: 1 }));
    const first = await stub.acquire(request(["global"]), "holder");
    if (first.status !== 0 || !first.value.ok) throw new Error("expected a grant");
    const waits = ["w1", "w2", "w3"].map((id) => stub.acquire(request(["global"], { queueTimeoutMs: 60_000 }), id));
    await until(async () => {
      const s = await stub.stats();
      return s.status === 0 && s.value.tickets === 3;
    });
    // Two hand-offs about 40 ms apart: handoffMs ≈ 40, two tickets still queued: estimate ≈ 120 ms.
    let leaseId = first.value.lease.id;
    for (const w of waits.slice(0, 2)) {
      await sleep(40);
      await stub.release(leaseId);
      const r = await w;
      if (r.status !== 0 || !r.value.ok) throw new Error("expected a grant");
      leaseId = r.value.lease.id;
    }
    const early = await stub.acquire(request(["global"], { queueTimeoutMs: 20, early: true }), "early");
    expect(early).toMatchObject({ status: 0, value: { ok: false, reason: "queue-timeout", retryAfterMs: expect.any(Number) } });
    if (early.status !== 0 || early.value.ok) throw new Error("expected a rejection");
    expect(early.value.retryAfterMs).toBeGreaterThan(20);
    const stats = await stub.stats();
    if (stats.status !== 0) throw new Error("stats failed");
    expect(stats.value.scopes.global).toMatchObject({ rejected_early: 1, queued: 1 });
  });

  it("the client keeps a rejection's retryAfterMs only when it is whole milliseconds within a day", () => {
    expect(checkAcquireOutcome({ ok: false, reason: "queue-timeout", retryAfterMs: 250 })).toEqual({ ok: false, reason: "queue-timeout", retryAfterMs: 250 });
    for (const bad of [-1, 1.5, Number.NaN, 86_400_001, "9" as never]) {
      expect(checkAcquireOutcome({ ok: false, reason: "queue-timeout", retryAfterMs: bad })).toEqual({ ok: false, reason: "queue-timeout" });
    }
  });
});
