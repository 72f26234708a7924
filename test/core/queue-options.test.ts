/**
 * The public surface of fair queuing, queue disciplines and early rejection: the `queue` section
 * of a spec and the `flow` / `queueTimeoutEarly` acquire options, validated with option paths;
 * a store's `retryAfterMs` reported by the guard.
 */
import { describe, expect, it } from "vitest";
import { createGuard, createMemoryStore, SlotgateConfigError, type GroupStore, type SlotStore } from "../../src/index.js";
import { toChainRequest } from "../../src/core/acquire-options.js";
import { buildGroupSpec } from "../../src/core/spec.js";
import { canonicalSpecJson, describeSpecDifferences } from "../../src/core/spec-version.js";

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SlotgateConfigError);
    return (error as Error).message;
  }
  throw new Error("no error");
}

describe("queue section of the spec", () => {
  it("fills the defaults and keeps the weights", () => {
    expect(buildGroupSpec({ g: 1 }, undefined, {}).queue).toEqual({ discipline: "fifo", targetMs: 5, intervalMs: 100, flowWeights: {} });
    expect(buildGroupSpec({ g: 1 }, undefined, { discipline: "codel", targetMs: 10, intervalMs: 50, flowWeights: { a: 3 } }).queue).toEqual({
      discipline: "codel",
      targetMs: 10,
      intervalMs: 50,
      flowWeights: { a: 3 },
    });
  });

  it("is absent when not given, so the spec hashes as before", () => {
    const spec = buildGroupSpec({ g: 1 }, undefined);
    expect("queue" in spec).toBe(false);
    expect(canonicalSpecJson(spec)).toBe('{"backends":{},"limits":{"g":{"keyed":false,"max":1,"maxqueue":null}}}');
  });

  it.each([
    [{ discipline: "red" }, 'queue.discipline: expected one of "fifo", "codel", "lifo", got "red"'],
    [{ targetMs: 0 }, "queue.targetMs: expected an integer from 1 to 60000, got 0"],
    [{ intervalMs: 600_001 }, "queue.intervalMs: expected an integer from 1 to 600000, got 600001"],
    // A flow name may be an API key: an issue names the flow by its place, never by its name.
    [{ flowWeights: { a: 0 } }, "queue.flowWeights: expected an integer weight from 1 to 1000 (flow 1 of the list), got 0"],
    [{ flowWeights: { a: 1.5 } }, "queue.flowWeights: expected an integer weight from 1 to 1000 (flow 1 of the list), got 1.5"],
    [{ flowWeights: { "": 2 } }, "queue.flowWeights"],
    [{ tagetMs: 5 }, "queue.tagetMs"],
    ["codel", "queue: expected an object"],
  ])("refuses %j", (queue, message) => {
    expect(configError(() => createGuard({ limits: { g: 1 }, queue: queue as never }))).toContain(message);
  });

  it("bounds the weights to 1000 flows", () => {
    const flowWeights = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`f${i}`, 1]));
    expect(configError(() => buildGroupSpec({ g: 1 }, undefined, { flowWeights }))).toContain(
      'queue.flowWeights: expected a mapping of flow names (1 to 1024 characters) to weights, at most 1000 of them, got "1001 flows"',
    );
  });

  it("takes any flow name a keyed value may be, __proto__ included, as an own entry", () => {
    const spec = buildGroupSpec({ g: 1 }, undefined, JSON.parse('{"flowWeights":{"__proto__":7,"a:b{c}\\n":2}}'));
    expect(Object.hasOwn(spec.queue!.flowWeights, "__proto__")).toBe(true);
    expect(spec.queue!.flowWeights["a:b{c}\n"]).toBe(2);
  });

  it("is part of the spec's identity (rule 13), and its differences are named without flow names", () => {
    const a = buildGroupSpec({ g: 1 }, undefined, { discipline: "codel" });
    const b = buildGroupSpec({ g: 1 }, undefined, { discipline: "lifo", flowWeights: { "secret-tenant": 2 } });
    expect(canonicalSpecJson(a)).not.toBe(canonicalSpecJson(b));
    const diffs = describeSpecDifferences(a, b).join("; ");
    expect(diffs).toContain("queue discipline codel (stored) vs lifo (this node)");
    expect(diffs).toContain("queue flowWeights: 1 flow weighted differently");
    expect(diffs).not.toContain("secret-tenant");
    expect(describeSpecDifferences(buildGroupSpec({ g: 1 }, undefined), buildGroupSpec({ g: 1 }, undefined, {}))).toEqual([
      "queue section absent (stored) vs present (this node)",
    ]);
  });
});

