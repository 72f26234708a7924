/**
 * Seeded random workloads on one GroupState with flows, early rejection and each queue discipline
 * (docs/semantics.md rules F, D, E), checked by invariant: no grant takes a scope over its max,
 * every queued ticket ends exactly once (granted, timed out or dropped, or cancelled), the flow
 * state never outgrows the queue and starts again with it. The orders themselves are pinned by
 * the unit tests (test/core/fair-queuing, disciplines, early-rejection); the full model of SPEC §2
 * is group-state.invariants.test.ts.
 *
 * Replay one seed: SLOTGATE_SEED=<n> npx vitest run test/invariants/queue-rules.invariants.test.ts
 */
import { describe, expect, it } from "vitest";
import type { Discipline, GroupSpec } from "../../src/core/spec.js";
import { GroupState } from "../../src/core/state/group-state.js";
import { Random, replayHint, testSeeds } from "../support/random.js";
import { mutateConfig, pickLeaseId, pickTicketId, randomAdvanceMs, randomConfig, randomRequest, randomTtl, toSpec, type Config } from "./workload.js";

const SEEDS = testSeeds([7, 13, 2024]);
const OPS = 3_000;
const FLOWS = ["f0", "f1", "f2", "{x}:y", "__proto__", "line\nbreak"];
const DISCIPLINES: readonly Discipline[] = ["fifo", "codel", "lifo"];

function withQueue(r: Random, cfg: Config, discipline: Discipline): GroupSpec {
  return {
    ...toSpec(cfg),
    queue: { discipline, targetMs: r.int(1, 60), intervalMs: r.int(1, 400), flowWeights: { f0: r.int(1, 5), "{x}:y": r.int(1, 1000) } },
  };
}

function run(seed: number, discipline: Discipline): void {
  const r = new Random(seed * 31 + DISCIPLINES.indexOf(discipline));
  const where = `seed ${seed}, ${discipline} (${replayHint(seed, "test/invariants/queue-rules.invariants.test.ts")})`;
  let cfg = randomConfig(r);
  let idSeq = 0;
  const state = new GroupState(withQueue(r, cfg, discipline), { newId: () => `id${++idSeq}` });
  let now = 0;
  const live = new Set<string>();
  const endedLeases: string[] = [];
  const queued = new Set<string>();
  const endedTickets = new Set<string>();
  let inUse = new Map<string, number>();
  const counts = { granted: 0, timedOut: 0, cancelled: 0, early: 0 };
  let everCodel = discipline === "codel";

  const fail = (what: string) => expect.fail(`${what} — ${where}, now ${now}`);
  const end = (id: string, how: string) => {
    if (!queued.delete(id)) fail(`ticket ${id} ended (${how}) but ${endedTickets.has(id) ? "had ended already" : "was never queued"}`);
    endedTickets.add(id);
  };
  const drain = () => {
    const e = state.drainEffects();
    for (const g of e.granted) {
      end(g.ticketId, "granted");
      live.add(g.lease.id);
      counts.granted++;
    }
    for (const id of e.timedOut) {
      end(id, "timed out");
      counts.timedOut++;
    }
    for (const l of e.ended) {
      live.delete(l.leaseId);
      endedLeases.push(l.leaseId);
    }
  };
  const check = () => {
    const s = state.stats(now);
    drain();
    const next = new Map<string, number>();
    for (const [name, row] of Object.entries(s.scopes)) {
      next.set(name, row.in_use);
      // Over its max only by a lowered limit: then no grant may add to it. (A keyed limit's
      // aggregate row sums its keys, each under the per-key max.)
      if (row.keys === undefined && row.max !== null && row.in_use > row.max && row.in_use > (inUse.get(name) ?? 0))
        fail(`${name}: in_use ${row.in_use} > max ${row.max}, up from ${inUse.get(name) ?? 0}`);
      if (!everCodel && row.codel_dropped !== 0) fail(`${name}: codel_dropped ${row.codel_dropped}, never under codel`);
    }
    inUse = next;
    if (s.tickets !== queued.size) fail(`tickets ${s.tickets}, model ${queued.size}`);
    const flows = Object.keys(s.flows ?? {}).length;
    if (flows > s.tickets) fail(`${flows} flow entries for ${s.tickets} tickets`);
    if (s.tickets === 0 && state.virtualTime !== 0) fail(`virtual time ${state.virtualTime} with an empty queue`);
    if (s.tickets === 0 && s.queue?.standing) fail("standing with an empty queue");
  };

  for (let op = 0; op < OPS; op++) {
    const kind = r.weighted<string>([
      ["acquire", 45],
      ["release", 20],
      ["advance", 15],
      ["cancel", 6],
      ["renew", 5],
      ["configure", 2],
      ["tick", 7],
    ]);
    switch (kind) {
      case "acquire": {
        const { req } = randomRequest(r);
        if (r.chance(0.7)) req.flow = r.pick(FLOWS);
        if (r.chance(0.3)) req.early = true;
        const id = `T${op}`;
        const d = state.acquire(req, now, id);
        if (d.status === "granted") live.add(d.lease.id);
        else if (d.status === "queued") queued.add(id);
        else if (d.reason === "queue-timeout") {
          if (!req.early) fail(`${id}: queue-timeout at once without early`);
          if (!(d.retryAfterMs! > req.queueTimeoutMs)) fail(`${id}: retryAfterMs ${d.retryAfterMs} ≤ queue timeout ${req.queueTimeoutMs}`);
          counts.early++;
        }
        break;
      }
      case "release":
        state.release(pickLeaseId(r, live, endedLeases), now);
        break;
      case "renew":
        state.renew(pickLeaseId(r, live, endedLeases), randomTtl(r), now);
        break;
      case "cancel": {
        const id = pickTicketId(r, queued, [...endedTickets].slice(-50));
        drain();
        if (state.cancel(id, now)) {
          end(id, "cancelled");
          counts.cancelled++;
        }
        break;
      }
      case "advance":
        now += randomAdvanceMs(r);
        break;
      case "tick": {
        // As a store's timer would: at the next deadline, if any.
        const next = state.nextDeadline();
        if (next !== undefined && next > now) now = next;
        state.tick(now);
        break;
      }
      case "configure": {
        cfg = mutateConfig(r, cfg);
        const next = r.chance(0.7) ? discipline : r.pick(DISCIPLINES);
        everCodel ||= next === "codel";
        state.configure(withQueue(r, cfg, next), now);
        break;
      }
    }
    drain();
    check();
  }
  // Every ticket ends: queue timeouts are at most 5 s.
  now += 10_000;
  state.tick(now);
  drain();
  check();
  expect(queued.size, where).toBe(0);
  expect(state.stats(now).flows, where).toBeUndefined();
  expect(counts.granted + counts.timedOut + counts.cancelled, where).toBe(endedTickets.size);
  // The workload reaches what it is meant to.
  expect(counts.granted, where).toBeGreaterThan(0);
  expect(counts.timedOut, where).toBeGreaterThan(0);
  expect(counts.early, where).toBeGreaterThan(0);
  if (discipline === "codel") expect(state.stats(now).scopes.global?.codel_dropped ?? 0, where).toBeGreaterThan(0);
}

describe("GroupState with flows, early rejection and each discipline: seeded invariants", () => {
  for (const discipline of DISCIPLINES) {
    it.each(SEEDS)(`${discipline}, seed %i: ${OPS} operations`, (seed) => run(seed, discipline));
  }
});
