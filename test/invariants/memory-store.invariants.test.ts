/**
 * A seeded random workload through the public API: createGuard + createMemoryStore, on vitest's
 * fake clock. Many acquires wait at once (with and without AbortSignals), holders release, crash
 * (stop without releasing, so the store must reclaim the lease at its TTL), servers go down and up.
 *
 * The test keeps its own books from what the API returns: who is inside the critical section per
 * scope (never above the scope's max), which leases the store must still hold (released ones and
 * those past their TTL excluded) and which acquires still wait — and compares them with
 * guard.stats(). Every acquire promise must settle exactly once with an outcome its options allow,
 * and at the end nothing may be left: no holder, no ticket, no keyed row.
 *
 * Replay one seed: SLOTGATE_SEED=<n> npx vitest run test/invariants
 */
import { describe, expect, it, vi } from "vitest";
import { createGuard, createMemoryStore } from "../../src/index.js";
import type { AcquireOptions, AcquireResult, BackendsOption, Guard, GuardStats, Lease, LimitsOption } from "../../src/index.js";
import { Random, replayHint, testSeeds } from "../support/random.js";

const SEEDS = testSeeds([11, 22, 33]);
const OPS = 2_500;

const PER_KEY = 2;
const KEYS = ["k0", "{x}", "a:b", "line\nbreak", "y".repeat(1024)];
const LIMITS: LimitsOption = {
  global: 7,
  "frontend:a": { max: 3, maxqueue: 4 },
  "frontend:b": 2,
  tenant: { perKey: PER_KEY, maxqueue: 3 },
};
const BACKENDS: BackendsOption = {
  lc: { balance: "leastconn", max: 4, maxqueue: 6, servers: { s1: { max: 2 }, s2: { max: 1 }, s3: { max: 2 } } },
  rr: { balance: "roundrobin", servers: { s1: { max: 1, weight: 1 }, s2: { max: 2, weight: 2 }, s3: { max: 1, weight: 3 } } },
  fst: { balance: "first", max: 3, servers: { s1: { max: 1 }, s2: { max: 1, maxqueue: 2 }, s3: { max: 2 } } },
};
const BACKEND_NAMES = Object.keys(BACKENDS);
const SERVER_NAMES = ["s1", "s2", "s3"];
const MAX_QUEUE_TIMEOUT = 3_000;
const MAX_TTL = 2_000;

/** The max of a scope as configured above (Infinity: unlimited). */
function maxOf(scope: string): number {
  if (scope.startsWith("tenant:")) return PER_KEY;
  const server = /^server:([^/]+)\/(.+)$/.exec(scope);
  if (server) return BACKENDS[server[1]!]?.servers[server[2]!]?.max ?? Infinity;
  if (scope.startsWith("backend:")) return BACKENDS[scope.slice(8)]?.max ?? Infinity;
  const limit = LIMITS[scope];
  if (typeof limit === "number") return limit;
  if (limit && "max" in limit) return limit.max;
  throw new Error(`test: unknown scope ${scope}`);
}

interface Call {
  n: number;
  startedAt: number;
  timeoutMs: number;
  ttl: number;
  /** Scopes a ticket of this call waits on: named, keyed, backend, pinned server. */
  fixed: string[];
  scopes: string[];
  backend?: string;
  pinned?: string;
  controller?: AbortController;
  abortedAt?: number;
  settlements: number;
  result?: AcquireResult;
}

interface Held {
  call: Call;
  lease: Lease;
  /** Every scope the lease holds a slot in, the chosen server's included. */
  slots: string[];
  grantedAt: number;
  /** Still inside the critical section (counted). */
  inside: boolean;
  /** Released while the store still held it. */
  released: boolean;
  /** lease.release() was called (maybe after the store had reclaimed it). */
  releaseCalled: boolean;
  watchdog?: ReturnType<typeof setTimeout>;
}

