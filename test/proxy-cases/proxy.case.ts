/**
 * The proxy case suite: every case of cases.ts, unchanged, against one edge runtime. Each runtime's
 * test file calls {@link runProxyCases} with a way to start an edge for a case; a runtime that
 * cannot express a case lists it under `skip` with the reason (as the store conformance suite does).
 *
 * After every case, nothing may be left held or queued in the store.
 */
import { describe, expect, it } from "vitest";
import { PROXY_CASES, expectHeaders, until, type CaseConfig, type ExchangeCase, type ProxyEdge } from "./cases.js";

/** An edge started for one case, on a group of its own. */
export interface StartedEdge extends ProxyEdge {
  /** Nothing held and nothing queued in the store (and, where the runtime counts it, in the node). */
  idle(): Promise<boolean>;
  close(): Promise<void>;
}

export interface ProxyTarget {
  name: string;
  start(config: CaseConfig): Promise<StartedEdge>;
  skip?: { reason: string; cases: string[] }[];
}

async function runExchange(edge: ProxyEdge, c: ExchangeCase): Promise<void> {
  const r = await edge.send(c.request);
  expect(r.status, `status (body: ${r.body.slice(0, 200)})`).toBe(c.response.status);
  expectHeaders(r.headers, c.response.headers, "response");
  if (c.response.body !== undefined) expect(r.body).toBe(c.response.body);
  const seen = await edge.seen();
  if (c.origin === undefined) {
    expect(seen, "the origin saw nothing").toEqual([]);
    return;
  }
  expect(seen.map((s) => s.url)).toHaveLength(1);
  const s = seen[0]!;
  if (c.origin.method !== undefined) expect(s.method).toBe(c.origin.method);
  if (c.origin.url !== undefined) expect(s.url).toBe(c.origin.url);
  expectHeaders(s.headers, c.origin.headers, "origin's request");
}

export function runProxyCases(target: ProxyTarget): void {
  const skipped = new Map<string, string>();
  for (const s of target.skip ?? []) for (const name of s.cases) skipped.set(name, s.reason);

  describe(`proxy cases: ${target.name}`, () => {
    it("skips only cases that exist", () => {
      const names = new Set(PROXY_CASES.map((c) => c.name));
      expect([...skipped.keys()].filter((name) => !names.has(name))).toEqual([]);
    });

    for (const c of PROXY_CASES) {
      const fn = async () => {
        const edge = await target.start(c.config);
        try {
          if ("scenario" in c) await c.scenario(edge);
          else await runExchange(edge, c);
          await until(() => edge.idle(), 3000, "nothing held or queued after the case");
        } finally {
          await edge.close();
        }
      };
      const reason = skipped.get(c.name);
      if (reason !== undefined) it.skip(`${c.name} (skipped: ${reason})`, fn);
      else it(c.name, fn);
    }
  });
}
