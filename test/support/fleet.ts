// A fleet of `slotgate serve` child processes for the end-to-end tests (test/node/fleet.test.ts):
// each one is `node bin/slotgate.js serve -c FILE` as a user runs it, against the built package.
//
// The build: when dist/ is up to date with src/, the repository's own bin/slotgate.js and dist/ run.
// When it is not, this suite does not rebuild dist/ in place (test/node/cli.test.ts may be
// rebuilding it at the same moment, and its child processes read it): it builds a private copy of
// the package under .tmp/fleet-build/ (package.json, bin/slotgate.js, dist/) and runs that.
//
// Listeners bind port 0 (the config allows it): the kernel hands every frontend and stats listener
// a free port atomically, so nodes started in parallel (or by parallel test files) never collide,
// and the real ports are read back from the node's "frontend listening" / "stats listening" log
// lines. A config with fixed ports that loses a race (exit 3, EADDRINUSE) is retried.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify as toYaml } from "yaml";
import type { GuardStats, ScopeStats } from "../../src/index.js";
import type { NodeStats } from "../../src/node/frontend.js";
import { ROOT, newestMtime } from "./cli.js";
import { collectJsonLines } from "./json-lines.js";

export { ROOT };
const PRIVATE = join(ROOT, ".tmp", "fleet-build");
const BUILD_LOCK = join(ROOT, ".tmp", "fleet-build.lock");

/** Whether `<root>/dist` is built and newer than every source file. */
function fresh(root: string): boolean {
  const cli = join(root, "dist", "node", "cli.js");
  return existsSync(cli) && statSync(cli).mtimeMs >= newestMtime(join(ROOT, "src"));
}

/**
 * The `slotgate` executable to run: `SLOTGATE_FLEET_BIN` when set (another build of the package),
 * else the repository's bin/slotgate.js when dist/ is fresh, else a private build's (built here
 * when it is stale too; tsc emits even when the tree has type errors).
 */
export async function ensureBuilt(): Promise<string> {
  const given = process.env.SLOTGATE_FLEET_BIN;
  if (given !== undefined && given !== "") {
    if (!existsSync(given)) throw new Error(`SLOTGATE_FLEET_BIN=${given}: no such file`);
    return given;
  }
  if (fresh(ROOT)) return join(ROOT, "bin", "slotgate.js");
  const bin = join(PRIVATE, "bin", "slotgate.js");
  if (fresh(PRIVATE) && existsSync(bin)) return bin;
  // One build at a time among this suite's files (a lock directory; a stale lock is broken after 2 min).
  mkdirSync(join(ROOT, ".tmp"), { recursive: true });
  const t0 = Date.now();
  for (;;) {
    try {
      mkdirSync(BUILD_LOCK);
      break;
    } catch {
      if (Date.now() - t0 > 120_000) rmSync(BUILD_LOCK, { recursive: true, force: true });
      await sleep(100);
    }
  }
  try {
    if (!fresh(PRIVATE) || !existsSync(bin)) {
      rmSync(PRIVATE, { recursive: true, force: true });
      mkdirSync(join(PRIVATE, "bin"), { recursive: true });
      // package.json makes the copy an ES module package (and gives `slotgate --version`);
      // dependencies resolve from the repository's node_modules, a parent directory.
      copyFileSync(join(ROOT, "package.json"), join(PRIVATE, "package.json"));
      copyFileSync(join(ROOT, "bin", "slotgate.js"), bin);
      spawnSync(
        process.execPath,
        [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(PRIVATE, "dist")],
        {
          cwd: ROOT,
          stdio: "ignore",
        },
      );
    }
  } finally {
    rmSync(BUILD_LOCK, { recursive: true, force: true });
  }
  if (!existsSync(join(PRIVATE, "dist", "node", "cli.js"))) throw new Error(`the private build in ${PRIVATE} has no dist/node/cli.js`);
  return bin;
}

export async function writeYaml(dir: string, name: string, config: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, toYaml(config));
  return file;
}

export interface Address {
  host: string;
  port: number;
}

/** What `GET /stats.json` of a node's stats listener answers. */
export interface StatsJson {
  group: string;
  stats: GuardStats;
  node: NodeStats;
}

export interface FleetNode {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed JSON log lines (stdout). */
  readonly lines: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  /** Bound address of each frontend, from the node's log. */
  readonly frontends: Readonly<Record<string, Address>>;
  readonly statsAddress: Address;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** `http://127.0.0.1:PORT` of a frontend. */
  url(frontend: string): string;
  statsJson(): Promise<StatsJson>;
  /** One scope's row of the fleet's (store-wide) stats, as this node's stats listener reports it. */
  scope(name: string): Promise<ScopeStats>;
  /** SIGKILL; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (drain within the node's --grace), SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface StartNodeOptions {
  name: string;
  /** The slotgate executable, from {@link ensureBuilt}. */
  bin: string;
  /** --grace of serve. @default "1s" */
  grace?: string;
  /** @default "info" (the tests read "frontend listening" and "stats listening" lines) */
  logLevel?: string;
  /** How long to wait for "edge node started". @default 20000 */
  startTimeoutMs?: number;
}

