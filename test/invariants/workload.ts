/**
 * The seeded random workloads of the invariant tests: limits and their changes, acquires, TTLs and
 * time steps. Shared by the GroupState invariants and the differential test of the Redis scripts
 * (test/differential/), so both draw the same kinds of traces.
 */
import type { Balance, GroupSpec } from "../../src/core/spec.js";
import type { ChainRequest } from "../../src/core/store.js";
import type { Random } from "../support/random.js";

// ── the pool the workload draws from ─────────────────────────────────────────────────────────

export const NAMED = ["global", "frontend:a", "frontend:b"] as const;
export const KEYED = "tenant";
export const KEYS = ["k0", "k1", "{x}", "a:b", "line\nbreak", "z".repeat(2000)];
export const SERVERS = ["s1", "s2", "s3"] as const;
export const BACKENDS: readonly { name: string; balance: Balance }[] = [
  { name: "lc", balance: "leastconn" },
  { name: "rr", balance: "roundrobin" },
  { name: "fst", balance: "first" },
];
export const BALANCE_OF = new Map(BACKENDS.map((b) => [b.name, b.balance]));

export const srv = (backend: string, server: string) => `server:${backend}/${server}`;
export const bks = (backend: string) => `backend:${backend}`;
export const keyed = (key: string) => `${KEYED}:${key}`;

// ── limits: the test's own config, turned into a GroupSpec ───────────────────────────────────

export interface Lim {
  max: number | null;
  maxqueue: number | null;
}
export interface ServerCfg extends Lim {
  weight: number;
  down: boolean;
}
export interface BackendCfg extends Lim {
  servers: Record<string, ServerCfg>;
}
export interface Config {
  named: Record<string, Lim>;
  tenant: Lim;
  backends: Record<string, BackendCfg>;
}

function rndMax(r: Random, lo: number, hi: number, pUnlimited: number): number | null {
  if (r.chance(pUnlimited)) return null;
  if (r.chance(0.02)) return 0;
  return r.int(lo, hi);
}

function rndMaxqueue(r: Random): number | null {
  if (r.chance(0.55)) return null;
  if (r.chance(0.08)) return 0;
  return r.int(1, 5);
}

export function randomConfig(r: Random): Config {
  const named: Record<string, Lim> = {
    global: { max: rndMax(r, 3, 10, 0.2), maxqueue: rndMaxqueue(r) },
    "frontend:a": { max: rndMax(r, 1, 4, 0.05), maxqueue: rndMaxqueue(r) },
    "frontend:b": { max: rndMax(r, 1, 4, 0.05), maxqueue: rndMaxqueue(r) },
  };
  const backends: Record<string, BackendCfg> = {};
  for (const b of BACKENDS) {
    const servers: Record<string, ServerCfg> = {};
    for (const s of SERVERS) servers[s] = { max: rndMax(r, 1, 4, 0.1), maxqueue: rndMaxqueue(r), weight: r.int(1, 4), down: r.chance(0.05) };
    backends[b.name] = { max: rndMax(r, 2, 8, 0.3), maxqueue: rndMaxqueue(r), servers };
  }
  return { named, tenant: { max: rndMax(r, 1, 4, 0.05), maxqueue: rndMaxqueue(r) }, backends };
}

/** Each limit re-rolled with some probability: raises, lowers, unlimited, zero. */
export function mutateConfig(r: Random, c: Config): Config {
  const next = structuredClone(c);
  const reroll = (lim: Lim, lo: number, hi: number, pUnlimited: number) => {
    if (r.chance(0.35)) lim.max = rndMax(r, lo, hi, pUnlimited);
    if (r.chance(0.25)) lim.maxqueue = rndMaxqueue(r);
  };
  reroll(next.named.global!, 3, 10, 0.2);
  reroll(next.named["frontend:a"]!, 1, 4, 0.05);
  reroll(next.named["frontend:b"]!, 1, 4, 0.05);
  reroll(next.tenant, 1, 4, 0.05);
  for (const b of Object.values(next.backends)) {
    reroll(b, 2, 8, 0.3);
    for (const s of Object.values(b.servers)) {
      reroll(s, 1, 4, 0.1);
      if (r.chance(0.2)) s.weight = r.int(1, 4);
      if (r.chance(0.06)) s.down = !s.down;
    }
  }
  return next;
}

/** Compact max/maxqueue listing for failure traces (∞: unlimited). */
export function describeConfig(c: Config): string {
  const lim = (l: Lim) => `${l.max ?? "∞"}/${l.maxqueue ?? "∞"}`;
  const parts = Object.entries(c.named).map(([n, l]) => `${n}=${lim(l)}`);
  parts.push(`${KEYED}=${lim(c.tenant)}`);
  for (const [b, cfg] of Object.entries(c.backends)) {
    const servers = Object.entries(cfg.servers).map(([n, sc]) => `${n}=${lim(sc)}w${sc.weight}${sc.down ? "(down)" : ""}`);
    parts.push(`${b}=${lim(cfg)}[${servers.join(" ")}]`);
  }
  return parts.join(" ");
}

