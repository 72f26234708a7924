/**
 * Redis's own time per Lua call of the Redis store, as functions (FCALL of the library) and as
 * scripts (EVALSHA), on the same calls: what Redis Functions save per call.
 *
 *   npx tsx scripts/bench/redis-lua.ts                     # 5 rounds × 2,000 calls per workload and path
 *   npx tsx scripts/bench/redis-lua.ts --rounds 7 --calls 4000
 *
 * One redis-server on a free loopback port (test/harness/redis.ts), one group configured by the
 * store. Each workload is sent one call at a time (no concurrency: the figure is Redis's time for
 * the call, not queueing), first as FCALL then as EVALSHA, alternating each round; the set-up and
 * clean-up calls of a workload (the acquire before a timed release) go out as EVAL, which
 * commandstats counts apart. Redis's time per call is `usec_per_call` of `INFO commandstats`
 * (CONFIG RESETSTAT before each run); the table
 * shows the lowest of the rounds, which a busy machine inflates least. It is a benchmark: it
 * asserts nothing, prints a table and writes scripts/bench/results/redis-lua-latest.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startRedis } from "../../test/harness/redis.js";
import { createGuard } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import { groupKeys } from "../../src/stores/redis/keys.js";
import { LIBRARY, SCRIPTS, type ScriptName } from "../../src/stores/redis/scripts/index.js";

const args = parseArgs({ options: { rounds: { type: "string" }, calls: { type: "string" } }, strict: true }).values;
const rounds = Math.max(1, Math.min(50, Number(args.rounds ?? 5) || 5));
const calls = Math.max(100, Math.min(100_000, Number(args.calls ?? 2000) || 2000));

type Arg = string | number;
/** One Lua call: the script it runs and its ARGV; `i` makes lease ids unique. */
type Call = (i: number) => [ScriptName, Arg[]];
interface Workload {
  name: string;
  /** Ops per call, for µs per op. */
  ops: number;
  /** The calls of one measured step; each is timed, all but `measured` are set-up or clean-up. */
  steps: Call[];
  measured: number;
}

const GROUP = "lua-bench";
const TTL = 600_000;
const acquireArgv = (id: string, backend = ""): Arg[] => [id, "", 0, 0, 0, 0, TTL, backend, "", 0, 0, TTL, ...(backend ? [] : ["global"])];
const batchOf = (code: string, argvs: Arg[][]): Arg[] => ["", ...argvs.flatMap((a) => [code, a.length, ...a])];
const ids = (i: number, n: number, tag: string) => Array.from({ length: n }, (_, k) => `${tag}${i}-${k}`);

const WORKLOADS: Workload[] = [
  { name: "acquire, lone (fast path)", ops: 1, steps: [(i) => ["acquire", acquireArgv(`a${i}`)], (i) => ["release", [`a${i}`, ""]]], measured: 0 },
  { name: "release, lone (fast path)", ops: 1, steps: [(i) => ["acquire", acquireArgv(`r${i}`)], (i) => ["release", [`r${i}`, ""]]], measured: 1 },
  {
    name: "renew, lone (fast path)",
    ops: 1,
    steps: [(i) => ["acquire", acquireArgv(`n${i}`)], (i) => ["renew", [`n${i}`, TTL, 0, 0, TTL, "", "", "global"]], (i) => ["release", [`n${i}`, ""]]],
    measured: 1,
  },
  {
    name: "acquire + release, backend (general path)",
    ops: 2,
    steps: [(i) => ["batch", batchOf("a", [acquireArgv(`g${i}`, "api")]).concat(["r", 2, `g${i}`, ""])]],
    measured: 0,
  },
  { name: "sweep, nothing due", ops: 1, steps: [() => ["sweep", []]], measured: 0 },
  { name: "stats", ops: 1, steps: [() => ["stats", []]], measured: 0 },
  ...[1, 8, 32, 128].flatMap((n): Workload[] => [
    {
      name: `batch of ${n} acquires`,
      ops: n,
      steps: [
        (i) => [
          "batch",
          batchOf(
            "a",
            ids(i, n, "b").map((id) => acquireArgv(id)),
          ),
        ],
        (i) => [
          "batch",
          batchOf(
            "r",
            ids(i, n, "b").map((id) => [id, ""]),
          ),
        ],
      ],
      measured: 0,
    },
    {
      name: `batch of ${n} releases`,
      ops: n,
      steps: [
        (i) => [
          "batch",
          batchOf(
            "a",
            ids(i, n, "c").map((id) => acquireArgv(id)),
          ),
        ],
        (i) => [
          "batch",
          batchOf(
            "r",
            ids(i, n, "c").map((id) => [id, ""]),
          ),
        ],
      ],
      measured: 1,
    },
  ]),
];