const ATTEMPTS = 5;

/** Starts `slotgate serve -c configFile` and waits until it listens. Retries when an address was taken. */
export async function startFleetNode(configFile: string, options: StartNodeOptions): Promise<FleetNode> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnNode(configFile, options);
    } catch (error) {
      if (!(error instanceof AddressInUse) || attempt >= ATTEMPTS) throw error;
      await sleep(50 * attempt);
    }
  }
}

class AddressInUse extends Error {}

async function spawnNode(configFile: string, options: StartNodeOptions): Promise<FleetNode> {
  const child = spawn(process.execPath, [options.bin, "serve", "-c", configFile, "--grace", options.grace ?? "1s", "--log-level", options.logLevel ?? "info"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = collectJsonLines(child.stdout!);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );

  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const t0 = Date.now();
  while (!lines.some((l) => l.msg === "edge node started")) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await exited;
      if (stderr.includes("EADDRINUSE")) throw new AddressInUse(stderr);
      throw new Error(`node ${options.name} exited (${child.exitCode ?? child.signalCode}) before it started: ${stderr}`);
    }
    if (Date.now() - t0 > timeoutMs) {
      child.kill("SIGKILL");
      throw new Error(`node ${options.name}: no "edge node started" within ${timeoutMs}ms: ${stderr}`);
    }
    await sleep(10);
  }

  const frontends: Record<string, Address> = {};
  let statsAddress: Address | undefined;
  for (const l of lines) {
    if (l.msg === "frontend listening" && typeof l.frontend === "string" && typeof l.address === "string") frontends[l.frontend] = parseAddress(l.address);
    if (l.msg === "stats listening" && typeof l.address === "string") statsAddress = parseAddress(l.address);
  }
  if (!statsAddress) {
    child.kill("SIGKILL");
    throw new Error(`node ${options.name}: the fleet tests need a stats listener (stats: { bind: 127.0.0.1:0 })`);
  }
  const stats = statsAddress;

  const statsJson = async (): Promise<StatsJson> => {
    const r = await httpRequest(`http://${stats.host}:${stats.port}/stats.json`, { timeoutMs: 5_000 });
    if (r.status !== 200) throw new Error(`node ${options.name}: /stats.json answered ${r.status}: ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as StatsJson;
  };
  const gone = () => child.exitCode !== null || child.signalCode !== null;

  return {
    name: options.name,
    child,
    pid: child.pid!,
    lines,
    stderr: () => stderr,
    frontends,
    statsAddress: stats,
    exited,
    url(frontend) {
      const a = frontends[frontend];
      if (!a) throw new Error(`node ${options.name} has no frontend ${frontend}`);
      return `http://${a.host}:${a.port}`;
    },
    statsJson,
    async scope(name) {
      const row = (await statsJson()).stats.scopes[name];
      if (!row) throw new Error(`node ${options.name}: no scope ${name} in the stats`);
      return row;
    },
    async kill9() {
      if (!gone()) child.kill("SIGKILL");
      await exited;
    },
    async stop(timeout = 5_000) {
      if (gone()) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
      await exited;
      clearTimeout(timer);
    },
  };
}

function parseAddress(text: string): Address {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (!m) throw new Error(`unexpected address in a log line: ${text}`);
  return { host: m[1]!, port: Number(m[2]) };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** From the call to the end of the response. */
  ms: number;
  /** performance.now() when the response ended. */
  endedAt: number;
}

export interface RequestInit {
  agent?: http.Agent | false;
  headers?: http.OutgoingHttpHeaders;
  /** Destroys the request after this long (rejects). @default 30000 */
  timeoutMs?: number;
  /** Destroys the request when aborted (rejects). */
  signal?: AbortSignal;
}

/** A GET with a bounded life; rejects on a socket error (a killed node, say). */
export function httpRequest(url: string, init: RequestInit = {}): Promise<Reply> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: init.agent ?? false, headers: init.headers, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () => {
        clearTimeout(timer);
        const now = performance.now();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), ms: now - t0, endedAt: now });
      });
      res.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer from ${url} within ${init.timeoutMs ?? 30_000}ms`)), init.timeoutMs ?? 30_000);
    req.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Polls `check` until it holds; rejects after `timeoutMs`. Resolves with the time it took. */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs = 5_000, stepMs = 10, what = "condition"): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what} not met within ${timeoutMs}ms`);
    await sleep(stepMs);
  }
  return performance.now() - t0;
}

/** The q-quantile (0–1) of `values` by nearest rank; NaN for an empty list. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
