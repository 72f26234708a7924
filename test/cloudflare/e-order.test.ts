/**
 * The store relies on E-order: calls made on one stub reach the object in the order they were
 * made (a release sent just before an acquire arrives first; a cancel never overtakes its
 * acquire). This checks it on the deployable bundle (SLOT_GROUP_BUNDLE). The object copes with a
 * cancel that overtakes its acquire anyway (protocol.test.ts). The pool's wrapped SLOT_GROUP does
 * not keep this order; see bundle.global-setup.ts.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { freshGroup, request, spec } from "./helpers.js";

describe("E-order on one stub", () => {
  it("100 acquire-then-cancel pairs, each cancel sent without waiting: every cancel finds its ticket", async () => {
    const ns = env.SLOT_GROUP_BUNDLE;
    const stub = ns.get(ns.idFromName(freshGroup("e-order")));
    await stub.configure(spec({ global: 1 }));
    await stub.acquire(request(["global"]), "holder");
    let overtaken = 0;
    for (let i = 0; i < 100; i++) {
      const queued = stub.acquire(request(["global"], { queueTimeoutMs: 10_000 }), `w${i}`);
      const cancelled = await stub.cancel(`w${i}`);
      if (cancelled.status !== 0 || cancelled.value !== true) overtaken++;
      expect(await queued).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    }
    expect(overtaken).toBe(0);
  });
});
