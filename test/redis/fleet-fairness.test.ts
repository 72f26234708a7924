// Fair queuing across a fleet (docs/semantics.md rule F): three node processes (test/support/
// redis-worker.ts) on one Redis share limit 4. Three flows are backlogged the whole time, one of
// them with ten times the waiting requests of the others. Under fair queuing each flow gets its
// weighted share of the grants, whatever its number of waiting requests; under FIFO (the same
// load without flows) the heavy flow takes most of them, which shows the test can fail.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "../harness/redis.js";
import { killAllNodes, startFleet } from "../support/redis-fleet.js";

const PROCESSES = 3;
const LIMIT = 4;
/** Loops per process for each flow: the heavy one has ten times the waiting requests. */
const LOOPS = { heavy: 20, light: 2, weighted: 2 };
/** The weighted flow counts twice: its weighted share is half of the grants. */
const WEIGHTS = { heavy: 1, light: 1, weighted: 2 };
const HOLD_MS = 3;
const DURATION_MS = 5_000;
/** Grants in the first and last second are left out: the loops start and stop at slightly different moments. */
const EDGE_MS = 1_000;

afterEach(async () => {
  await killAllNodes();
});

interface Shares {
  grants: Record<string, number>;
  share: Record<string, number>;
  /** Jain's fairness index of the shares, each divided by its weighted share (1: perfectly fair). */
  jain: number;
}

async function run(server: RedisProcess, fair: boolean): Promise<Shares> {
  const group = `fleet-fair-${fair ? "fair" : "fifo"}-${process.pid}`;
  const nodes = await startFleet(PROCESSES, {
    target: { url: server.url },
    group,
    limit: LIMIT,
    leaseTtlMs: 10_000,
    queueTimeoutMs: 60_000,
    store: { safetyRecheckMs: 60_000 },
    queue: { flowWeights: { weighted: WEIGHTS.weighted } },
  });
  const replies = await Promise.all(nodes.map((n) => n.request({ cmd: "flows", loops: LOOPS, fair, holdMs: HOLD_MS, durationMs: DURATION_MS })));
  const all = replies.flatMap((r) => Object.values(r).flat());
  const from = Math.min(...all) + EDGE_MS;
  const to = Math.max(...all) - EDGE_MS;
  const grants: Record<string, number> = {};
  for (const flow of Object.keys(LOOPS)) grants[flow] = replies.reduce((n, r) => n + (r[flow] ?? []).filter((at) => at >= from && at <= to).length, 0);
  const total = Object.values(grants).reduce((a, b) => a + b, 0);
  const weightSum = Object.values(WEIGHTS).reduce((a, b) => a + b, 0);
  const share: Record<string, number> = {};
  const ratios: number[] = [];
  for (const [flow, n] of Object.entries(grants)) {
    share[flow] = n / total;
    ratios.push(share[flow] / (WEIGHTS[flow as keyof typeof WEIGHTS] / weightSum));
  }
  const jain = ratios.reduce((a, b) => a + b, 0) ** 2 / (ratios.length * ratios.reduce((a, b) => a + b * b, 0));
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    `[fleet fairness ${fair ? "fair" : "fifo"}] ${total} grants in ${to - from} ms on limit ${LIMIT}, loops per process ${JSON.stringify(LOOPS)}, ` +
      `weights ${JSON.stringify(WEIGHTS)}: grants ${JSON.stringify(grants)}, shares ${JSON.stringify(Object.fromEntries(Object.entries(share).map(([f, x]) => [f, round(x)])))}, ` +
      `Jain's index ${round(jain)}`,
  );
  const exits = await Promise.all(nodes.map((n) => n.exit()));
  expect(exits).toEqual(nodes.map(() => ({ code: 0, signal: null })));
  return { grants, share, jain };
}

describe("fair queuing across a fleet (Redis, 3 processes)", () => {
  let server: RedisProcess;

  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("three backlogged flows, one with 10x the waiting requests: each gets its weighted share within 10%; Jain's index >= 0.95", async () => {
    const { grants, share, jain } = await run(server, true);
    const weightSum = WEIGHTS.heavy + WEIGHTS.light + WEIGHTS.weighted;
    expect(grants.heavy! + grants.light! + grants.weighted!).toBeGreaterThan(500);
    for (const flow of ["heavy", "light", "weighted"] as const) {
      const weighted = WEIGHTS[flow] / weightSum;
      expect(Math.abs(share[flow]! - weighted), `${flow}: share ${share[flow]} against ${weighted}`).toBeLessThanOrEqual(0.1 * weighted);
    }
    expect(jain).toBeGreaterThanOrEqual(0.95);
  }, 60_000);

  it("the same load in FIFO order (no flows): the heavy flow takes most of the grants", async () => {
    const { share, jain } = await run(server, false);
    expect(share.heavy).toBeGreaterThan(0.6);
    expect(jain).toBeLessThan(0.95);
  }, 60_000);
});
