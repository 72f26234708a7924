/**
 * Durable Object benchmark: what one `SlotGroup` object sustains, in local workerd.
 *
 *   npx tsx scripts/bench/durable-object.ts             # full run: 3 s per throughput phase
 *   npx tsx scripts/bench/durable-object.ts --quick     # short run, to check that it works
 *   npx tsx scripts/bench/durable-object.ts --duration 5000
 *   npx tsx scripts/bench/durable-object.ts --baseline main --rounds 3   # against another commit, same run
 *
 * It builds the Worker as `wrangler deploy` would (a dry run), starts it with Miniflare's API (the
 * same workerd `wrangler dev` runs) on 127.0.0.1, and measures acquire → release through ONE
 * object, two ways:
 * - `http`: from this Node process through the slot API, with the Node client
 *   (createDurableObjectHttpStore + a guard, autoRenew off): HTTP + the Worker + the object;
 * - `rpc`: inside a second Worker that loops acquire → release over Durable Object RPC (one stub
 *   per caller), so the numbers exclude HTTP and the store client. workerd's clock advances only
 *   on I/O and in whole milliseconds, so in-Worker latencies are coarse; throughput is exact.
 * - `rpc-client`: inside a third Worker (durable-object-rpc-worker.ts, bundled with esbuild), the
 *   callers share ONE guard on the RPC store (createDurableObjectStore), so the store client
 *   batches what they do in the same turn; it also counts the RPCs the client sent.
 * With `--baseline <git ref>`, that commit's Worker and clients are built from a copy of its tree
 * and run beside this tree's in the same workerd, round after round (`--rounds`), alternating, so
 * the ratios compare like with like; the table shows the median of the rounds and their range.
 * Scenarios: uncontended (1 caller; 64 callers under a limit of 10 000), contended (limit 10,
 * 64 callers, each acquire may queue), and hand-off on limit 1 (the holder releases; time until
 * the queued waiter holds the slot).
 *
 * Local workerd on this machine, not Cloudflare's network: the figures bound what the object's
 * code and storage cost, not the round trip from a real edge location. `--storage disk` puts the
 * object's SQLite file on disk (fsync per write, as `wrangler dev`); the default keeps it on a
 * tmpfs. It prints a table and writes scripts/bench/results/durable-object-latest.json. Every
 * loop is bounded in time.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { createGuard, type Guard } from "../../src/index.js";
import { createDurableObjectHttpStore } from "../../src/stores/durable-object/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TOKEN = "bench-slot-api-token-0123456789";
const CALLERS = 64;
const CONTENDED_LIMIT = 10;
const UNCONTENDED_LIMIT = 10_000;
const HANDOFFS = 200;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    duration: { type: "string" },
    storage: { type: "string", default: "memory" },
    baseline: { type: "string" },
    rounds: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  console.log("usage: npx tsx scripts/bench/durable-object.ts [--quick] [--duration <ms>] [--storage memory|disk] [--baseline <git ref>] [--rounds <n>]");
  process.exit(0);
}
const durationMs = args.duration !== undefined ? Number(args.duration) : args.quick ? 500 : 3000;
if (!Number.isInteger(durationMs) || durationMs < 100 || durationMs > 120_000) {
  console.error(`--duration: expected an integer number of ms from 100 to 120000, got ${JSON.stringify(args.duration)}`);
  process.exit(2);
}
const handoffs = args.quick ? 30 : HANDOFFS;
const rounds = args.rounds !== undefined ? Number(args.rounds) : args.quick ? 1 : 3;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
  console.error(`--rounds: expected an integer from 1 to 20, got ${JSON.stringify(args.rounds)}`);
  process.exit(2);
}
if (args.storage !== "memory" && args.storage !== "disk") {
  console.error(`--storage: expected memory or disk, got ${JSON.stringify(args.storage)}`);
  process.exit(2);
}
/**
 * Where the object's SQLite file lives. `memory` (default): a tmpfs (/dev/shm), so the figures are
 * the object's own cost; on Cloudflare, storage is replicated and batched behind the output gate,
 * not fsynced to a local disk. `disk`: the system temp directory, where every write waits for an
 * fsync of this machine's disk (the number to expect from `wrangler dev`).
 */
const storageRoot = args.storage === "memory" && existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();

// ── the Worker under test, and a Worker that loops over RPC ─────────────────────────────────────

