// `slotgate check` on the config words of issue 13 (queue, fair_by, queue_timeout_early), as a
// user runs it: the built CLI in a child process.

import { describe, expect, it } from "vitest";
import { run, useCliTests } from "../support/cli.js";

const { writeConfig } = useCliTests();

const SECRET_FLOW = "sk_live_flow_0123456789";

function file(extra: Record<string, unknown>, web: Record<string, unknown> = {}, echo: Record<string, unknown> = {}) {
  return {
    group: "fair-cli",
    ...extra,
    frontends: {
      web: { bind: "127.0.0.1:8080", default_backend: "app", ...web },
      echo: { bind: "127.0.0.1:8000", mode: "tcp", default_backend: "app", ...echo },
    },
    backends: { app: { servers: { s1: { address: "127.0.0.1:9001", maxconn: 2 } } } },
  };
}

describe("slotgate check: queue, fair_by, queue_timeout_early", () => {
  it("accepts them and prints what they set, flow names left out", async () => {
    const path = await writeConfig(
      "fair.yaml",
      file(
        { queue: { discipline: "codel", target: "10ms", interval: "200ms", flow_weights: { [SECRET_FLOW]: 5, acme: 2 } } },
        { fair_by: { header: "X-Tenant" }, queue_timeout_early: true },
        { fair_by: { src: { ipv4: 24 } } },
      ),
    );
    const r = await run(["check", "-c", path]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("fair by header x-tenant · queue timeout early");
    expect(r.stdout).toContain("fair by src /24 /64");
    expect(r.stdout).toContain("\n  queue codel (target 10ms, interval 200ms) · 2 flow weights\n");
    expect(r.stdout).not.toContain(SECRET_FLOW);
  });

  it("refuses bad values with the same paths and messages as serve", async () => {
    const path = await writeConfig(
      "fair-bad.yaml",
      file(
        { queue: { discipline: "red", target: "2m", flow_weights: { acme: 0 } } },
        { fair_by: { cookie: "x" }, queue_timeout_early: "yes" },
        { fair_by: { header: "x" } },
      ),
    );
    const r = await run(["check", "-c", path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    for (const line of [
      'queue.discipline: expected one of "fifo", "codel", "lifo", got "red"',
      'queue.target: expected a duration from 1ms to 1m, got "2m"',
      "queue.flow_weights: expected an integer weight from 1 to 1000 (flow 1 of the list), got 0",
      'frontends.web.fair_by.cookie: expected one of the keys header, src, path, query, got "cookie"',
      'frontends.web.queue_timeout_early: expected a boolean, got "yes"',
      'frontends.echo.fair_by.header: expected only a src key in a tcp frontend, got "x"',
    ]) {
      expect(r.stderr).toContain(line);
    }
  });
});
