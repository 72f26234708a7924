/**
 * Proxy benchmark: what slotgate's edge node costs per request next to a plain Node reverse proxy
 * and HAProxy, and whether a fleet of slotgate nodes holds a server's maxconn where a fleet of
 * HAProxies cannot. One run, one machine, everything on 127.0.0.1.
 *
 *   npx tsx scripts/bench/proxy.ts                 # full: 3 rounds × (2 s warm-up, 10 s wrk, 5 s wrk -c1) per proxy
 *   npx tsx scripts/bench/proxy.ts --quick         # 1 round, 3 s runs: to check that it works
 *   npx tsx scripts/bench/proxy.ts --rounds 5 --duration 15 --connections 128
 *   npx tsx scripts/bench/proxy.ts --profile       # also: node --cpu-prof of the plain proxy and slotgate (memory, Redis)
 *   npx tsx scripts/bench/proxy.ts --no-single --no-fleet --rounds 2 --duration 5   # only the fleet throughput
 *
 * Needs wrk, haproxy and redis-server on PATH (Debian: apt-get install -y wrk haproxy redis-server),
 * and a build of slotgate in dist/: when a file of src/ is newer than dist/node/cli.js it runs
 * `npx tsc -p tsconfig.build.json --noEmitOnError` and copies the Lua first; if that fails (someone's edit in
 * progress), it goes on with the dist/ there is and says so in the header and the JSON.
 *
 * Throughput and latency: four proxies in front of one fast origin (a separate Node process
 * answering 200 "ok" at once), each limited far above the load (server maxconn 1000, timeout queue
 * 30 s), so none is limit-bound:
 *   1. plain Node proxy   scripts/bench/proxy/plain-proxy.mjs: node:http + a keep-alive Agent, the
 *                         same options and per-request work as src/node/http-proxy.ts minus the guard;
 *   2. slotgate memory    `node bin/slotgate.js serve -c <tmp json>`, store memory;
 *   3. slotgate Redis     the same on a redis-server started by test/harness/redis.ts;
 *   4. HAProxy            `haproxy -db -f <tmp cfg>`, mode http, nbthread 1, same maxconn / timeout queue.
 * Per round and proxy (proxies take turns, the order rotating each round, so drift in the
 * machine's load spreads over all of them): a wrk warm-up, then `wrk -t2 -c64 --latency` for
 * req/s and p50/p99 under saturation (closed loop: there latency ≈ connections / throughput), then
 * `wrk -t1 -c1 --latency` for the latency of one request at a time (what a proxy adds, without
 * queueing). CPU time of the proxy process (and of redis-server) is read from /proc around the
 * throughput run: CPU µs per request is steadier than req/s on a busy machine. For the Redis
 * variant, redis-server's INFO commandstats over the run gives the commands per proxied request.
 *
 * Fleet: one slow origin (50 ms per request, recording its highest concurrency), three HAProxy
 * replicas, then three slotgate nodes on one Redis, each with server maxconn 10, all loaded at once
 * (one wrk per replica). HAProxy's limit holds per process (the origin sees up to 30); slotgate's
 * holds for the fleet (≤ 10).
 *
 * Fleet throughput (scripts/bench/proxy/fleet-throughput.ts): three slotgate nodes on one Redis
 * against three plain Node proxies, all in front of the fast origin, limits far above the load,
 * loaded at once (one `wrk -t1` per replica); per round both fleets, the order alternating. It
 * prints each fleet's total req/s, the ratio slotgate/plain, p50/p99, and redis-server's CPU µs
 * and commands per guarded request (INFO cpu / commandstats around the window). On a 2-core
 * machine 3 proxies + 3 wrk + redis-server oversubscribe the CPUs, so the absolute req/s is what
 * is left of the machine; both fleets run under the same oversubscription, so the ratio still
 * compares like with like.
 *
 * Results: a table on stdout, the raw numbers in scripts/bench/results/proxy-latest.json.
 * This is a benchmark, not a test: it fails only when a proxy does not answer at all.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startOrigin, type Origin } from "../../test/support/origin.js";
import { findRedisServerBin, sendCommand, startRedis, type RedisProcess } from "../../test/harness/redis.js";
import { haproxyConfig, slotgateConfig } from "./proxy/configs.js";
import { runFleetThroughput, type FleetThroughputResult } from "./proxy/fleet-throughput.js";
import { formatProfile, summarizeProfile, type ProfileSummary } from "./proxy/cpuprofile.js";
import { cpuTimeMs, freePort, spawnChild, stopAllChildren, waitForPort, type Child } from "./proxy/procs.js";
import { median, redisCommandStats, type RedisCommandStat } from "./proxy/stats.js";
import { errorCount, runWrk, type WrkResult } from "./proxy/wrk.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");

// ── options ───────────────────────────────────────────────────────────────────────────────────

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    duration: { type: "string" },
    connections: { type: "string" },
    threads: { type: "string" },
    profile: { type: "boolean", default: false },
    "no-fleet": { type: "boolean", default: false },
    "no-fleet-throughput": { type: "boolean", default: false },
    "no-single": { type: "boolean", default: false },
    only: { type: "string" },
    bin: { type: "string" },
    variant: { type: "string", multiple: true },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.help) {
  console.log(`usage: npx tsx scripts/bench/proxy.ts [options]
  --quick                 1 round of 3 s runs (default: 3 rounds of 10 s)
  --rounds N              rounds (proxies take turns in every round, the order rotating)
  --duration SECONDS      length of each throughput run
  --connections N         wrk -c of the throughput runs (default 64)
  --threads N             wrk -t of the throughput runs (default 2)
  --profile               afterwards, node --cpu-prof of the plain proxy and slotgate (memory, Redis), summarised
  --no-fleet              skip the fleet test (slow origin: does the limit hold fleet-wide?)
  --no-fleet-throughput   skip the fleet throughput (3 slotgate nodes on one Redis vs 3 plain proxies)
  --no-single             skip the single-proxy throughput and latency runs (and --variant, --profile)
  --only LIST             measure only these of plain,slotgate-memory,slotgate-redis,haproxy
  --bin FILE              the slotgate command to run (default bin/slotgate.js; no rebuild of dist/)
  --variant NAME=FILE     also measure slotgate (memory) run by another slotgate.js, e.g. a patched
                          copy of bin/ + dist/ (repeatable): A/B of a change, in the same rounds`);
  process.exit(0);
}

function intArg(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const quick = args.quick === true;
const settings = {
  quick,
  rounds: intArg("rounds", args.rounds, quick ? 1 : 3, 1, 20),
  durationS: intArg("duration", args.duration, quick ? 3 : 10, 1, 600),
  warmupS: quick ? 1 : 2,
  latencyS: quick ? 2 : 5,
  connections: intArg("connections", args.connections, 64, 1, 10_000),
  threads: intArg("threads", args.threads, 2, 1, 64),
  serverMaxconn: 1000,
  queueMs: 30_000,
  fleet: {
    replicas: 3,
    serverMaxconn: 10,
    originDelayMs: 50,
    queueMs: 5_000,
    connectionsPerReplica: 20,
    durationS: quick ? 3 : 5,
  },
  fleetThroughput: {
    replicas: 3,
    /** wrk -t1 per replica; 3 × 32 ≈ the single runs' 64 connections, a little more. */
    connectionsPerReplica: 32,
  },
};