const BENCH_WORKER = `
const REQ = (queueTimeoutMs) => ({ scopes: ["global"], priorityClass: 0, priorityOffsetMs: 0, queueTimeoutMs, leaseTtlMs: 30000 });
const pct = (sorted, q) => sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
const summary = (lat) => { lat.sort((a, b) => a - b); return { samples: lat.length, p50Ms: pct(lat, 0.5), p99Ms: pct(lat, 0.99), meanMs: lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length) }; };
const ok = (r) => { if (r.status !== 0 || !r.value.ok) throw new Error(JSON.stringify(r)); return r.value.lease; };
export default {
  async fetch(request, env) {
    const p = new URL(request.url).searchParams;
    const ns = env.SLOT_GROUP;
    const id = ns.idFromName(p.get("group"));
    const first = ns.get(id);
    const limit = Number(p.get("limit"));
    const c = await first.configure({ limits: { global: { max: limit, maxqueue: null, keyed: false } }, backends: {} });
    if (c.status !== 0) throw new Error(c.detail);
    if (new URL(request.url).pathname === "/loop") {
      const callers = Number(p.get("callers"));
      const ms = Number(p.get("ms"));
      const started = Date.now();
      const deadline = started + ms;
      const lat = [];
      let seq = 0;
      await Promise.all(Array.from({ length: callers }, async () => {
        const stub = ns.get(id);
        while (Date.now() < deadline) {
          const t = Date.now();
          const lease = ok(await stub.acquire(REQ(60000), "w" + seq++));
          await stub.release(lease.id);
          lat.push(Date.now() - t);
        }
      }));
      const elapsedMs = Date.now() - started;
      return Response.json({ ops: lat.length, elapsedMs, ...summary(lat) });
    }
    // /handoff: the holder releases; how long until the queued waiter holds the slot.
    const n = Number(p.get("n"));
    const holderStub = ns.get(id);
    const waiterStub = ns.get(id);
    const lat = [];
    const started = Date.now();
    for (let i = 0; i < n && Date.now() - started < 60000; i++) {
      const holder = ok(await holderStub.acquire(REQ(0), "h" + i));
      const waiting = waiterStub.acquire(REQ(60000), "q" + i);
      await waiterStub.stats(); // E-order: the acquire is queued once this answers
      const t = Date.now();
      await holderStub.release(holder.id);
      const lease = ok(await waiting);
      lat.push(Date.now() - t);
      await waiterStub.release(lease.id);
    }
    const elapsedMs = Date.now() - started;
    return Response.json({ ops: lat.length, elapsedMs, ...summary(lat), cycleMs: elapsedMs / Math.max(1, lat.length) });
  },
};
`;

type Variant = "current" | "baseline";

/** The two functions the HTTP rows need, from this tree or the baseline's. */
interface Lib {
  createGuard: typeof createGuard;
  createDurableObjectHttpStore: typeof createDurableObjectHttpStore;
}

interface Target {
  variant: Variant;
  lib: Lib;
  /** The slot API of this variant's Worker. */
  url: string;
  /** The Worker that loops through this variant's RPC store client. */
  client: string;
}

interface Row {
  variant: Variant;
  round: number;
  path: "http" | "rpc" | "rpc-client";
  scenario: string;
  limit: number;
  callers: number;
  ops: number;
  elapsedMs: number;
  /** acquire → release pairs per second. */
  pairsPerSec: number;
  /** Requests (HTTP) or RPCs the object was sent per second. */
  objectCallsPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  note?: string;
}