export function toSpec(c: Config): GroupSpec {
  const spec: GroupSpec = { limits: {}, backends: {} };
  for (const [name, lim] of Object.entries(c.named)) spec.limits[name] = { max: lim.max, maxqueue: lim.maxqueue, keyed: false };
  spec.limits[KEYED] = { max: c.tenant.max, maxqueue: c.tenant.maxqueue, keyed: true };
  for (const b of BACKENDS) {
    const cfg = c.backends[b.name]!;
    spec.backends[b.name] = {
      balance: b.balance,
      max: cfg.max,
      maxqueue: cfg.maxqueue,
      servers: SERVERS.map((s) => {
        const sc = cfg.servers[s]!;
        return { name: s, max: sc.max, maxqueue: sc.maxqueue, weight: sc.weight, down: sc.down };
      }),
    };
  }
  return spec;
}

export interface Chain {
  /** Named and keyed scopes. */
  scopes: string[];
  backend?: string;
  pinned?: string;
}

/** Identity of a chain: same scopes (any order), same backend, same pinned server. */
export function chainKey(c: Chain): string {
  return JSON.stringify([[...c.scopes].sort(), c.backend ?? null, c.pinned ?? null]);
}

/** Scopes the chain needs whatever server is chosen: named, keyed, backend, pinned server. */
export function fixedOf(c: Chain): string[] {
  const f = [...c.scopes];
  if (c.backend !== undefined) {
    f.push(bks(c.backend));
    if (c.pinned !== undefined) f.push(srv(c.backend, c.pinned));
  }
  return f;
}

/** One acquire: a chain of named, keyed (hostile keys included), backend and pinned-server scopes, with its request. */
export function randomRequest(r: Random): { chain: Chain; req: ChainRequest } {
  const chain: Chain = { scopes: [] };
  if (r.chance(0.6)) chain.scopes.push("global");
  const fe = r.weighted<string | null>([
    [null, 4],
    ["frontend:a", 3],
    ["frontend:b", 3],
  ]);
  if (fe !== null) chain.scopes.push(fe);
  if (r.chance(0.5)) chain.scopes.push(keyed(r.pick(KEYS)));
  if (r.chance(0.65)) {
    chain.backend = r.pick(BACKENDS).name;
    if (r.chance(0.25)) chain.pinned = r.pick(SERVERS);
  }
  r.shuffle(chain.scopes);
  const req: ChainRequest = {
    scopes: [...chain.scopes],
    priorityClass: r.chance(0.05) ? r.pick([-2047, 2047]) : r.int(-3, 3),
    priorityOffsetMs: r.chance(0.05) ? r.pick([-524_287, 524_287]) : r.chance(0.3) ? 0 : r.int(-50, 50),
    queueTimeoutMs: r.chance(0.3) ? 0 : r.chance(0.35) ? r.int(400, 5000) : r.int(1, 400),
    leaseTtlMs: r.chance(0.1) ? r.int(1, 20) : r.int(20, 1500),
  };
  if (chain.backend !== undefined) req.backend = chain.backend;
  if (chain.pinned !== undefined) req.server = chain.pinned;
  return { chain, req };
}

/** A lease TTL (ms): mostly 20 to 1,500, sometimes very short. */
export function randomTtl(r: Random): number {
  return r.chance(0.1) ? r.int(1, 20) : r.int(20, 1500);
}

/** How far time jumps in one step (ms). */
export function randomAdvanceMs(r: Random): number {
  return r.weighted<() => number>([
    [() => r.int(0, 5), 3],
    [() => r.int(6, 120), 5],
    [() => r.int(121, 1500), 2],
    [() => r.int(3000, 8000), 0.3],
  ])();
}

export type OpKind = "acquire" | "release" | "advance" | "renew" | "cancel" | "server" | "configure" | "tick" | "stats";

/** The next operation of a workload. */
export function randomOpKind(r: Random): OpKind {
  return r.weighted<OpKind>([
    ["acquire", 40],
    ["release", 17],
    ["advance", 15],
    ["renew", 7],
    ["cancel", 6],
    ["server", 5],
    ["configure", 3],
    ["tick", 2],
    ["stats", 2],
  ]);
}

/** A lease id to release or renew: mostly a live one, else one that ended lately, else one never granted. */
export function pickLeaseId(r: Random, live: Iterable<string>, ended: readonly string[]): string {
  const ids = [...live];
  if (ids.length > 0 && r.chance(0.88)) return r.pick(ids);
  if (ended.length > 0 && r.chance(0.8)) return r.pick(ended.slice(-200));
  return r.pick(["", "no-such-lease", "{x}", "id0", "a\nb"]);
}

/** A ticket id to cancel: mostly a queued one, else one that ended lately, else one never queued. */
export function pickTicketId(r: Random, queued: Iterable<string>, ended: readonly string[]): string {
  const ids = [...queued];
  if (ids.length > 0 && r.chance(0.85)) return r.pick(ids);
  if (ended.length > 0 && r.chance(0.8)) return r.pick(ended.slice(-200));
  return r.pick(["", "no-such-ticket", "{x}", "a\nb"]);
}