const MAIN_IDS = ["plain", "slotgate-memory", "slotgate-redis", "haproxy"] as const;
type MainId = (typeof MAIN_IDS)[number];
const only = new Set<string>(args.only === undefined ? MAIN_IDS : args.only.split(",").map((x) => x.trim()));
for (const id of only) {
  if (!(MAIN_IDS as readonly string[]).includes(id)) {
    console.error(`--only: unknown proxy ${JSON.stringify(id)}; expected some of ${MAIN_IDS.join(",")}`);
    process.exit(2);
  }
}
const single = args["no-single"] !== true;
const wants = (id: MainId) => single && only.has(id);

function checkBin(option: string, file: string): string {
  const path = resolve(file);
  if (!existsSync(path)) {
    console.error(`${option}: ${path} does not exist`);
    process.exit(2);
  }
  return path;
}

const SLOTGATE_BIN = args.bin === undefined ? join(ROOT, "bin", "slotgate.js") : checkBin("--bin", args.bin);
const variants = (single ? (args.variant ?? []) : []).map((v) => {
  const eq = v.indexOf("=");
  if (eq < 1 || !/^[\w.-]{1,32}$/.test(v.slice(0, eq))) {
    console.error(`--variant: expected NAME=path/to/slotgate.js, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return { name: v.slice(0, eq), bin: checkBin("--variant", v.slice(eq + 1)) };
});

/** Targets of the issue. */
const TARGETS = { memoryVsPlain: 0.8, redisAddedP50Ms: 1, fleetOriginMax: settings.fleet.serverMaxconn };

// ── cleanup ───────────────────────────────────────────────────────────────────────────────────

const tmp = mkdtempSync(join(os.tmpdir(), "slotgate-bench-proxy-"));
const redisProcs: RedisProcess[] = [];
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

let cleaning: Promise<void> | undefined;
/** Set by Ctrl-C / SIGTERM: the run's failures from then on are the stopped children, not news. */
let interrupted = false;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAllChildren();
    await Promise.all(redisProcs.map((r) => r.stop().catch(() => undefined)));
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (cleaning) process.exit(130); // second signal: the exit hooks SIGKILL the rest
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the proxies, the origin and redis …\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ── tools, build ──────────────────────────────────────────────────────────────────────────────

function toolVersion(command: string, versionArgs: string[], re: RegExp): string | undefined {
  const r = spawnSync(command, versionArgs, { encoding: "utf8" });
  if (r.error) return undefined;
  const m = re.exec(`${r.stdout ?? ""}${r.stderr ?? ""}`);
  return m ? m[1] : "unknown";
}

function requireTools(): { wrk: string; haproxy: string; redis: string } {
  const wrk = toolVersion("wrk", ["-v"], /^wrk (\S+)/m);
  const haproxy = toolVersion("haproxy", ["-v"], /HAProxy version (\S+)/);
  let redis: string | undefined;
  try {
    findRedisServerBin();
    redis = toolVersion("redis-server", ["--version"], /v=(\S+)/);
  } catch {
    redis = undefined;
  }
  const missing = [wrk ? "" : "wrk", haproxy ? "" : "haproxy", redis ? "" : "redis-server"].filter((x) => x !== "");
  if (missing.length > 0) {
    console.error(`missing: ${missing.join(", ")} (Debian: apt-get install -y wrk haproxy redis-server)`);
    process.exit(2);
  }
  return { wrk: wrk!, haproxy: haproxy!, redis: redis! };
}

function newestMtime(dir: string, filter: (name: string) => boolean): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path, filter));
    else if (filter(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ when a file of src/ (code or Lua) is newer than dist/node/cli.js. */
function ensureBuild(): string {
  const cli = join(ROOT, "dist", "node", "cli.js");
  const srcNewest = newestMtime(join(ROOT, "src"), (n) => (n.endsWith(".ts") && !n.endsWith(".test.ts")) || n.endsWith(".lua"));
  if (existsSync(cli) && statSync(cli).mtimeMs >= srcNewest) return "dist/ up to date";
  // --noEmitOnError: a src/ in the middle of someone's edit must not leave a broken dist/ behind.
  process.stderr.write("dist/ is older than src/: npx tsc -p tsconfig.build.json --noEmitOnError … ");
  const r = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json", "--noEmitOnError"], { cwd: ROOT, encoding: "utf8" });
  // The Redis store reads its .lua files from dist/ too: copy them as `npm run build` does.
  if (r.status === 0) Object.assign(r, spawnSync("node", ["scripts/copy-lua.mjs"], { cwd: ROOT, encoding: "utf8" }));
  if (r.status === 0) {
    process.stderr.write("done\n");
    return "dist/ rebuilt";
  }
  process.stderr.write(`failed:\n${(r.stdout ?? "") + (r.stderr ?? "")}\n`);
  if (!existsSync(cli)) {
    console.error("no dist/node/cli.js to run: fix the build first");
    process.exit(2);
  }
  process.stderr.write("going on with the existing dist/ (it may not match src/)\n");
  return "dist/ stale (build failed)";
}

function gitDescribe(): string {
  const r = spawnSync("git", ["describe", "--always", "--dirty"], { cwd: ROOT, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

// ── the processes ─────────────────────────────────────────────────────────────────────────────

interface Proxy {
  /** plain, slotgate-memory, slotgate-redis, haproxy, or variant:<name>. */
  id: string;
  label: string;
  url: string;
  child: Child;
  /** The Redis variant's redis-server (its CPU time and command counts are reported too). */
  redis?: { pid: number; port: number };
}

async function startNodeScript(name: string, script: string, scriptArgs: string[], nodeArgs: string[] = []): Promise<{ child: Child; port: number }> {
  const child = spawnChild(name, process.execPath, [...nodeArgs, join(HERE, "proxy", script), ...scriptArgs]);
  const m = await child.waitFor(/^listening (\d+)$/m);
  return { child, port: Number(m[1]) };
}

let configSeq = 0;

async function startSlotgate(
  name: string,
  config: object,
  nodeArgs: string[] = [],
  configFile?: string,
  bin: string = SLOTGATE_BIN,
): Promise<{ child: Child; port: number; file: string }> {
  const file = configFile ?? join(tmp, `slotgate-${++configSeq}.json`);
  if (configFile === undefined) writeFileSync(file, JSON.stringify(config, null, 2));
  // --log-level info: the node logs its bound port; the request path logs nothing at info when
  // every request is served (only rejections and errors are logged).
  const child = spawnChild(name, process.execPath, [...nodeArgs, bin, "serve", "-c", file, "--grace", "1s", "--log-level", "info"], { cwd: ROOT });
  const m = await child.waitFor(/"address":"127\.0\.0\.1:(\d+)"[^\n]*"msg":"frontend listening"/);
  await child.waitFor(/"msg":"edge node started"/);
  if (/"msg":"store not reachable yet/.test(child.output())) throw new Error(`${name}: the store is not reachable:\n${child.output().slice(-2000)}`);
  return { child, port: Number(m[1]), file };
}

async function startHaproxy(name: string, config: (port: number) => string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const file = join(tmp, `haproxy-${++configSeq}.cfg`);
  writeFileSync(file, config(port));
  const check = spawnSync("haproxy", ["-c", "-q", "-f", file], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`haproxy -c refuses ${file}:\n${check.stdout}${check.stderr}`);
  const child = spawnChild(name, "haproxy", ["-db", "-f", file]);
  await waitForPort(port, 10_000, child);
  return { child, port };
}

/** One GET through the proxy: it must answer 200 with the origin's body. */
function probe(url: string, expectBody?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        else if (expectBody !== undefined && body !== expectBody) reject(new Error(`${url}: unexpected body ${JSON.stringify(body.slice(0, 200))}`));
        else resolve();
      });
    });
    req.once("timeout", () => req.destroy(new Error(`${url}: no answer within 5 s`)));
    req.once("error", reject);
  });
}

// ── measuring ─────────────────────────────────────────────────────────────────────────────────

interface RoundResult {
  round: number;
  /** Position of this proxy in the round's order (0 = first). */
  slot: number;
  throughput: WrkResult;
  /** Proxy process CPU time per request during the throughput run, in µs. */
  cpuUsPerReq: number;
  /** redis-server's CPU per request (slotgate Redis only), in µs. */
  redisCpuUsPerReq: number | null;
  /** redis-server's INFO commandstats over the throughput run (slotgate Redis only). */
  redisCommands: RedisCommandStat[] | null;
  latency: WrkResult;
  loadAvg1: number;
}

interface Summary {
  rps: { median: number; min: number; max: number };
  p50Ms: number;
  p99Ms: number;
  c1P50Ms: number;
  c1P99Ms: number;
  c1Rps: number;
  cpuUsPerReq: number;
  redisCpuUsPerReq: number | null;
  errors: number;
}

async function measureOnce(p: Proxy, round: number, slot: number): Promise<RoundResult> {
  const { connections, threads } = settings;
  await runWrk({ url: p.url, threads, connections, durationS: settings.warmupS });
  await sleep(200);
  if (p.redis) await sendCommand(p.redis.port, ["CONFIG", "RESETSTAT"]);
  const cpu0 = cpuTimeMs(p.child.pid);
  const redis0 = p.redis === undefined ? NaN : cpuTimeMs(p.redis.pid);
  const throughput = await runWrk({ url: p.url, threads, connections, durationS: settings.durationS });
  const cpu1 = cpuTimeMs(p.child.pid);
  const redis1 = p.redis === undefined ? NaN : cpuTimeMs(p.redis.pid);
  const redisCommands = p.redis === undefined ? null : await redisCommandStats(p.redis.port, throughput.requests);
  await sleep(200);
  const latency = await runWrk({ url: p.url, threads: 1, connections: 1, durationS: settings.latencyS });
  const perReq = (ms: number) => (ms * 1000) / Math.max(1, throughput.requests);
  return {
    round,
    slot,
    throughput,
    cpuUsPerReq: perReq(cpu1 - cpu0),
    redisCpuUsPerReq: p.redis === undefined ? null : perReq(redis1 - redis0),
    redisCommands,
    latency,
    loadAvg1: os.loadavg()[0]!,
  };
}

function summarize(rounds: RoundResult[]): Summary {
  const rps = rounds.map((r) => r.throughput.rps);
  const redis = rounds.map((r) => r.redisCpuUsPerReq).filter((x): x is number => x !== null);
  return {
    rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
    p50Ms: median(rounds.map((r) => r.throughput.p50Ms)),
    p99Ms: median(rounds.map((r) => r.throughput.p99Ms)),
    c1P50Ms: median(rounds.map((r) => r.latency.p50Ms)),
    c1P99Ms: median(rounds.map((r) => r.latency.p99Ms)),
    c1Rps: median(rounds.map((r) => r.latency.rps)),
    cpuUsPerReq: median(rounds.map((r) => r.cpuUsPerReq)),
    redisCpuUsPerReq: redis.length > 0 ? median(redis) : null,
    errors: rounds.reduce((n, r) => n + errorCount(r.throughput) + errorCount(r.latency), 0),
  };
}

// ── fleet ─────────────────────────────────────────────────────────────────────────────────────

interface FleetResult {
  proxy: "haproxy" | "slotgate-redis";
  replicas: number;
  serverMaxconnPerReplica: number;
  originMaxConcurrency: number;
  originServed: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: number;
  perReplica: Array<{ rps: number; p50Ms: number; p99Ms: number; non2xx: number }>;
}

async function fleetRun(kind: FleetResult["proxy"], origin: Origin, redisUrl: string): Promise<FleetResult> {
  const f = settings.fleet;
  const limits = { serverMaxconn: f.serverMaxconn, queueMs: f.queueMs };
  const replicas: Array<{ child: Child; port: number }> = [];
  try {
    if (kind === "haproxy") {
      for (let i = 0; i < f.replicas; i++)
        replicas.push(await startHaproxy(`haproxy fleet ${i + 1}`, (port) => haproxyConfig({ ...limits, port, origin: origin.address })));
    } else {
      // Every node loads the same file (port 0: each binds its own) and points at the same Redis.
      const file = join(tmp, "slotgate-fleet.json");
      writeFileSync(
        file,
        JSON.stringify(slotgateConfig({ ...limits, port: 0, origin: origin.address, store: { type: "redis", url: redisUrl }, group: "bench-fleet" }), null, 2),
      );
      for (let i = 0; i < f.replicas; i++) replicas.push(await startSlotgate(`slotgate fleet ${i + 1}`, {}, [], file));
    }
    for (const r of replicas) await probe(`http://127.0.0.1:${r.port}/`);
    await origin.waitForCurrent(0, 10_000);
    origin.resetCounters();
    const results = await Promise.all(
      replicas.map((r) =>
        runWrk({ url: `http://127.0.0.1:${r.port}/`, threads: 1, connections: f.connectionsPerReplica, durationS: f.durationS, timeoutS: 10 }),
      ),
    );
    await origin.waitForCurrent(0, 15_000).catch(() => undefined);
    const sum = (pick: (w: WrkResult) => number) => results.reduce((n, w) => n + pick(w), 0);
    return {
      proxy: kind,
      replicas: f.replicas,
      serverMaxconnPerReplica: f.serverMaxconn,
      originMaxConcurrency: origin.max,
      originServed: origin.served,
      rps: sum((w) => w.rps),
      p50Ms: median(results.map((w) => w.p50Ms)),
      p99Ms: Math.max(...results.map((w) => w.p99Ms)),
      non2xx: sum((w) => w.non2xx),
      socketErrors: sum((w) => w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout),
      perReplica: results.map((w) => ({ rps: w.rps, p50Ms: w.p50Ms, p99Ms: w.p99Ms, non2xx: w.non2xx })),
    };
  } finally {
    await Promise.all(replicas.map((r) => r.child.stop()));
  }
}

// ── fleet throughput ──────────────────────────────────────────────────────────────────────────

/** Whether the fleet throughput's processes (proxies, wrk, redis-server, origin) outnumber the CPUs. */
function fleetThroughputSaturates(): boolean {
  return 2 * settings.fleetThroughput.replicas + 2 > os.cpus().length;
}

/** Runs the fleet throughput rounds and prints their table. */
async function fleetThroughputPhase(originAddress: string, redis: RedisProcess): Promise<FleetThroughputResult> {
  const f = settings.fleetThroughput;
  const n = f.replicas;
  process.stderr.write(
    `\n  fleet throughput: ${n} × plain Node proxy vs ${n} × slotgate (Redis, one redis-server), fast origin, wrk -t1 -c${f.connectionsPerReplica} per replica, ${settings.warmupS} s warm-up + ${settings.durationS} s, ${settings.rounds} round(s), order alternating\n`,
  );
  // Every slotgate node loads the same file (port 0: each binds its own) and shares the group.
  const file = join(tmp, "slotgate-fleet-throughput.json");
  writeFileSync(
    file,
    JSON.stringify(
      slotgateConfig({
        serverMaxconn: settings.serverMaxconn,
        queueMs: settings.queueMs,
        port: 0,
        origin: originAddress,
        store: { type: "redis", url: redis.url },
        group: "bench-fleet-throughput",
      }),
      null,
      2,
    ),
  );
  const result = await runFleetThroughput({
    replicas: n,
    rounds: settings.rounds,
    durationS: settings.durationS,
    warmupS: settings.warmupS,
    connectionsPerReplica: f.connectionsPerReplica,
    redisPort: redis.port,
    async start(kind, i) {
      const started =
        kind === "plain"
          ? await startNodeScript(`plain fleet ${i + 1}`, "plain-proxy.mjs", ["--target", originAddress])
          : await startSlotgate(`slotgate fleet-throughput ${i + 1}`, {}, [], file);
      await probe(`http://127.0.0.1:${started.port}/`, "ok");
      return started;
    },
    onRound(r) {
      process.stderr.write(
        `  round ${r.round}/${settings.rounds}  ${`${LABELS[r.kind]} ×${n}`.padEnd(24)} ${fmtInt(r.rps)} req/s, p50 ${fmtMs(r.p50Ms)} ms, p99 ${fmtMs(r.p99Ms)} ms · redis ${r.redisCpuUsPerReq.toFixed(1)} CPU µs/req, ${r.redisCommandsPerReq.toFixed(2)} cmds/req${r.errors > 0 ? ` · ${r.errors} errors` : ""} (load ${r.loadAvg1.toFixed(1)})\n`,
      );
    },
  });
  const plain = result.summaries.plain;
  console.log("");
  console.log(
    `fleet throughput: ${n} replicas each, one fast origin, limits far above the load (server maxconn ${settings.serverMaxconn}); wrk -t1 -c${f.connectionsPerReplica} on every replica of a fleet at once, ${settings.durationS} s × ${settings.rounds} round(s)`,
  );
  console.log(
    table(
      ["fleet", "req/s (sum)", "min–max", "p50 ms", "p99 ms (worst)", "proxy CPU µs/req", "redis CPU µs/req", "redis cmds/req", "× plain", "errors"],
      (["plain", "slotgate-redis"] as const).map((kind) => {
        const x = result.summaries[kind];
        return [
          `${LABELS[kind]} ×${n}`,
          fmtInt(x.rps.median),
          `${fmtInt(x.rps.min)}–${fmtInt(x.rps.max)}`,
          fmtMs(x.p50Ms),
          fmtMs(x.p99Ms),
          x.proxyCpuUsPerReq.toFixed(1),
          x.redisCpuUsPerReq.toFixed(1),
          x.redisCommandsPerReq.toFixed(2),
          fmtRatio(x.rps.median / plain.rps.median),
          String(x.errors),
        ];
      }),
      [false, true, true, true, true, true, true, true, true, true],
    ),
  );
  console.log(
    `slotgate/plain req/s: ${fmtRatio(result.ratio)} (per round ${result.ratioPerRound.map((r) => r.toFixed(2)).join(", ")}) · req/s: median over rounds of the sum over replicas · p50: median replica · p99: worst replica`,
  );
  console.log(
    "proxy CPU: user + system time of the fleet's proxy processes / requests · redis: INFO cpu and commandstats around the window / requests (the plain row is redis-server's idle floor)",
  );
  const last = result.rounds.filter((r) => r.kind === "slotgate-redis").at(-1);
  if (last) {
    const shown = last.redisCommands.filter((c) => c.callsPerRequest >= 0.01);
    console.log(
      `slotgate (Redis) ×${n}, redis-server per guarded request (last round): ${shown.map((c) => `${c.command} ${c.callsPerRequest.toFixed(2)} × ${c.usecPerCall.toFixed(1)} µs`).join(", ")}`,
    );
  }
  if (fleetThroughputSaturates())
    console.log(
      `note: ${os.cpus().length} CPU(s) for ${n} proxies + ${n} wrk + redis-server + the origin: the machine is saturated, so the absolute req/s is what it has left; both fleets run under the same load, so the ratio compares like with like`,
    );
  return result;
}

// ── profiling ─────────────────────────────────────────────────────────────────────────────────

interface ProfileResult {
  proxy: "plain" | "slotgate-memory" | "slotgate-redis";
  rps: number;
  cpuUsPerReq: number;
  summary: ProfileSummary;
}

async function profileRun(kind: ProfileResult["proxy"], originAddress: string, dir: string, redisUrl: string | undefined): Promise<ProfileResult> {
  const sub = join(dir, kind);
  mkdirSync(sub, { recursive: true });
  const nodeArgs = ["--cpu-prof", `--cpu-prof-dir=${sub}`];
  const spawnedAt = performance.now();
  const started =
    kind === "plain"
      ? await startNodeScript("plain proxy (profiled)", "plain-proxy.mjs", ["--target", originAddress], nodeArgs)
      : await startSlotgate(
          `${kind} (profiled)`,
          slotgateConfig({
            serverMaxconn: settings.serverMaxconn,
            queueMs: settings.queueMs,
            port: 0,
            origin: originAddress,
            store: kind === "slotgate-redis" ? { type: "redis", url: redisUrl! } : { type: "memory" },
            group: "bench-profile",
          }),
          nodeArgs,
        );
  const url = `http://127.0.0.1:${started.port}/`;
  await probe(url, "ok");
  await runWrk({ url, threads: settings.threads, connections: settings.connections, durationS: settings.warmupS });
  const cpu0 = cpuTimeMs(started.child.pid);
  const from = performance.now() - spawnedAt;
  const w = await runWrk({ url, threads: settings.threads, connections: settings.connections, durationS: settings.durationS });
  const to = performance.now() - spawnedAt;
  const cpu1 = cpuTimeMs(started.child.pid);
  await started.child.stop("SIGTERM", 10_000); // a clean exit writes the profile
  const files = readdirSync(sub).filter((n) => n.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${sub}`);
  // Only the measured run: start-up (module loading) and warm-up left out. The profile starts a
  // little after the spawn, so the window errs by that much towards the run's end.
  const summary = summarizeProfile(join(sub, files[0]!), 25, from, to);
  return { proxy: kind, rps: w.rps, cpuUsPerReq: ((cpu1 - cpu0) * 1000) / Math.max(1, w.requests), summary };
}

// ── output ────────────────────────────────────────────────────────────────────────────────────

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-";
}

function fmtMs(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : "-";
}

function fmtRatio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(2)}×` : "-";
}

function table(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "─".repeat(w)).join("  ");
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const LABELS: Record<MainId, string> = {
  plain: "plain Node proxy",
  "slotgate-memory": "slotgate (memory)",
  "slotgate-redis": "slotgate (Redis)",
  haproxy: "HAProxy",
};

// ── main ──────────────────────────────────────────────────────────────────────────────────────

interface Check {
  name: string;
  target: string;
  value: number;
  detail: string;
  pass: boolean;
}

async function main(): Promise<void> {
  const tools = requireTools();
  const build = args.bin === undefined ? ensureBuild() : `--bin ${SLOTGATE_BIN}`;
  const cpus = os.cpus();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cpuCount: cpus.length,
    git: gitDescribe(),
    build,
    slotgateBin: SLOTGATE_BIN,
    variants,
    wrk: tools.wrk,
    haproxy: tools.haproxy,
    redis: tools.redis,
    loadAvgStart: os.loadavg(),
    loadAvgEnd: [] as number[],
  };

  const contenders = single ? only.size + variants.length : 0;
  const perRound = settings.warmupS + settings.durationS + settings.latencyS + 1;
  const estimateS =
    settings.rounds * contenders * perRound +
    (args["no-fleet"] ? 0 : 2 * (settings.fleet.durationS + 3)) +
    (args["no-fleet-throughput"] ? 0 : settings.rounds * 2 * (settings.warmupS + settings.durationS + 1) + 5) +
    (args.profile && single ? 2 * (settings.warmupS + settings.durationS + 3) : 0) +
    10;
  console.log(`slotgate proxy benchmark — ${meta.date}`);
  console.log(`node ${meta.node}, ${meta.platform}, ${meta.cpuCount} CPU(s): ${meta.cpuModel}, load avg ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(`slotgate ${meta.git} (${build}) · wrk ${tools.wrk} · HAProxy ${tools.haproxy} · redis ${tools.redis}`);
  for (const v of variants) console.log(`variant ${v.name}: ${v.bin} (memory store)`);
  if (meta.loadAvgStart[0]! > meta.cpuCount / 2)
    console.log(`warning: the machine is busy (load ${meta.loadAvgStart[0]!.toFixed(2)} on ${meta.cpuCount} CPUs): expect noisy numbers`);
  console.log(
    `origin: separate Node process, 200 "ok" at once · proxies: server maxconn ${settings.serverMaxconn}, timeout queue ${settings.queueMs / 1000}s, HAProxy nbthread 1 · all on 127.0.0.1`,
  );
  if (single)
    console.log(
      `per proxy and round: ${settings.warmupS} s warm-up, ${settings.durationS} s wrk -t${settings.threads} -c${settings.connections} --latency, ${settings.latencyS} s wrk -t1 -c1 --latency · ${settings.rounds} round(s), order rotating`,
    );
  if (!args["no-fleet-throughput"] && fleetThroughputSaturates())
    console.log(
      `fleet throughput: ${settings.fleetThroughput.replicas} proxies + ${settings.fleetThroughput.replicas} wrk + redis-server + the origin on ${meta.cpuCount} CPU(s) saturate the machine: its req/s are what is left of it; the ratio slotgate/plain still compares like with like`,
    );
  console.log(`expected run time ≈ ${estimateS} s\n`);

  // The shared fast origin.
  const origin = await startNodeScript("fast origin", "fast-origin.mjs", []);
  const originAddress = `127.0.0.1:${origin.port}`;
  await probe(`http://${originAddress}/`, "ok");

  // The proxies, started once and kept for all rounds (only one is loaded at a time).
  const limits = { serverMaxconn: settings.serverMaxconn, queueMs: settings.queueMs };
  const memoryConfig = slotgateConfig({ ...limits, port: 0, origin: originAddress, store: { type: "memory" }, group: "bench" });
  let redis: RedisProcess | undefined;
  if (wants("slotgate-redis") || !args["no-fleet"] || !args["no-fleet-throughput"]) {
    redis = await startRedis();
    redisProcs.push(redis);
  }
  const proxies: Proxy[] = [];
  const url = (port: number) => `http://127.0.0.1:${port}/`;
  if (wants("plain")) {
    const p = await startNodeScript("plain proxy", "plain-proxy.mjs", ["--target", originAddress]);
    proxies.push({ id: "plain", label: LABELS.plain, url: url(p.port), child: p.child });
  }
  if (wants("slotgate-memory")) {
    const p = await startSlotgate("slotgate memory", memoryConfig);
    proxies.push({ id: "slotgate-memory", label: LABELS["slotgate-memory"], url: url(p.port), child: p.child });
  }
  for (const v of variants) {
    const p = await startSlotgate(`slotgate ${v.name}`, memoryConfig, [], undefined, v.bin);
    proxies.push({ id: `variant:${v.name}`, label: `slotgate (memory) [${v.name}]`, url: url(p.port), child: p.child });
  }
  if (wants("slotgate-redis")) {
    const p = await startSlotgate(
      "slotgate redis",
      slotgateConfig({ ...limits, port: 0, origin: originAddress, store: { type: "redis", url: redis!.url }, group: "bench" }),
    );
    proxies.push({ id: "slotgate-redis", label: LABELS["slotgate-redis"], url: url(p.port), child: p.child, redis: { pid: redis!.pid, port: redis!.port } });
  }
  if (wants("haproxy")) {
    const p = await startHaproxy("haproxy", (port) => haproxyConfig({ ...limits, port, origin: originAddress }));
    proxies.push({ id: "haproxy", label: LABELS.haproxy, url: url(p.port), child: p.child });
  }
  for (const p of proxies) await probe(p.url, "ok");
  const labelWidth = Math.max(...proxies.map((p) => p.label.length));

  const results = new Map<string, RoundResult[]>(proxies.map((p) => [p.id, []]));
  for (let round = 0; round < settings.rounds; round++) {
    const order = proxies.map((_, i) => proxies[(i + round) % proxies.length]!);
    for (const [slot, p] of order.entries()) {
      process.stderr.write(`  round ${round + 1}/${settings.rounds}  ${p.label.padEnd(labelWidth)} … `);
      const r = await measureOnce(p, round + 1, slot);
      results.get(p.id)!.push(r);
      const errs = errorCount(r.throughput) + errorCount(r.latency);
      process.stderr.write(
        `${fmtInt(r.throughput.rps)} req/s, p50 ${fmtMs(r.throughput.p50Ms)} ms, p99 ${fmtMs(r.throughput.p99Ms)} ms · c1 p50 ${fmtMs(r.latency.p50Ms)} ms · ${r.cpuUsPerReq.toFixed(1)} CPU µs/req${errs > 0 ? ` · ${errs} errors` : ""} (load ${r.loadAvg1.toFixed(1)})\n`,
      );
      if (r.redisCommands) {
        const cmds = r.redisCommands.filter((c) => c.callsPerRequest >= 0.01);
        process.stderr.write(
          `      redis: ${cmds.map((c) => `${c.command} ${c.callsPerRequest.toFixed(2)}/req × ${c.usecPerCall.toFixed(1)} µs`).join(", ")}\n`,
        );
      }
      if (p.child.hasExited()) throw new Error(`${p.label} exited during the run:\n${p.child.output().slice(-2000)}`);
    }
  }
  for (const p of proxies) await p.child.stop();

  const summaries = new Map<string, Summary>([...results].map(([id, rs]) => [id, summarize(rs)]));
  const s = (id: string) => summaries.get(id);
  const rps = (id: string) => s(id)?.rps.median ?? NaN;
  /** Per-round ratios of req/s (both measured in the same round, a minute apart at most). */
  const pairedRatios = (a: string, b: string) => {
    const ra = results.get(a);
    const rb = results.get(b);
    return ra && rb ? ra.map((r, i) => r.throughput.rps / rb[i]!.throughput.rps) : [];
  };

  // ── the table
  const header = ["proxy", "req/s", "min–max", "p50 ms", "p99 ms", "c1 p50 ms", "c1 p99 ms", "CPU µs/req", "× plain", "× HAProxy", "errors"];
  const right = [false, true, true, true, true, true, true, true, true, true, true];
  const rows = proxies.map((p) => {
    const x = s(p.id)!;
    const cpu = x.redisCpuUsPerReq === null ? x.cpuUsPerReq.toFixed(1) : `${x.cpuUsPerReq.toFixed(1)} + ${x.redisCpuUsPerReq.toFixed(1)} redis`;
    return [
      p.label,
      fmtInt(x.rps.median),
      `${fmtInt(x.rps.min)}–${fmtInt(x.rps.max)}`,
      fmtMs(x.p50Ms),
      fmtMs(x.p99Ms),
      fmtMs(x.c1P50Ms),
      fmtMs(x.c1P99Ms),
      cpu,
      fmtRatio(x.rps.median / rps("plain")),
      fmtRatio(x.rps.median / rps("haproxy")),
      String(x.errors),
    ];
  });
  if (proxies.length > 0) {
    console.log("");
    console.log(table(header, rows, right));
    console.log(
      `req/s, p50, p99: wrk -t${settings.threads} -c${settings.connections} (median over ${settings.rounds} round(s); min–max = spread of req/s) · c1: wrk -t1 -c1, one request at a time`,
    );
    console.log("CPU µs/req: user + system time of the proxy process during the throughput run / requests · × = req/s over the plain proxy's / HAProxy's");
  }
  const redisRounds = results.get("slotgate-redis");
  const cmds = redisRounds?.[redisRounds.length - 1]?.redisCommands;
  if (cmds) {
    const shown = cmds.filter((c) => c.callsPerRequest >= 0.01);
    console.log(
      `slotgate (Redis), redis-server per proxied request (last round): ${shown.map((c) => `${c.command} ${c.callsPerRequest.toFixed(2)} × ${c.usecPerCall.toFixed(1)} µs`).join(", ")}`,
    );
  }

  // ── targets
  const checks: Check[] = [];
  const ratios: Record<string, number | number[]> = {};
  for (const a of ["slotgate-memory", "slotgate-redis", "plain", ...variants.map((v) => `variant:${v.name}`)]) {
    for (const b of ["plain", "haproxy"]) {
      if (a !== b && s(a) && s(b)) ratios[`${a} / ${b}`] = rps(a) / rps(b);
    }
  }
  if (s("slotgate-memory") && s("plain")) {
    const ratio = rps("slotgate-memory") / rps("plain");
    const cpuRatio = s("slotgate-memory")!.cpuUsPerReq / s("plain")!.cpuUsPerReq;
    ratios["slotgate-memory / plain per round"] = pairedRatios("slotgate-memory", "plain");
    ratios["slotgate-memory CPU/req / plain CPU/req"] = cpuRatio;
    checks.push({
      name: "slotgate (memory) req/s ≥ 80% of the plain Node proxy",
      target: `≥ ${TARGETS.memoryVsPlain}`,
      value: ratio,
      detail: `per round ${pairedRatios("slotgate-memory", "plain")
        .map((r) => r.toFixed(2))
        .join(", ")}; CPU µs/req ${cpuRatio.toFixed(2)}× the plain proxy's`,
      pass: ratio >= TARGETS.memoryVsPlain,
    });
  }
  for (const v of variants) {
    const id = `variant:${v.name}`;
    if (!s("plain")) break;
    const ratio = rps(id) / rps("plain");
    checks.push({
      name: `slotgate (memory) [${v.name}] req/s ≥ 80% of the plain Node proxy`,
      target: `≥ ${TARGETS.memoryVsPlain}`,
      value: ratio,
      detail: `per round ${pairedRatios(id, "plain")
        .map((r) => r.toFixed(2))
        .join(", ")}; CPU µs/req ${(s(id)!.cpuUsPerReq / s("plain")!.cpuUsPerReq).toFixed(2)}× the plain proxy's`,
      pass: ratio >= TARGETS.memoryVsPlain,
    });
  }
  if (s("slotgate-memory") && s("slotgate-redis")) {
    const mem = s("slotgate-memory")!;
    const red = s("slotgate-redis")!;
    ratios["slotgate-redis added p50 ms, c1"] = red.c1P50Ms - mem.c1P50Ms;
    ratios[`slotgate-redis added p50 ms, c${settings.connections}`] = red.p50Ms - mem.p50Ms;
    checks.push(
      {
        name: "slotgate (Redis) p50 ≤ 1 ms above memory, one request at a time (c1)",
        target: `≤ ${TARGETS.redisAddedP50Ms} ms`,
        value: red.c1P50Ms - mem.c1P50Ms,
        detail: `c1 p50 ${fmtMs(red.c1P50Ms)} vs ${fmtMs(mem.c1P50Ms)} ms`,
        pass: red.c1P50Ms - mem.c1P50Ms <= TARGETS.redisAddedP50Ms,
      },
      {
        name: `slotgate (Redis) p50 ≤ 1 ms above memory, under load (c${settings.connections}; closed loop: includes the lower req/s)`,
        target: `≤ ${TARGETS.redisAddedP50Ms} ms`,
        value: red.p50Ms - mem.p50Ms,
        detail: `p50 ${fmtMs(red.p50Ms)} vs ${fmtMs(mem.p50Ms)} ms`,
        pass: red.p50Ms - mem.p50Ms <= TARGETS.redisAddedP50Ms,
      },
    );
  }

  // ── fleet
  const fleet: FleetResult[] = [];
  if (!args["no-fleet"]) {
    const f = settings.fleet;
    process.stderr.write(
      `\n  fleet: ${f.replicas} replicas × server maxconn ${f.serverMaxconn}, origin ${f.originDelayMs} ms/request, wrk -t1 -c${f.connectionsPerReplica} per replica, ${f.durationS} s\n`,
    );
    const slow = await startOrigin({ delayMs: f.originDelayMs });
    try {
      for (const kind of ["haproxy", "slotgate-redis"] as const) {
        process.stderr.write(`  fleet  ${kind.padEnd(15)} … `);
        const r = await fleetRun(kind, slow, redis!.url);
        fleet.push(r);
        process.stderr.write(`origin max concurrency ${r.originMaxConcurrency}, ${fmtInt(r.rps)} req/s\n`);
      }
    } finally {
      await slow.close();
    }
    const fr = fleet.find((r) => r.proxy === "slotgate-redis")!;
    checks.push({
      name: `fleet: the origin's concurrency under ${f.replicas} slotgate nodes ≤ server maxconn ${f.serverMaxconn}`,
      target: `≤ ${TARGETS.fleetOriginMax}`,
      value: fr.originMaxConcurrency,
      detail: `HAProxy ×${f.replicas}: ${fleet.find((r) => r.proxy === "haproxy")!.originMaxConcurrency}`,
      pass: fr.originMaxConcurrency <= TARGETS.fleetOriginMax,
    });
    console.log("");
    console.log(
      `fleet: ${f.replicas} replicas, each server maxconn ${f.serverMaxconn}, one origin (${f.originDelayMs} ms/request); wrk -t1 -c${f.connectionsPerReplica} on every replica at once, ${f.durationS} s`,
    );
    console.log(
      table(
        ["proxy", "origin max concurrency", "limit per replica", "req/s (sum)", "p50 ms", "p99 ms (worst)", "non-2xx", "socket errors"],
        fleet.map((r) => [
          r.proxy === "haproxy" ? `HAProxy ×${r.replicas}` : `slotgate (Redis) ×${r.replicas}`,
          String(r.originMaxConcurrency),
          String(r.serverMaxconnPerReplica),
          fmtInt(r.rps),
          fmtMs(r.p50Ms),
          fmtMs(r.p99Ms),
          String(r.non2xx),
          String(r.socketErrors),
        ]),
        [false, true, true, true, true, true, true, true],
      ),
    );
  }

  // ── fleet throughput
  let fleetThroughput: FleetThroughputResult | null = null;
  if (!args["no-fleet-throughput"]) {
    fleetThroughput = await fleetThroughputPhase(originAddress, redis!);
    ratios["fleet-throughput slotgate-redis / plain"] = fleetThroughput.ratio;
    ratios["fleet-throughput slotgate-redis / plain per round"] = fleetThroughput.ratioPerRound;
  }

  console.log("\ntargets:");
  if (checks.length === 0) console.log("  (none measured: they compare slotgate with the plain proxy, and Redis with memory)");
  for (const c of checks) {
    const value = Number.isInteger(c.value) ? String(c.value) : c.value.toFixed(2);
    console.log(`  ${c.pass ? "PASS" : "MISS"}  ${c.name}: ${value} (target ${c.target}) — ${c.detail}`);
  }

  // ── profiles
  const profiles: ProfileResult[] = [];
  const memoryMissed = checks.some((c) => c.name.startsWith("slotgate (memory) req/s") && !c.pass);
  if (args.profile && single) {
    const dir = mkdtempSync(join(os.tmpdir(), "slotgate-bench-proxy-profiles-"));
    process.stderr.write(`\n  profiling (node --cpu-prof) into ${dir}\n`);
    const kinds: Array<ProfileResult["proxy"]> = ["plain", "slotgate-memory", ...(redis ? (["slotgate-redis"] as const) : [])];
    for (const kind of kinds) {
      process.stderr.write(`  profile ${kind} … `);
      const r = await profileRun(kind, originAddress, dir, redis?.url);
      profiles.push(r);
      process.stderr.write(`${fmtInt(r.rps)} req/s (profiled), ${r.cpuUsPerReq.toFixed(1)} CPU µs/req\n`);
    }
    for (const p of profiles)
      console.log(`\n${formatProfile(p.summary, `${LABELS[p.proxy]} under wrk -c${settings.connections} (${fmtInt(p.rps)} req/s while profiled)`)}`);
  } else if (memoryMissed) {
    console.log("\nslotgate (memory) is below 80% of the plain proxy: --profile adds CPU profiles of slotgate and the plain proxy");
  }

  meta.loadAvgEnd = os.loadavg();
  const out = join(HERE, "results", "proxy-latest.json");
  mkdirSync(dirname(out), { recursive: true });
  const report = {
    meta,
    settings,
    targets: TARGETS,
    proxies: proxies.map((p) => ({ id: p.id, label: p.label, summary: s(p.id), rounds: results.get(p.id) })),
    ratios,
    checks,
    fleet,
    fleetThroughput,
    profiles: profiles.map((p) => ({ proxy: p.proxy, rps: p.rps, cpuUsPerReq: p.cpuUsPerReq, ...p.summary })),
  };
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nraw numbers: ${out}`);
}

try {
  await main();
  await cleanup();
  process.exit(0);
} catch (error) {
  if (!interrupted) console.error(`\nbenchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await cleanup();
  process.exit(interrupted ? 130 : 1);
}