function build(tree: string, outdir: string): void {
  const r = spawnSync(process.execPath, [join(root, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outdir], {
    cwd: tree,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${r.stdout}\n${r.stderr}`);
}

/** Bundles the rpc-client Worker of a tree (its own source of the store client). */
async function buildClient(tree: string, outfile: string): Promise<void> {
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [join(tree, "scripts/bench/durable-object-rpc-worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: ["cloudflare:*"],
    outfile,
    logLevel: "error",
  });
}

/** A copy of `ref`'s tree, with this tree's node_modules and rpc-client Worker. */
function checkout(ref: string): string {
  if (!/^[A-Za-z0-9_./~^-]{1,100}$/.test(ref) || ref.startsWith("-")) throw new Error(`--baseline: expected a git ref, got ${JSON.stringify(ref)}`);
  const dir = mkdtempSync(join(os.tmpdir(), "slotgate-bench-do-baseline-"));
  const tar = spawnSync("git", ["-C", root, "archive", "--format=tar", ref], { maxBuffer: 512 * 1024 * 1024 });
  if (tar.status !== 0) throw new Error(`git archive ${ref} failed: ${tar.stderr.toString()}`);
  const x = spawnSync("tar", ["-x", "-C", dir], { input: tar.stdout });
  if (x.status !== 0) throw new Error(`tar failed: ${x.stderr.toString()}`);
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  copyFileSync(join(root, "scripts/bench/durable-object-rpc-worker.ts"), join(dir, "scripts/bench/durable-object-rpc-worker.ts"));
  return dir;
}

function compatibility(): { date: string; flags: string[] } {
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "2025-09-01";
  const flags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1]?.matchAll(/"([^"]+)"/g) ?? [])].map((m) => m[1]!);
  return { date, flags };
}

const quantile = (sorted: number[], q: number) =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ── HTTP scenarios (Node → slot API → object) ───────────────────────────────────────────────────

async function httpLoop(t: Target, round: number, scenario: string, limit: number, callers: number, ms: number): Promise<Row> {
  let requests = 0;
  const store = t.lib.createDurableObjectHttpStore({ url: t.url, token: TOKEN, fetch: (input, init) => (requests++, globalThis.fetch(input, init)) });
  const guard = t.lib.createGuard({ store, group: `bench-http-${t.variant}-${scenario}-${Date.now()}`, limits: { global: limit } });
  // Warm-up: the spec is pushed, connections opened.
  for (let i = 0; i < 20; i++) await once(guard);
  await Promise.all(Array.from({ length: callers }, () => once(guard)));
  const lat: number[] = [];
  requests = 0;
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await once(guard);
        lat.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const sent = requests;
  await guard.close();
  lat.sort((a, b) => a - b);
  return { ...row(t.variant, round, "http", scenario, limit, callers, lat, elapsedMs), objectCallsPerSec: Math.round(sent / (elapsedMs / 1000)) };
}

async function once(guard: Guard): Promise<void> {
  const r = await guard.acquire({ scopes: ["global"], queueTimeoutMs: 60_000, autoRenew: false });
  if (!r.ok) throw new Error(`not granted: ${r.reason}`);
  await r.lease.release();
}

async function httpHandoff(t: Target, round: number, n: number): Promise<Row> {
  const guard = t.lib.createGuard({
    store: t.lib.createDurableObjectHttpStore({ url: t.url, token: TOKEN }),
    group: `bench-http-handoff-${t.variant}-${Date.now()}`,
    limits: { global: 1 },
  });
  for (let i = 0; i < 10; i++) await once(guard);
  const lat: number[] = [];
  const started = performance.now();
  for (let i = 0; i < n && performance.now() - started < 60_000; i++) {
    const holder = await guard.acquire({ scopes: ["global"], autoRenew: false });
    if (!holder.ok) throw new Error("holder not granted");
    const waiting = guard.acquire({ scopes: ["global"], queueTimeoutMs: 60_000, autoRenew: false });
    const queuedBy = performance.now() + 5_000;
    while ((await guard.stats()).tickets !== 1) {
      if (performance.now() > queuedBy) throw new Error("the waiter never queued");
      await sleep(1);
    }
    const t0 = performance.now();
    void holder.lease.release();
    const granted = await waiting;
    lat.push(performance.now() - t0);
    if (!granted.ok) throw new Error("waiter not granted");
    await granted.lease.release();
  }
  const elapsedMs = performance.now() - started;
  await guard.close();
  lat.sort((a, b) => a - b);
  return {
    ...row(t.variant, round, "http", "hand-off", 1, 2, lat, elapsedMs),
    pairsPerSec: NaN,
    objectCallsPerSec: NaN,
    note: "release sent → waiter's long poll answered (client clock)",
  };
}

function row(
  variant: Variant,
  round: number,
  path: Row["path"],
  scenario: string,
  limit: number,
  callers: number,
  sortedLat: number[],
  elapsedMs: number,
): Row {
  const pairs = sortedLat.length / (elapsedMs / 1000);
  return {
    variant,
    round,
    path,
    scenario,
    limit,
    callers,
    ops: sortedLat.length,
    elapsedMs: Math.round(elapsedMs),
    pairsPerSec: Math.round(pairs),
    objectCallsPerSec: Math.round(pairs * 2),
    p50Ms: quantile(sortedLat, 0.5),
    p99Ms: quantile(sortedLat, 0.99),
    meanMs: mean(sortedLat),
  };
}

// ── RPC scenarios (inside a Worker → object) ────────────────────────────────────────────────────

interface RpcResult {
  ops: number;
  elapsedMs: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  cycleMs?: number;
  rpcs?: number;
}

async function rpc(mf: Miniflare, worker: string | undefined, path: string, params: Record<string, string | number>): Promise<RpcResult> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  const url = `http://bench.local${path}?${q}`;
  const res =
    worker === undefined
      ? await mf.dispatchFetch(url)
      : await ((await mf.getWorker(worker)) as unknown as { fetch(url: string): Promise<Response> }).fetch(url);
  if (res.status !== 200) throw new Error(`bench worker: ${res.status} ${await res.text()}`);
  return (await res.json()) as RpcResult;
}

function rpcRow(variant: Variant, round: number, path: Row["path"], scenario: string, limit: number, callers: number, r: RpcResult): Row {
  const pairs = r.ops / (r.elapsedMs / 1000);
  return {
    variant,
    round,
    path,
    scenario,
    limit,
    callers,
    ops: r.ops,
    elapsedMs: r.elapsedMs,
    pairsPerSec: Math.round(pairs),
    objectCallsPerSec: Math.round(r.rpcs === undefined ? pairs * 2 : r.rpcs / (r.elapsedMs / 1000)),
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    meanMs: r.meanMs,
    note: "in-Worker clock: whole ms, advances on I/O",
  };
}

async function rpcLoop(mf: Miniflare, round: number, scenario: string, limit: number, callers: number, ms: number): Promise<Row> {
  const group = `bench-rpc-${scenario}-${Date.now()}`;
  await rpc(mf, undefined, "/loop", { group, limit, callers, ms: Math.min(200, ms) }); // warm-up
  return rpcRow("current", round, "rpc", scenario, limit, callers, await rpc(mf, undefined, "/loop", { group, limit, callers, ms }));
}

async function clientLoop(mf: Miniflare, t: Target, round: number, scenario: string, limit: number, callers: number, ms: number): Promise<Row> {
  const group = `bench-client-${t.variant}-${scenario}-${Date.now()}`;
  await rpc(mf, t.client, "/loop", { group, limit, callers, ms: Math.min(200, ms) }); // warm-up
  return rpcRow(t.variant, round, "rpc-client", scenario, limit, callers, await rpc(mf, t.client, "/loop", { group, limit, callers, ms }));
}

async function rpcHandoff(mf: Miniflare, round: number, n: number): Promise<Row> {
  const r = await rpc(mf, undefined, "/handoff", { group: `bench-rpc-handoff-${Date.now()}`, limit: 1, n });
  return {
    variant: "current",
    round,
    path: "rpc",
    scenario: "hand-off",
    limit: 1,
    callers: 2,
    ops: r.ops,
    elapsedMs: r.elapsedMs,
    pairsPerSec: NaN,
    objectCallsPerSec: NaN,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    meanMs: r.meanMs,
    note: `release sent → waiter's call answered; a whole cycle (6 calls) ${r.cycleMs?.toFixed(2)} ms`,
  };
}

// ── main ────────────────────────────────────────────────────────────────────────────────────────

const outdir = mkdtempSync(join(os.tmpdir(), "slotgate-bench-do-"));
const stateDir = mkdtempSync(join(storageRoot, "slotgate-bench-do-state-"));
let baselineTree: string | undefined;
let mf: Miniflare | undefined;
try {
  console.log("building the Worker (wrangler deploy --dry-run) and the rpc-client Worker (esbuild)…");
  build(root, join(outdir, "current"));
  await buildClient(root, join(outdir, "client-current.js"));
  if (args.baseline !== undefined) {
    console.log(`building the baseline ${args.baseline}'s Worker and rpc-client Worker…`);
    baselineTree = checkout(args.baseline);
    build(baselineTree, join(outdir, "baseline"));
    await buildClient(baselineTree, join(outdir, "client-baseline.js"));
  }
  const { date, flags } = compatibility();
  const variants: Variant[] = args.baseline === undefined ? ["current"] : ["baseline", "current"];
  const slotgateWorker = (v: Variant) => ({
    name: v === "current" ? "slotgate" : "slotgate-baseline",
    modules: true,
    scriptPath: join(outdir, v, "index.js"),
    modulesRoot: join(outdir, v),
    compatibilityDate: date,
    compatibilityFlags: flags,
    bindings: { SLOTGATE_API_TOKEN: TOKEN },
    durableObjects: { SLOT_GROUP: { className: "SlotGroup", useSQLite: true } },
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
  });
  const clientWorker = (v: Variant) => ({
    name: `client-${v}`,
    modules: true,
    scriptPath: join(outdir, `client-${v}.js`),
    modulesRoot: outdir,
    compatibilityDate: date,
    compatibilityFlags: flags,
    durableObjects: { SLOT_GROUP: { className: "SlotGroup", scriptName: v === "current" ? "slotgate" : "slotgate-baseline", useSQLite: true } },
  });
  mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    durableObjectsPersist: stateDir,
    workers: [
      {
        name: "bench",
        modules: true,
        script: BENCH_WORKER,
        compatibilityDate: date,
        durableObjects: { SLOT_GROUP: { className: "SlotGroup", scriptName: "slotgate", useSQLite: true } },
      },
      ...variants.map(slotgateWorker),
      ...variants.map(clientWorker),
    ],
  });
  await mf.ready;
  const currentLib: Lib = { createGuard, createDurableObjectHttpStore };
  const targets: Target[] = [];
  for (const v of variants) {
    // The slot API straight on the slotgate worker's own socket (no entry worker in between).
    const url = (await mf.unsafeGetDirectURL(v === "current" ? "slotgate" : "slotgate-baseline")).origin;
    const lib: Lib =
      v === "current"
        ? currentLib
        : {
            createGuard: ((await import(pathToFileURL(join(baselineTree!, "src/index.ts")).href)) as Lib).createGuard,
            createDurableObjectHttpStore: ((await import(pathToFileURL(join(baselineTree!, "src/stores/durable-object/index.ts")).href)) as Lib)
              .createDurableObjectHttpStore,
          };
    targets.push({ variant: v, lib, url, client: `client-${v}` });
  }
  console.log(
    `workerd up; object storage on ${args.storage === "memory" ? "tmpfs" : "disk"} (${stateDir}); ${durationMs} ms per throughput phase; ${rounds} round(s)${args.baseline === undefined ? "" : `; baseline ${args.baseline}`}\n`,
  );

  const rows: Row[] = [];
  const run = async (label: string, f: () => Promise<Row>) => {
    process.stdout.write(`  ${label}… `);
    const r = await f();
    rows.push(r);
    console.log(`${r.ops} ops, ${Number.isNaN(r.pairsPerSec) ? "-" : r.pairsPerSec} pairs/s`);
  };
  for (let round = 1; round <= rounds; round++) {
    console.log(`round ${round}/${rounds}`);
    // Alternating variants inside each scenario, so a drift of the machine hits both alike.
    const each = async (f: (t: Target) => Promise<void>) => {
      for (const t of round % 2 === 0 ? [...targets].reverse() : targets) await f(t);
    };
    await each((t) => run(`${t.variant} http uncontended, 1 caller`, () => httpLoop(t, round, "uncontended", UNCONTENDED_LIMIT, 1, durationMs)));
    await each((t) =>
      run(`${t.variant} http uncontended, ${CALLERS} callers`, () => httpLoop(t, round, "uncontended", UNCONTENDED_LIMIT, CALLERS, durationMs)),
    );
    await each((t) =>
      run(`${t.variant} http contended (limit ${CONTENDED_LIMIT}), ${CALLERS} callers`, () =>
        httpLoop(t, round, "contended", CONTENDED_LIMIT, CALLERS, durationMs),
      ),
    );
    await each((t) => run(`${t.variant} http hand-off (limit 1)`, () => httpHandoff(t, round, handoffs)));
    await each((t) => run(`${t.variant} rpc-client uncontended, 1 caller`, () => clientLoop(mf!, t, round, "uncontended", UNCONTENDED_LIMIT, 1, durationMs)));
    await each((t) =>
      run(`${t.variant} rpc-client uncontended, ${CALLERS} callers`, () => clientLoop(mf!, t, round, "uncontended", UNCONTENDED_LIMIT, CALLERS, durationMs)),
    );
    await each((t) =>
      run(`${t.variant} rpc-client contended (limit ${CONTENDED_LIMIT}), ${CALLERS} callers`, () =>
        clientLoop(mf!, t, round, "contended", CONTENDED_LIMIT, CALLERS, durationMs),
      ),
    );
    await run("raw rpc uncontended, 1 caller", () => rpcLoop(mf!, round, "uncontended", UNCONTENDED_LIMIT, 1, durationMs));
    await run(`raw rpc uncontended, ${CALLERS} callers`, () => rpcLoop(mf!, round, "uncontended", UNCONTENDED_LIMIT, CALLERS, durationMs));
    await run(`raw rpc contended (limit ${CONTENDED_LIMIT}), ${CALLERS} callers`, () => rpcLoop(mf!, round, "contended", CONTENDED_LIMIT, CALLERS, durationMs));
    await run("raw rpc hand-off (limit 1)", () => rpcHandoff(mf!, round, handoffs));
  }

  // One line per variant and scenario: the median of the rounds, with their range.
  const fmt = (n: number | null, digits = 2) => (n === null || Number.isNaN(n) ? "-" : n.toFixed(digits));
  const range = (xs: number[], digits = 0) => {
    const ok = xs.filter((x) => !Number.isNaN(x));
    return ok.length === 0
      ? "-"
      : ok.length === 1
        ? fmt(ok[0]!, digits)
        : `${fmt(median(ok), digits)} (${fmt(Math.min(...ok), digits)}–${fmt(Math.max(...ok), digits)})`;
  };
  const keyOf = (r: Row) => `${r.path}|${r.scenario}|${r.callers}`;
  const keys = [...new Set(rows.map(keyOf))];
  console.log(`\nacquire → release through ONE SlotGroup object (local workerd); median of ${rounds} round(s) (min–max)\n`);
  const header = ["path", "scenario", "limit", "callers", "variant", "pairs/s", "object calls/s", "p50 ms", "p99 ms", "vs baseline (pairs/s)"];
  const lines: string[][] = [];
  for (const key of keys) {
    for (const v of variants) {
      const mine = rows.filter((r) => keyOf(r) === key && r.variant === v);
      if (mine.length === 0) continue;
      const base = rows.filter((r) => keyOf(r) === key && r.variant === "baseline");
      const ratios = v === "current" && base.length > 0 ? mine.map((r) => r.pairsPerSec / (base.find((b) => b.round === r.round)?.pairsPerSec ?? NaN)) : [];
      lines.push([
        mine[0]!.path,
        mine[0]!.scenario,
        String(mine[0]!.limit),
        String(mine[0]!.callers),
        v,
        range(mine.map((r) => r.pairsPerSec)),
        range(mine.map((r) => r.objectCallsPerSec)),
        range(
          mine.map((r) => r.p50Ms ?? NaN),
          2,
        ),
        range(
          mine.map((r) => r.p99Ms ?? NaN),
          2,
        ),
        ratios.length === 0 ? "" : `${range(ratios, 2)}×`,
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const print = (cells: string[]) => console.log(cells.map((c, i) => (i < 2 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  print(header);
  print(widths.map((w) => "-".repeat(w)));
  for (const l of lines) print(l);
  const notes = new Map(rows.filter((r) => r.note).map((r) => [`${r.path} ${r.scenario}`, r.note!]));
  for (const [what, note] of notes) console.log(`  ${what}: ${note}`);

  const out = join(root, "scripts", "bench", "results", "durable-object-latest.json");
  mkdirSync(dirname(out), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    cpuCount: os.cpus().length,
    loadAvg: os.loadavg(),
    durationMs,
    handoffs,
    rounds,
    baseline: args.baseline ?? null,
    quick: args.quick === true,
    runtime: "workerd via Miniflare (local), SQLite-backed SlotGroup",
    storage: args.storage === "memory" ? `tmpfs (${storageRoot})` : `disk (${storageRoot})`,
  };
  writeFileSync(out, `${JSON.stringify({ meta, results: rows }, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
} finally {
  await mf?.dispose();
  rmSync(outdir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
  if (baselineTree !== undefined) rmSync(baselineTree, { recursive: true, force: true });
}
