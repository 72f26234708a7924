// Pipelining: one client writes hundreds of requests on one connection without waiting. Node
// parses and emits them all at once; served as they come, each would take its own acquire and fill
// the fleet-wide queue. The node serves one request of a connection at a time (HAProxy's way) and
// stops reading from a connection whose line is too long.

import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { MAX_PIPELINED } from "../../src/node/http-pipeline.js";
import { expectAllFree, origin, rawExchange, request, startNode } from "../support/edge.js";

function pipelined(count: number, path = "/p"): string {
  let out = "";
  for (let i = 0; i < count; i++) out += `GET ${path}?i=${i} HTTP/1.1\r\nhost: x\r\n\r\n`;
  return out;
}

describe("pipelined requests on one connection", () => {
  it("300 pipelined requests: one at a time at the origin, never more than one ticket, answered in order; a fresh client is served at once", async () => {
    const o = await origin({ delayMs: 2 });
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 10 } }, frontend: { maxconn: 10 } });
    let peakTickets = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peakTickets = Math.max(peakTickets, (await s.stats()).tickets);
        await sleep(2);
      }
    })();
    const attack = rawExchange(s.port, pipelined(300), 300, 15_000);
    // While the pipeline runs, a fresh client gets a slot at once.
    await sleep(50);
    const fresh = await request(`${s.url}/fresh`);
    const result = await attack;
    sampling = false;
    await sampler;

    const fromPipeline = o.requests.filter((r) => r.url.startsWith("/p?"));
    const frontend = await s.scope("frontend:web");
    console.log(
      `[pipelining] 300 on one socket: ${result.responses.length} answered, origin concurrency max ${Math.max(...fromPipeline.map((r) => r.concurrency))}, peak tickets ${peakTickets}, frontend peak in use ${frontend.peak_in_use} / queued ${frontend.peak_queued}; fresh client ${fresh.status} in ${Math.round(fresh.ms)} ms`,
    );
    expect(fresh.status).toBe(200);
    expect(fresh.ms).toBeLessThan(250);
    expect(result.responses).toHaveLength(300);
    expect(result.responses.every((r) => r.status === 200)).toBe(true);
    // In order: response i answers request i.
    expect(result.responses.map((r) => (JSON.parse(r.body) as { path: string }).path)).toEqual(Array.from({ length: 300 }, (_, i) => `/p?i=${i}`));
    // The origin never had two of the pipelined requests at once (the fresh client adds at most one).
    expect(fromPipeline).toHaveLength(300);
    expect(Math.max(...fromPipeline.map((r) => r.concurrency))).toBeLessThanOrEqual(2);
    expect(peakTickets).toBe(0);
    expect(frontend.peak_in_use).toBeLessThanOrEqual(2);
    expect(frontend.peak_queued).toBe(0);
    await expectAllFree(s);
  });

  it(`a connection that pipelines past ${MAX_PIPELINED} requests is closed after the one in service, without tickets`, async () => {
    const o = await origin({ delayMs: 1 });
    const s = await startNode({ servers: { a: { address: o.address, maxconn: 10 } }, frontend: { maxconn: 10 } });
    const count = MAX_PIPELINED * 4;
    const result = await rawExchange(s.port, pipelined(count), count, 15_000);
    expect(result.closed).toBe(true);
    expect(result.responses.length).toBeGreaterThan(0);
    expect(result.responses.length).toBeLessThan(count);
    // What was answered was answered in order, from the first request on.
    expect(result.responses.map((r) => (JSON.parse(r.body) as { path: string }).path)).toEqual(result.responses.map((_, i) => `/p?i=${i}`));
    expect(o.requests.length).toBe(result.responses.length);
    expect((await s.scope("frontend:web")).peak_queued).toBe(0);
    const fresh = await request(`${s.url}/fresh`);
    expect(fresh.status).toBe(200);
    await expectAllFree(s);
  });

  it("a client that closes with requests still in line: none of them reaches the origin or takes a slot", async () => {
    const o = await origin();
    const s = await startNode({ servers: { a: { address: o.address } } });
    // The first request hangs at the origin; 50 more wait behind it; then the client leaves.
    await rawExchange(s.port, `GET /hang HTTP/1.1\r\nhost: x\r\n\r\n${pipelined(50)}`, 1, 300);
    await o.waitForCurrent(0, 2_000);
    expect(o.requests.map((r) => r.url)).toEqual(["/hang"]);
    await expectAllFree(s);
    expect(s.node.nodeStats().frontends.web).toMatchObject({ active: 0, queued: 0 });
  });
});
