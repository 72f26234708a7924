// The edge node's words for fair queuing, queue disciplines and early rejection (issue 13): the
// top-level `queue` section, a frontend's `fair_by` and `queue_timeout_early`, validated with paths
// in the errors, planned into the acquire's `flow` / `queueTimeoutEarly`, and kept out of logs.

import { describe, expect, it } from "vitest";
import { createGuard, SlotgateConfigError } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createRequestPlanner, toGuardOptions, type AcquirePlan } from "../../src/edge/config/to-guard.js";
import { logPath } from "../../src/node/logger.js";
import { flowDigest } from "../../src/node/stats/keys.js";

type Loose = Record<string, unknown>;

function config(top: Loose = {}, web: Loose = {}, echo: Loose = {}): Loose {
  return {
    group: "fair",
    ...top,
    frontends: {
      web: { bind: "127.0.0.1:0", default_backend: "app", ...web },
      echo: { bind: "127.0.0.1:0", mode: "tcp", default_backend: "app", ...echo },
    },
    backends: { app: { timeout: { queue: "2s" }, servers: { s1: { address: "127.0.0.1:9001", maxconn: 1 } } } },
  };
}

function issues(raw: Loose): string[] {
  try {
    validateEdgeConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(SlotgateConfigError);
    expect((error as SlotgateConfigError).code).toBe("SLOTGATE_INVALID_CONFIG");
    return (error as Error).message.split("\n");
  }
  throw new Error("expected the config to be rejected");
}

function planned(plan: AcquirePlan) {
  if (!plan.ok) throw new Error(`expected a plan, got ${plan.status}`);
  return plan.options;
}

describe("queue, fair_by and queue_timeout_early: good values", () => {
  it("normalises the queue section, with defaults for what is left out", () => {
    const c = validateEdgeConfig(config({ queue: { discipline: "codel", target: "20ms", interval: "1.5s", flow_weights: { acme: 3, "big co": 1000 } } }));
    expect(c.queue).toEqual({ discipline: "codel", targetMs: 20, intervalMs: 1500, flowWeights: { acme: 3, "big co": 1000 } });
    expect(validateEdgeConfig(config({ queue: {} })).queue).toEqual({ discipline: "fifo", targetMs: 5, intervalMs: 100, flowWeights: {} });
    expect(validateEdgeConfig(config({ queue: { discipline: "lifo", target: 60_000, interval: "10m" } })).queue).toMatchObject({
      discipline: "lifo",
      targetMs: 60_000,
      intervalMs: 600_000,
    });
    expect(validateEdgeConfig(config()).queue).toBeNull();
  });

  it("takes any key source keyed limits take for fair_by; tcp only src", () => {
    const header = validateEdgeConfig(config({}, { fair_by: { header: "X-Tenant" }, queue_timeout_early: true }, { fair_by: { src: { ipv4: 24 } } }));
    expect(header.frontends.web).toMatchObject({ fairBy: { kind: "header", name: "x-tenant" }, queueTimeoutEarly: true });
    expect(header.frontends.echo).toMatchObject({ fairBy: { kind: "src", ipv4Prefix: 24, ipv6Prefix: 64 }, queueTimeoutEarly: false });
    expect(validateEdgeConfig(config({}, { fair_by: { query: "key" } })).frontends.web!.fairBy).toEqual({ kind: "query", name: "key" });
    expect(validateEdgeConfig(config({}, { fair_by: { path: true } })).frontends.web!.fairBy).toEqual({ kind: "path" });
    expect(validateEdgeConfig(config({}, { fair_by: { src: true } })).frontends.web!.fairBy).toEqual({ kind: "src", ipv4Prefix: 32, ipv6Prefix: 64 });
    const none = validateEdgeConfig(config());
    expect(none.frontends.web).toMatchObject({ fairBy: null, queueTimeoutEarly: false });
    // tcp frontends may ask for early rejection too: a rejected connection is closed.
    expect(validateEdgeConfig(config({}, {}, { queue_timeout_early: true })).frontends.echo!.queueTimeoutEarly).toBe(true);
  });

  it("gives the guard the queue section, and the guard takes it", async () => {
    const c = validateEdgeConfig(config({ version: 2, queue: { discipline: "codel", target: "10ms", interval: "200ms", flow_weights: { acme: 4 } } }));
    const options = toGuardOptions(c);
    expect(options.queue).toEqual({ discipline: "codel", targetMs: 10, intervalMs: 200, flowWeights: { acme: 4 } });
    const guard = createGuard(options);
    await guard.close();
    // No section, no option: the spec stays what it was before queue sections (same hash).
    expect(toGuardOptions(validateEdgeConfig(config())).queue).toBeUndefined();
  });
});