async function runWorkload(seed: number): Promise<void> {
  const r = new Random(seed);
  const t0 = Date.now();
  const guard: Guard = createGuard({ store: createMemoryStore(), group: "invariants", limits: LIMITS, backends: BACKENDS });
  let op = 0;
  let desc = "start";
  const problems: string[] = [];
  const problem = (msg: string) => problems.push(`seed=${seed} op=${op} t=+${Date.now() - t0}ms: ${msg}\n  during: ${desc}`);
  const checkProblems = () => {
    if (problems.length > 0) throw new Error(`${problems[0]}\n  ${replayHint(seed)}${problems.length > 1 ? `\n  (${problems.length - 1} more problems)` : ""}`);
  };

  const calls: Call[] = [];
  const pending = new Set<Call>();
  const granted: Held[] = [];
  const inside = new Set<Held>();
  const critical = new Map<string, number>();
  const downSince = new Map<string, number>();
  const fences = new Set<number>();
  let callSeq = 0;
  const coverage = { granted: 0, full: 0, queueFull: 0, timeouts: 0, aborted: 0, crashed: 0, expiredInStore: 0, released: 0 };

  const leave = (h: Held) => {
    if (!h.inside) return;
    h.inside = false;
    inside.delete(h);
    if (h.watchdog !== undefined) clearTimeout(h.watchdog);
    for (const s of h.slots) critical.set(s, (critical.get(s) ?? 0) - 1);
  };

  const onSettled = (call: Call, res: AcquireResult) => {
    call.settlements++;
    call.result = res;
    if (call.settlements > 1) problem(`acquire #${call.n} settled ${call.settlements} times`);
    pending.delete(call);
    const now = Date.now();
    const elapsed = now - call.startedAt;
    if (!res.ok) {
      const { reason } = res;
      const aborted = call.abortedAt !== undefined && call.abortedAt <= now;
      if (reason === "full") {
        coverage.full++;
        if (call.timeoutMs !== 0 || elapsed !== 0) problem(`#${call.n}: full after ${elapsed}ms with queueTimeoutMs ${call.timeoutMs}`);
      } else if (reason === "queue-full") {
        coverage.queueFull++;
        if (call.timeoutMs === 0 || elapsed !== 0) problem(`#${call.n}: queue-full after ${elapsed}ms with queueTimeoutMs ${call.timeoutMs}`);
      } else if (reason === "queue-timeout") {
        coverage.timeouts++;
        if (elapsed !== call.timeoutMs) problem(`#${call.n}: queue-timeout after ${elapsed}ms, queueTimeoutMs ${call.timeoutMs}`);
        if (aborted && call.abortedAt! < now) problem(`#${call.n}: queue-timeout at +${elapsed}ms though aborted at +${call.abortedAt! - call.startedAt}ms`);
      } else if (reason === "aborted") {
        coverage.aborted++;
        if (call.abortedAt === undefined || elapsed !== call.abortedAt - call.startedAt)
          problem(
            `#${call.n}: aborted after ${elapsed}ms, its signal ${call.abortedAt === undefined ? "never aborted" : `aborted after ${call.abortedAt - call.startedAt}ms`}`,
          );
      } else {
        problem(`#${call.n}: unexpected reason ${reason}`);
      }
      return;
    }
    coverage.granted++;
    const lease = res.lease;
    if (call.abortedAt !== undefined && call.abortedAt < now)
      problem(`#${call.n}: granted at +${elapsed}ms after its signal aborted at +${call.abortedAt - call.startedAt}ms`);
    if (call.timeoutMs > 0 ? elapsed >= call.timeoutMs : elapsed !== 0) problem(`#${call.n}: granted after ${elapsed}ms, queueTimeoutMs ${call.timeoutMs}`);
    if (lease.waitedMs !== elapsed) problem(`#${call.n}: waitedMs ${lease.waitedMs}, observed ${elapsed}`);
    if (!(lease.fence > 0) || fences.has(lease.fence)) problem(`#${call.n}: fence ${lease.fence} not positive or reused`);
    fences.add(lease.fence);
    const slots = [...call.scopes];
    if (lease.backend !== call.backend) problem(`#${call.n}: lease.backend ${lease.backend}, asked ${call.backend}`);
    if (call.backend !== undefined) {
      if (lease.server === undefined || !SERVER_NAMES.includes(lease.server)) problem(`#${call.n}: lease.server ${lease.server}`);
      if (call.pinned !== undefined && lease.server !== call.pinned) problem(`#${call.n}: pinned ${call.pinned}, got ${lease.server}`);
      const sc = `server:${call.backend}/${lease.server}`;
      const down = downSince.get(sc);
      if (down !== undefined && down < now) problem(`#${call.n}: granted on ${sc}, marked down since +${down - t0}ms`);
      slots.push(`backend:${call.backend}`, sc);
    }
    const h: Held = { call, lease, slots, grantedAt: now, inside: true, released: false, releaseCalled: false };
    granted.push(h);
    inside.add(h);
    for (const s of slots) {
      const c = (critical.get(s) ?? 0) + 1;
      critical.set(s, c);
      if (c > maxOf(s)) problem(`critical section: ${c} holders on ${JSON.stringify(s).slice(0, 60)} > max ${maxOf(s)}`);
    }
    // The holder stops working just before the store reclaims the lease (autoRenew is off).
    h.watchdog = setTimeout(() => {
      if (h.inside) coverage.expiredInStore++;
      leave(h);
    }, call.ttl - 1);
  };

  const startAcquire = () => {
    const call: Call = { n: ++callSeq, startedAt: Date.now(), timeoutMs: 0, ttl: r.int(2, MAX_TTL), fixed: [], scopes: [], settlements: 0 };
    if (r.chance(0.6)) call.scopes.push("global");
    const fe = r.weighted<string | null>([
      [null, 4],
      ["frontend:a", 3],
      ["frontend:b", 3],
    ]);
    if (fe !== null) call.scopes.push(fe);
    if (r.chance(0.5)) call.scopes.push(`tenant:${r.pick(KEYS)}`);
    call.fixed = [...call.scopes];
    if (r.chance(0.7)) {
      call.backend = r.pick(BACKEND_NAMES);
      call.fixed.push(`backend:${call.backend}`);
      if (r.chance(0.2)) {
        call.pinned = r.pick(SERVER_NAMES);
        call.fixed.push(`server:${call.backend}/${call.pinned}`);
      }
    }
    call.timeoutMs = r.chance(0.25) ? 0 : r.int(1, MAX_QUEUE_TIMEOUT);
    const options: AcquireOptions = {
      scopes: call.scopes,
      priority: { class: r.int(-2, 2), offsetMs: r.int(-20, 20) },
      queueTimeoutMs: call.timeoutMs,
      leaseTtlMs: call.ttl,
      autoRenew: false,
    };
    if (call.backend !== undefined) options.backend = call.backend;
    if (call.pinned !== undefined) options.server = call.pinned;
    if (r.chance(0.4)) {
      call.controller = new AbortController();
      options.signal = call.controller.signal;
      if (r.chance(0.05)) {
        call.controller.abort();
        call.abortedAt = Date.now();
      }
    }
    desc = `acquire #${call.n} ${JSON.stringify({ ...options, signal: options.signal !== undefined, scopes: call.scopes.map((s) => s.slice(0, 30)) })}`;
    calls.push(call);
    pending.add(call);
    guard.acquire(options).then(
      (res) => onSettled(call, res),
      (error: unknown) => {
        call.settlements++;
        pending.delete(call);
        problem(`acquire #${call.n} threw ${String(error)}`);
      },
    );
  };

  /** What the store must hold right now, from the test's own books. */
  const checkStats = async () => {
    const st: GuardStats = await guard.stats();
    const now = Date.now();
    const inStore = granted.filter((h) => !h.released && now < h.grantedAt + h.call.ttl);
    if (st.holders !== inStore.length) problem(`stats.holders ${st.holders}, expected ${inStore.length} live leases`);
    if (st.tickets !== pending.size) problem(`stats.tickets ${st.tickets}, expected ${pending.size} waiting acquires`);
    const inUse = new Map<string, number>();
    const queued = new Map<string, number>();
    for (const h of inStore) for (const s of h.slots) inUse.set(s, (inUse.get(s) ?? 0) + 1);
    for (const c of pending) for (const s of c.fixed) queued.set(s, (queued.get(s) ?? 0) + 1);
    let keyedInUse = 0;
    let keyedQueued = 0;
    let keys = 0;
    for (const [name, row] of Object.entries(st.scopes)) {
      if (name === "tenant") continue;
      if (row.in_use !== (inUse.get(name) ?? 0)) problem(`stats ${JSON.stringify(name).slice(0, 60)} in_use ${row.in_use}, expected ${inUse.get(name) ?? 0}`);
      if (row.queued !== (queued.get(name) ?? 0)) problem(`stats ${JSON.stringify(name).slice(0, 60)} queued ${row.queued}, expected ${queued.get(name) ?? 0}`);
      if (row.in_use > maxOf(name)) problem(`stats ${JSON.stringify(name).slice(0, 60)} in_use ${row.in_use} > max ${maxOf(name)}`);
      if (name.startsWith("tenant:")) {
        if (row.in_use === 0 && row.queued === 0) problem(`idle keyed row ${JSON.stringify(name).slice(0, 60)} left in stats`);
        keyedInUse += row.in_use;
        keyedQueued += row.queued;
        keys++;
      }
    }
    for (const [name, n] of inUse) if (n > 0 && !st.scopes[name]) problem(`stats has no row ${JSON.stringify(name).slice(0, 60)} (${n} holders expected)`);
    const agg = st.scopes.tenant;
    if (!agg || agg.in_use !== keyedInUse || agg.queued !== keyedQueued || agg.keys !== keys) {
      problem(
        `stats tenant aggregate ${JSON.stringify(agg && { in_use: agg.in_use, queued: agg.queued, keys: agg.keys })}, expected ${JSON.stringify({ in_use: keyedInUse, queued: keyedQueued, keys })}`,
      );
    }
  };

  const flush = () => vi.advanceTimersByTimeAsync(0);

  try {
    for (op = 0; op < OPS; op++) {
      const kind = r.weighted<string>([
        ["acquire", 42],
        ["advance", 25],
        ["release", 15],
        ["abort", 7],
        ["crash", 4],
        ["stale", 2],
        ["server", 2],
        ["stats", 3],
      ]);
      if (kind === "acquire") {
        startAcquire();
      } else if (kind === "advance") {
        const dt = r.chance(0.9) ? r.int(0, 40) : r.int(100, 1500);
        desc = `advance ${dt}ms`;
        await vi.advanceTimersByTimeAsync(dt);
      } else if (kind === "release" && inside.size > 0) {
        const h = r.pick([...inside]);
        desc = `release #${h.call.n}`;
        leave(h);
        h.released = true;
        h.releaseCalled = true;
        coverage.released++;
        await h.lease.release();
      } else if (kind === "abort") {
        const waiting = [...pending].filter((c) => c.controller !== undefined && c.abortedAt === undefined);
        if (waiting.length > 0) {
          const c = r.pick(waiting);
          desc = `abort #${c.n}`;
          c.abortedAt = Date.now();
          c.controller!.abort();
        }
      } else if (kind === "crash" && inside.size > 0) {
        // The holder dies: it never releases, the store reclaims the slot at the lease's TTL.
        const h = r.pick([...inside]);
        desc = `crash #${h.call.n}`;
        leave(h);
        coverage.crashed++;
      } else if (kind === "stale") {
        // Releasing twice, or after the store reclaimed the lease, changes nothing; a crashed
        // holder that comes back before its TTL releases its slot for real.
        const gone = granted.filter((g) => !g.inside).slice(-50);
        if (gone.length > 0) {
          const h = r.pick(gone);
          desc = `late release #${h.call.n}`;
          if (Date.now() < h.grantedAt + h.call.ttl) h.released = true;
          h.releaseCalled = true;
          await h.lease.release();
        }
      } else if (kind === "server") {
        const b = r.pick(BACKEND_NAMES);
        const s = r.pick(SERVER_NAMES);
        const sc = `server:${b}/${s}`;
        const up = downSince.has(sc) ? r.chance(0.8) : r.chance(0.2);
        desc = `server ${b}/${s} ${up ? "up" : "down"}`;
        // Book first: marking up grants waiting tickets inside the call.
        if (up) downSince.delete(sc);
        else if (!downSince.has(sc)) downSince.set(sc, Date.now());
        await guard.setServerState(b, s, up ? "up" : "down");
      } else if (kind === "stats") {
        desc = "stats";
        await flush();
        await checkStats();
      }
      await flush();
      checkProblems();
      if (op % 25 === 0) {
        await checkStats();
        checkProblems();
      }
    }

    // Drain: bring every server back, release everything, let every queue timeout and TTL pass.
    op = OPS;
    desc = "drain";
    for (const sc of [...downSince.keys()]) {
      const [b, s] = sc.slice(7).split("/") as [string, string];
      downSince.delete(sc);
      await guard.setServerState(b, s, "up");
    }
    for (let round = 0; pending.size > 0 || inside.size > 0; round++) {
      if (round > 50) throw new Error(`seed=${seed}: drain does not converge (${pending.size} waiting, ${inside.size} holding)\n  ${replayHint(seed)}`);
      for (const h of [...inside]) {
        leave(h);
        h.released = true;
        h.releaseCalled = true;
        await h.lease.release();
      }
      await vi.advanceTimersByTimeAsync(MAX_QUEUE_TIMEOUT + 1);
      checkProblems();
    }
    await vi.advanceTimersByTimeAsync(MAX_TTL + 1);
    await checkStats();
    checkProblems();

    const unsettled = calls.filter((c) => c.settlements !== 1);
    expect(
      unsettled.map((c) => `#${c.n} settled ${c.settlements}×`),
      `seed=${seed}: every acquire settles exactly once (${replayHint(seed)})`,
    ).toEqual([]);
    const st = await guard.stats();
    const leftovers = Object.entries(st.scopes).filter(([name, row]) => row.in_use !== 0 || row.queued !== 0 || name.startsWith("tenant:"));
    expect(
      leftovers.map(([name]) => name),
      `seed=${seed}: nothing held, queued or keyed is left (${replayHint(seed)})`,
    ).toEqual([]);
    expect({ holders: st.holders, tickets: st.tickets, keys: st.scopes.tenant?.keys }, `seed=${seed} (${replayHint(seed)})`).toEqual({
      holders: 0,
      tickets: 0,
      keys: 0,
    });
    // With autoRenew off the guard cannot learn that the store reclaimed a lease nobody released:
    // it keeps tracking those (until release() or close()), and only those.
    expect(st.localHolders, `seed=${seed}: leases the guard still tracks`).toBe(granted.filter((h) => !h.releaseCalled).length);

    const summary = `seed=${seed} (${replayHint(seed)}): coverage too low ${JSON.stringify(coverage)}`;
    expect(coverage.granted, summary).toBeGreaterThan(300);
    expect(coverage.timeouts, summary).toBeGreaterThan(20);
    expect(coverage.aborted, summary).toBeGreaterThan(20);
    expect(coverage.full, summary).toBeGreaterThan(20);
    expect(coverage.queueFull, summary).toBeGreaterThan(5);
    expect(coverage.crashed + coverage.expiredInStore, summary).toBeGreaterThan(20);
  } finally {
    await guard.close();
  }
}