async function main(): Promise<void> {
  const server = await startRedis();
  const admin = new Redis(server.url);
  const timed = new Redis(server.url);
  const storeClient = new Redis(server.url);
  const guard = createGuard({
    store: createRedisStore({ redis: storeClient, sweepIntervalMs: 3_600_000, safetyRecheckMs: 3_600_000 }),
    group: GROUP,
    limits: { global: 1_000_000 },
    backends: { api: { servers: { a: { max: 1_000_000 } } } },
  });
  try {
    await guard.stats(); // the group's spec is pushed, the library loaded
    await admin.call("FUNCTION", "LOAD", LIBRARY.code).catch(() => undefined);
    const sha = new Map<ScriptName, string>();
    for (const [name, def] of Object.entries(SCRIPTS)) sha.set(name as ScriptName, String(await admin.script("LOAD", def.lua)));
    const keys = groupKeys("slotgate:", GROUP);
    let seq = 0;
    const send = (path: "fcall" | "evalsha", [name, argv]: [ScriptName, Arg[]]) =>
      path === "fcall"
        ? timed.call("FCALL", LIBRARY.functions[name]!, keys.length, ...keys, ...argv)
        : timed.evalsha(sha.get(name)!, keys.length, ...keys, ...argv);

    /** Set-up and clean-up steps go out as EVAL, which commandstats counts apart from FCALL and EVALSHA. */
    const unmeasured = ([name, argv]: [ScriptName, Arg[]]) => timed.eval(SCRIPTS[name].lua, keys.length, ...keys, ...argv);
    /** usec_per_call of the measured step over `calls` steps. */
    const run = async (w: Workload, path: "fcall" | "evalsha"): Promise<number> => {
      await admin.config("RESETSTAT");
      for (let c = 0; c < calls; c++) {
        const i = ++seq;
        for (let k = 0; k < w.measured; k++) await unmeasured(w.steps[k]!(i));
        await send(path, w.steps[w.measured]!(i));
        for (let k = w.measured + 1; k < w.steps.length; k++) await unmeasured(w.steps[k]!(i));
      }
      const stat = new RegExp(`^cmdstat_${path}:calls=(\\d+),usec=(\\d+)`, "m").exec(await admin.info("commandstats"));
      return Number(stat?.[2]) / Number(stat?.[1]);
    };

    const results = WORKLOADS.map((w) => ({ name: w.name, ops: w.ops, fcall: [] as number[], evalsha: [] as number[] }));
    for (let r = 0; r < rounds; r++) {
      for (const [k, w] of WORKLOADS.entries()) {
        const order: ("fcall" | "evalsha")[] = r % 2 === 0 ? ["fcall", "evalsha"] : ["evalsha", "fcall"];
        for (const path of order) results[k]![path].push(await run(w, path));
      }
      process.stdout.write(`  round ${r + 1}/${rounds} done\n`);
    }

    const min = (xs: number[]) => Math.min(...xs);
    console.log(`\nRedis µs per Lua call (lowest of ${rounds} rounds × ${calls} calls; INFO commandstats), FCALL vs EVALSHA — ${new Date().toISOString()}`);
    console.log(
      `load average ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")} on ${os.cpus().length} CPUs; library ${LIBRARY.name}\n`,
    );
    const rows = results.map((x) => {
      const f = min(x.fcall);
      const e = min(x.evalsha);
      return [x.name, e.toFixed(1), f.toFixed(1), (e - f).toFixed(1), `${((f / e) * 100).toFixed(0)}%`, (e / x.ops).toFixed(1), (f / x.ops).toFixed(1)];
    });
    const header = ["workload", "EVALSHA µs/call", "FCALL µs/call", "saved µs/call", "FCALL/EVALSHA", "EVALSHA µs/op", "FCALL µs/op"];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
    const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
    console.log([line(header), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n"));

    const out = join(dirname(fileURLToPath(import.meta.url)), "results", "redis-lua-latest.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), loadavg: os.loadavg(), rounds, calls, library: LIBRARY.name, results }, null, 2));
    console.log(`\nraw numbers: ${out}`);
  } finally {
    await guard.close();
    for (const c of [admin, timed, storeClient]) c.disconnect();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