describe("queue, fair_by and queue_timeout_early: errors name their path", () => {
  const cases: Array<{ name: string; raw: Loose; expect: string[] }> = [
    {
      name: "queue values out of range, unknown key",
      raw: config({ queue: { discipline: "red", target: 0, interval: "11m", max: 1 } }),
      expect: [
        'queue.discipline: expected one of "fifo", "codel", "lifo", got "red"',
        "queue.target: expected a duration from 1ms to 1m, got 0",
        'queue.interval: expected a duration from 1ms to 10m, got "11m"',
        'queue.max: expected one of the keys discipline, target, interval, flow_weights, got "max"',
      ],
    },
    {
      name: "queue not an object",
      raw: config({ queue: "codel" }),
      expect: ['queue: expected an object { discipline?, target?, interval?, flow_weights? }, got "codel"'],
    },
    {
      name: "flow weights out of range or not integers",
      raw: config({ queue: { flow_weights: { acme: 0, b: 1001, c: 1.5, d: "3" } } }),
      expect: [
        "queue.flow_weights: expected an integer weight from 1 to 1000 (flow 1 of the list), got 0",
        "queue.flow_weights: expected an integer weight from 1 to 1000 (flow 2 of the list), got 1001",
        "queue.flow_weights: expected an integer weight from 1 to 1000 (flow 3 of the list), got 1.5",
        'queue.flow_weights: expected an integer weight from 1 to 1000 (flow 4 of the list), got "3"',
      ],
    },
    {
      name: "flow weights: a list, too many, an empty or over-long name (not echoed)",
      raw: config({ queue: { flow_weights: [] } }),
      expect: ["queue.flow_weights: expected a mapping of flow names (1 to 1024 characters) to weights, at most 1000 of them, got an array"],
    },
    {
      name: "too many flow weights",
      raw: config({ queue: { flow_weights: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`f${i}`, 1])) } }),
      expect: ['queue.flow_weights: expected a mapping of flow names (1 to 1024 characters) to weights, at most 1000 of them, got "1001 flows"'],
    },
    {
      name: "empty and over-long flow names",
      raw: config({ queue: { flow_weights: { "": 2, ["k".repeat(1025)]: 2 } } }),
      expect: [
        'queue.flow_weights: expected a flow name of 1 to 1024 characters (flow 1 of the list), got "(0 characters, not shown)"',
        'queue.flow_weights: expected a flow name of 1 to 1024 characters (flow 2 of the list), got "(1025 characters, not shown)"',
      ],
    },
    {
      name: "fair_by: unknown kind, two kinds, a string, a bad header name",
      raw: {
        ...config({}, { fair_by: { cookie: "x" } }),
        frontends: {
          a: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { cookie: "x" } },
          b: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { header: "x", src: true } },
          c: { bind: "127.0.0.1:0", default_backend: "app", fair_by: "x-tenant" },
          d: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { header: "bad h" } },
          e: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { src: { ipv4: 33 } } },
        },
      },
      expect: [
        'frontends.a.fair_by.cookie: expected one of the keys header, src, path, query, got "cookie"',
        "frontends.b.fair_by: expected one of { header: <name> }, { query: <param> }, { path: true }, { src: true } or { src: { ipv4, ipv6 } }, got an object",
        'frontends.c.fair_by: expected one of { header: <name> }, { query: <param> }, { path: true }, { src: true } or { src: { ipv4, ipv6 } }, got "x-tenant"',
        'frontends.d.fair_by.header: expected a header name (an HTTP token of up to 128 characters), got "bad h"',
        "frontends.e.fair_by.src.ipv4: expected an IPv4 prefix length from 0 to 32, got 33",
      ],
    },
    {
      name: "fair_by in a tcp frontend: only src",
      raw: config({}, {}, { fair_by: { header: "x-tenant" } }),
      expect: ['frontends.echo.fair_by.header: expected only a src key in a tcp frontend, got "x-tenant"'],
    },
    {
      name: "queue_timeout_early not a boolean",
      raw: config({}, { queue_timeout_early: "yes" }, { queue_timeout_early: 1 }),
      expect: ['frontends.web.queue_timeout_early: expected a boolean, got "yes"', "frontends.echo.queue_timeout_early: expected a boolean, got 1"],
    },
  ];

  it.each(cases)("$name", ({ raw, expect: expected }) => {
    const lines = issues(raw);
    for (const line of expected) expect(lines).toContain(line);
  });

  it("never echoes a flow name (it may be an API key), valid or not", () => {
    const lines = issues(config({ queue: { flow_weights: { [`sk_live_${"x".repeat(1100)}`]: 2, sk_live_short: 0 } } }));
    expect(lines).toEqual([
      'queue.flow_weights: expected a flow name of 1 to 1024 characters (flow 1 of the list), got "(1108 characters, not shown)"',
      "queue.flow_weights: expected an integer weight from 1 to 1000 (flow 2 of the list), got 0",
    ]);
  });
});