describe("memory store through the guard: seeded random workload on a fake clock", () => {
  it.each(SEEDS)("seed %i: limits hold, every acquire settles once, nothing leaks", async (seed) => {
    vi.useFakeTimers({ now: new Date("2030-01-01T00:00:00Z") });
    try {
      await runWorkload(seed);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("memory store: a waiting acquire keeps the process alive", () => {
  // Regression: the group timer was unref'd when armed for a lease expiry alone and not re-ref'd
  // when a waiter joined, so a script awaiting that acquire could exit before the grant.
  it("the store's timer is ref'd while an acquire waits for a lease to expire", async () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    const guard = createGuard({ store: createMemoryStore(), limits: { g: 1 } });
    try {
      const first = spy.mock.results.length;
      const a = await guard.acquire({ scopes: ["g"], leaseTtlMs: 60_000, autoRenew: false });
      expect(a.ok).toBe(true);
      const controller = new AbortController();
      const waiting = guard.acquire({ scopes: ["g"], queueTimeoutMs: 120_000, signal: controller.signal });
      await Promise.resolve();
      const timers = spy.mock.results.slice(first).map((res) => res.value as { hasRef?: () => boolean });
      expect(timers.length).toBeGreaterThan(0);
      const live = timers[timers.length - 1]!;
      try {
        expect(live.hasRef?.()).toBe(true);
      } finally {
        controller.abort();
        expect(await waiting).toMatchObject({ ok: false, reason: "aborted" });
        if (a.ok) await a.lease.release();
      }
    } finally {
      spy.mockRestore();
      await guard.close();
    }
  });
});