describe("flow and queueTimeoutEarly acquire options", () => {
  const spec = buildGroupSpec({ g: 1, tenant: { perKey: 1 } }, undefined);
  const defaults = { queueTimeoutMs: 0, leaseTtlMs: 1000, queueTimeoutEarly: false };

  it("carries the flow and `early` only when true", () => {
    expect(toChainRequest({ scopes: ["g"], flow: "acme" }, spec, defaults)).toMatchObject({ flow: "acme" });
    expect("early" in toChainRequest({ scopes: ["g"], queueTimeoutEarly: false }, spec, defaults)).toBe(false);
    expect(toChainRequest({ scopes: ["g"], queueTimeoutEarly: true }, spec, defaults).early).toBe(true);
    expect(toChainRequest({ scopes: ["g"] }, spec, { ...defaults, queueTimeoutEarly: true }).early).toBe(true);
    expect("flow" in toChainRequest({ scopes: ["g"] }, spec, defaults)).toBe(false);
  });

  it("takes the keyed value's rule for a flow: 1 to 1024 characters of anything", () => {
    expect(toChainRequest({ flow: "x".repeat(1024) }, spec, defaults).flow).toHaveLength(1024);
    expect(toChainRequest({ flow: "{a}:b\n\u0000" }, spec, defaults).flow).toBe("{a}:b\n\u0000");
    expect(configError(() => toChainRequest({ flow: "" }, spec, defaults))).toContain("flow: expected a flow name of 1 to 1024 characters");
    expect(configError(() => toChainRequest({ flow: "x".repeat(1025) }, spec, defaults))).toContain("flow: expected a flow name of 1 to 1024 characters");
    expect(configError(() => toChainRequest({ flow: 7 as never }, spec, defaults))).toContain("flow: expected");
  });

  it("never shows a refused flow or a weighted flow's name in an error (it may be an API key)", () => {
    const key = `sk_live_${"k".repeat(1020)}`;
    const refused = configError(() => toChainRequest({ flow: key }, spec, defaults));
    expect(refused).toContain("(1028 characters, not shown)");
    expect(refused).not.toContain("sk_live");
    const weights = configError(() => buildGroupSpec({ g: 1 }, undefined, { flowWeights: { sk_live_secret: 0, [key]: 2 } }));
    expect(weights).toContain("flow 1 of the list");
    expect(weights).toContain("flow 2 of the list");
    expect(weights).not.toContain("sk_live");
    expect(configError(() => toChainRequest({ queueTimeoutEarly: "yes" as never }, spec, defaults))).toContain("queueTimeoutEarly: expected a boolean");
  });

  it("guard defaults may set queueTimeoutEarly", () => {
    expect(configError(() => createGuard({ limits: { g: 1 }, defaults: { queueTimeoutEarly: 1 as never } }))).toContain("defaults.queueTimeoutEarly");
  });
});

describe("the guard reports a store's retryAfterMs", () => {
  /** The memory store, with acquire answering a fixed early rejection. */
  function rejectingStore(retryAfterMs?: number): SlotStore {
    const inner = createMemoryStore();
    return {
      kind: "rejecting",
      open(group, spec, options) {
        const h = inner.open(group, spec, options);
        const handle: GroupStore = {
          ready: () => h.ready(),
          acquire: () =>
            Promise.resolve(retryAfterMs === undefined ? { ok: false, reason: "queue-timeout" } : { ok: false, reason: "queue-timeout", retryAfterMs }),
          release: (id) => h.release(id),
          renew: (id, ttl) => h.renew(id, ttl),
          configure: (spec, version) => h.configure(spec, version),
          setServerState: (b, s, up) => h.setServerState(b, s, up),
          stats: () => h.stats(),
          close: () => h.close(),
        };
        return handle;
      },
      readStats: (group) => inner.readStats(group),
    };
  }

  it("instead of its constant when the store gave one", async () => {
    const guard = createGuard({ store: rejectingStore(1234), limits: { g: 1 }, retryAfterMs: 500 });
    expect(await guard.acquire({ scopes: ["g"] })).toEqual({ ok: false, reason: "queue-timeout", retryAfterMs: 1234 });
    await guard.close();
  });

  it("its constant otherwise", async () => {
    const guard = createGuard({ store: rejectingStore(), limits: { g: 1 }, retryAfterMs: 500 });
    expect(await guard.acquire({ scopes: ["g"] })).toEqual({ ok: false, reason: "queue-timeout", retryAfterMs: 500 });
    await guard.close();
  });

  it("configure() changes the queue section, under the version rule", async () => {
    const guard = createGuard({ limits: { g: 1 }, version: 1, queue: { discipline: "lifo" } });
    expect((await guard.stats()).queue).toEqual({ discipline: "lifo", standing: false });
    await expect(guard.configure({ queue: { discipline: "codel" } })).rejects.toMatchObject({ code: "SLOTGATE_SPEC_CONFLICT" });
    expect(await guard.configure({ queue: { discipline: "codel" }, version: 2 })).toEqual({ installed: true, storedVersion: 2 });
    expect((await guard.stats()).queue).toEqual({ discipline: "codel", standing: false });
    await expect(guard.configure({ queue: { targetMs: -1 }, version: 3 })).rejects.toThrow("queue.targetMs");
    await guard.close();
  });

  it("pushes the queue section with the spec and reports the discipline in stats", async () => {
    const guard = createGuard({ limits: { g: 1 }, queue: { discipline: "lifo" } });
    const stats = await guard.stats();
    expect(stats.scopes.g).toMatchObject({ rejected_early: 0, codel_dropped: 0 });
    await guard.close();
  });
});