describe("the planner: fair_by becomes the acquire's flow", () => {
  const c = validateEdgeConfig({
    ...config({ global: { maxconn: 10 } }),
    frontends: {
      header: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { header: "x-tenant" }, queue_timeout_early: true },
      query: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { query: "key" } },
      path: { bind: "127.0.0.1:0", default_backend: "app", fair_by: { path: true }, limits: [{ name: "t", key: { header: "x-tenant" }, maxconn: 2 }] },
      net: { bind: "127.0.0.1:0", mode: "tcp", default_backend: "app", fair_by: { src: { ipv4: 24 } }, queue_timeout_early: true },
    },
  });
  const plan = createRequestPlanner(c);

  it("reads the value where keyed limits read theirs; missing or empty: no flow", () => {
    expect(planned(plan("header", { headers: { "x-tenant": "acme" } }))).toMatchObject({ flow: "acme", queueTimeoutEarly: true });
    expect(planned(plan("header", { headers: {} }))).not.toHaveProperty("flow");
    expect(planned(plan("header", { headers: { "x-tenant": "" } }))).not.toHaveProperty("flow");
    expect(planned(plan("query", { path: "/a?x=1&key=k%20y" })).flow).toBe("k y");
    expect(planned(plan("query", { path: "/a?x=1" }))).not.toHaveProperty("flow");
    expect(planned(plan("query", { path: "/a" }))).not.toHaveProperty("queueTimeoutEarly");
    const p = planned(plan("path", { path: "/reports/7?full=1", headers: { "x-tenant": "acme" } }));
    expect(p).toMatchObject({ flow: "/reports/7", scopes: ["global", "frontend:path", "frontend:path:t:acme"] });
    expect(planned(plan("net", { src: "::ffff:10.1.2.3" })).flow).toBe("10.1.2.0");
    expect(planned(plan("net", { src: "not an address" }))).not.toHaveProperty("flow");
  });

  it("answers an over-long flow value as an over-long keyed value: 431 for a header, 414 for the query or path", () => {
    expect(plan("header", { headers: { "x-tenant": "a".repeat(1024) } }).ok).toBe(true);
    expect(plan("header", { headers: { "x-tenant": "a".repeat(1025) } })).toEqual({
      ok: false,
      status: 431,
      message: "header x-tenant is longer than 1024 characters",
    });
    expect(plan("query", { path: `/?key=${"a".repeat(1025)}` })).toMatchObject({ ok: false, status: 414 });
    expect(plan("path", { path: `/${"a".repeat(1024)}` })).toMatchObject({ ok: false, status: 414, message: "the path is longer than 1024 characters" });
  });

  it("logs a fair_by path or query value as its digest, never raw", () => {
    const logged = { ...c, log: { query: true } };
    expect(logPath("/a?x=1&key=secret-key", logged, "query")).toBe(`/a?x=1&key=${flowDigest("fair", "secret-key")}`);
    expect(logPath("/tenant/acme", logged, "path")).toBe(flowDigest("fair", "/tenant/acme"));
    expect(flowDigest("fair", "acme")).toMatch(/^#[0-9a-f]{12}$/);
    expect(flowDigest("fair", "acme")).not.toBe(flowDigest("other", "acme"));
  });
});
