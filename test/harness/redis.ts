// Test harness: real redis-server processes (standalone and cluster) for the Redis tests.
//
// Every server binds 127.0.0.1 only, on a port the kernel handed out as free. Vitest runs
// test files in parallel, so a port can still be taken between our probe and redis' bind;
// that shows up as redis exiting with "Address already in use" and we simply retry on
// fresh ports. Each process is also guarded twice against outliving the test run: a
// process 'exit' hook kills it, and a tiny watchdog shell kills it when our process dies
// without running hooks (SIGKILL, crash), because then the watchdog's stdin pipe closes.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const REDIS_HOST = "127.0.0.1";
const CLUSTER_SLOTS = 16384;
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 10;
const RESTART_ATTEMPTS = 5;
const INSTALL_HINT =
  "Install it with `apt-get install -y redis-server` (Debian/Ubuntu), " + "or set REDIS_SERVER_BIN to the absolute path of a redis-server binary.";

export interface RedisProcess {
  readonly host: string;
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** pid of the current redis-server; changes on restart(). */
  readonly pid: number;
  /** SIGTERM, wait for exit, remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit; the temp dir (and cluster nodes.conf) stays for restart(). */
  kill9(): Promise<void>;
  /** Start again on the same port (stopping first if still running) and wait for PING. */
  restart(): Promise<void>;
  /**
   * SIGSTOP: the process keeps its sockets but answers nothing (a hung node). A paused replica
   * still misses nothing its master writes meanwhile: the stream waits in the kernel's socket
   * buffers until resume(), unless the master drops the link (CLIENT KILL TYPE replica).
   */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, e.g. ["--maxmemory", "10mb"]. */
  args?: readonly string[];
}

export interface ClusterNodeAddress {
  readonly host: string;
  readonly port: number;
}

export interface StartRedisClusterOptions {
  /** Number of masters. Default 3. */
  masters?: number;
  /** Replicas of each master (CLUSTER REPLICATE), started in sync. Default 0. */
  replicasPerMaster?: number;
  /** --cluster-node-timeout in ms. Default 2000. */
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments applied to every node. */
  args?: readonly string[];
}

export interface RedisClusterProcess {
  /**
   * Plain {host, port} objects, safe to hand to `new Cluster(nodes)` (ioredis copies
   * startup-node objects into connection options, so they must not carry methods).
   */
  readonly nodes: readonly ClusterNodeAddress[];
  /**
   * Same order as `nodes`; use for per-node kill9()/restart()/pause(). The masters come first,
   * in start order, then the replicas: `replicasPerMaster` for the first master, and so on.
   */
  readonly processes: readonly RedisProcess[];
  /** The replicas each master was started with (by index of `processes`); roles change on failover. */
  replicasOf(master: RedisProcess): readonly RedisProcess[];
  /**
   * Resolves once every running node that is not paused reports cluster_state:ok (e.g. after a
   * node restart), and every such replica whose master runs has its replication link up.
   */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** The process that serves `key` now, as a running node's CLUSTER NODES says. */
  masterOf(key: string): Promise<RedisProcess>;
  /**
   * `CLUSTER FAILOVER [FORCE|TAKEOVER]` on a replica; resolves with the ms it took until the
   * replica is a master and every running, unpaused node names it the owner of its slots.
   * Without TAKEOVER it first waits until every node knows the replica as its master's.
   */
  failover(replica: RedisProcess, mode?: "FORCE" | "TAKEOVER", timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Binary lookup

export function findRedisServerBin(): string {
  const fromEnv = process.env.REDIS_SERVER_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) {
      throw new Error(`REDIS_SERVER_BIN=${fromEnv} is not an executable file. ${INSTALL_HINT}`);
    }
    return fromEnv;
  }
  // Walk PATH ourselves rather than shelling out to `which`, which is not always installed.
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, "redis-server");
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(`redis-server was not found on PATH. ${INSTALL_HINT}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Cleanup registry. Kept on globalThis so that vitest's per-file module isolation does not
// stack one 'exit' listener per test file in the same worker.

interface LiveProcess {
  child: ChildProcess;
  watchdog: ChildProcess;
}

interface Registry {
  live: Set<LiveProcess>;
  dirs: Set<string>;
}

const REGISTRY_KEY = Symbol.for("slotgate.test.redisHarness.registry");

function registry(): Registry {
  const holder = globalThis as { [REGISTRY_KEY]?: Registry };
  let reg = holder[REGISTRY_KEY];
  if (!reg) {
    const created: Registry = { live: new Set(), dirs: new Set() };
    // 'exit' handlers must be synchronous: SIGKILL (nothing to wait for) and rmSync.
    process.on("exit", () => {
      for (const p of created.live) killQuietly(p);
      for (const dir of created.dirs) rmSync(dir, { recursive: true, force: true });
    });
    holder[REGISTRY_KEY] = created;
    reg = created;
  }
  return reg;
}

function killQuietly(p: LiveProcess): void {
  // Watchdog first: if it saw its pipe close later it would kill a pid that may be reused.
  for (const child of [p.watchdog, p.child]) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------------------
// Ports

/** Reserves `count` distinct free ports on 127.0.0.1 (all held at once, then released). */
async function findFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => listenOnFreePort()));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function listenOnFreePort(attempt = 0): Promise<ReturnType<typeof createServer>> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: REDIS_HOST, port: 0, exclusive: true }, () => resolve());
    });
    return server;
  } catch (err) {
    if (isAddrInUse(err) && attempt < START_ATTEMPTS) return listenOnFreePort(attempt + 1);
    throw err;
  }
}

function isAddrInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

// ---------------------------------------------------------------------------------------
// Minimal RESP client: enough for PING, INFO and the CLUSTER setup commands, so the
// harness depends on neither ioredis nor redis-cli.

export class RedisReplyError extends Error {
  override name = "RedisReplyError";
}

type Reply = string | number | null;

export function sendCommand(port: number, args: readonly string[], timeoutMs = 2_000): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const socket = createConnection({ host: REDIS_HOST, port });
    let buffer = Buffer.alloc(0);
    const finish = (err: Error | null, value?: Reply) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`redis 127.0.0.1:${port} did not answer ${args[0]} within ${timeoutMs} ms`)));
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`redis 127.0.0.1:${port} closed the connection`)));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let parsed: { value: Reply } | undefined;
      try {
        parsed = parseReply(buffer);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (parsed) finish(null, parsed.value);
    });
    socket.write(encodeCommand(args));
  });
}

function encodeCommand(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return out;
}

/** Returns undefined while the reply is still incomplete; throws RedisReplyError on "-ERR". */
function parseReply(buf: Buffer): { value: Reply } | undefined {
  const lineEnd = buf.indexOf("\r\n");
  if (lineEnd < 0) return undefined;
  const line = buf.toString("utf8", 1, lineEnd);
  switch (String.fromCharCode(buf[0] ?? 0)) {
    case "+":
      return { value: line };
    case "-":
      throw new RedisReplyError(line);
    case ":":
      return { value: Number(line) };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null };
      const start = lineEnd + 2;
      if (buf.length < start + len + 2) return undefined;
      return { value: buf.toString("utf8", start, start + len) };
    }
    default:
      throw new Error(`unsupported RESP reply: ${JSON.stringify(buf.toString("utf8", 0, 40))}`);
  }
}

// ---------------------------------------------------------------------------------------
// One redis-server process

interface Launch {
  child: ChildProcess;
  exited: Promise<number | string | null>;
  hasExited: () => boolean;
  output: () => string;
}

type ArgsFor = (ports: readonly number[], dir: string) => string[];

class AddressInUseError extends Error {}

class RedisInstance implements RedisProcess {
  readonly host = REDIS_HOST;
  private launch: Launch | undefined;
  private watchdog: ChildProcess | undefined;
  private live: LiveProcess | undefined;
  private stopped = false;
  private paused = false;

  private constructor(
    private readonly bin: string,
    private readonly ports: readonly number[],
    private readonly dir: string,
    private readonly argsFor: ArgsFor,
  ) {}

  /**
   * Starts on fresh ports; `portCount` > 1 reserves extra ports (the cluster bus port).
   * Retries when another test worker grabbed one of our ports first.
   */
  static async start(portCount: number, argsFor: ArgsFor): Promise<RedisInstance> {
    const bin = findRedisServerBin();
    const dir = mkdtempSync(join(tmpdir(), "slotgate-redis-"));
    registry().dirs.add(dir);
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        // A failed attempt may have written nodes.conf naming ports we are giving up.
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
      }
      const instance = new RedisInstance(bin, await findFreePorts(portCount), dir, argsFor);
      try {
        await instance.spawnAndWait();
        return instance;
      } catch (err) {
        if (!(err instanceof AddressInUseError) || attempt >= START_ATTEMPTS) {
          removeDir(dir);
          throw err;
        }
      }
    }
  }

  get port(): number {
    return this.ports[0] as number;
  }

  get busPort(): number | undefined {
    return this.ports[1];
  }

  get url(): string {
    return `redis://${REDIS_HOST}:${this.port}`;
  }

  get pid(): number {
    const pid = this.launch?.child.pid;
    if (pid === undefined) throw new Error(`redis on port ${this.port} is not running`);
    return pid;
  }

  get running(): boolean {
    return this.launch !== undefined && !this.launch.hasExited();
  }

  /** Running and not paused: it answers commands. */
  get answering(): boolean {
    return this.running && !this.paused;
  }

  pause(): void {
    if (!this.running) throw new Error(`redis on port ${this.port} is not running`);
    this.launch?.child.kill("SIGSTOP");
    this.paused = true;
  }

  resume(): void {
    if (this.running) this.launch?.child.kill("SIGCONT");
    this.paused = false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.terminate("SIGTERM");
    removeDir(this.dir);
  }

  async kill9(): Promise<void> {
    await this.terminate("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.terminate("SIGTERM");
    this.stopped = false;
    mkdirSync(this.dir, { recursive: true });
    registry().dirs.add(this.dir);
    // Same port is the point of restart(), so we cannot hop to another one. A collision
    // here is a short-lived port probe from a parallel worker, so waiting briefly is enough.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawnAndWait();
        return;
      } catch (err) {
        if (!(err instanceof AddressInUseError) || attempt >= RESTART_ATTEMPTS) throw err;
        await sleep(100 * attempt);
      }
    }
  }

  private async spawnAndWait(): Promise<void> {
    const args = [
      "--bind",
      REDIS_HOST,
      "--port",
      String(this.port),
      "--protected-mode",
      "yes",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      this.dir,
      "--daemonize",
      "no",
      "--logfile",
      "",
      // Warnings still include bind failures, which is what we need to see.
      "--loglevel",
      "warning",
      ...this.argsFor(this.ports, this.dir),
    ];
    this.launch = launch(this.bin, args, this.dir);
    const pid = this.launch.child.pid;
    if (pid === undefined) {
      await this.launch.exited;
      throw new Error(`could not run ${this.bin}: ${this.launch.output().trim()}`);
    }
    this.watchdog = spawnWatchdog(pid, this.dir);
    this.live = { child: this.launch.child, watchdog: this.watchdog };
    registry().live.add(this.live);
    try {
      await waitUntilReady(this.port, this.launch);
    } catch (err) {
      await this.terminate("SIGKILL");
      throw err;
    }
  }

  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const { launch: current, watchdog, live } = this;
    if (!current) return;
    watchdog?.kill("SIGKILL");
    if (!current.hasExited()) {
      current.child.kill(signal);
      // A stopped process only acts on SIGTERM once it runs again.
      if (this.paused) current.child.kill("SIGCONT");
      const escalate = setTimeout(() => current.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await current.exited;
      clearTimeout(escalate);
    }
    this.paused = false;
    if (live) registry().live.delete(live);
  }
}

function launch(bin: string, args: string[], cwd: string): Launch {
  const child = spawn(bin, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let exitedFlag = false;
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-8_192);
  };
  child.stdout?.on("data", keepTail);
  child.stderr?.on("data", keepTail);
  const exited = new Promise<number | string | null>((resolve) => {
    child.once("exit", (code, sig) => {
      exitedFlag = true;
      resolve(code ?? sig);
    });
    // spawn() failures (ENOENT, EACCES) arrive as 'error' without an 'exit'.
    child.once("error", (err) => {
      exitedFlag = true;
      output += `\n${err.message}`;
      resolve(null);
    });
  });
  // A test that forgets stop() must not keep its worker alive; the exit hook cleans up.
  unrefChild(child);
  return { child, exited, hasExited: () => exitedFlag, output: () => output };
}

/**
 * A shell that blocks reading a pipe from us. The pipe only closes when our process is
 * gone (however it died), at which point the shell SIGKILLs the redis-server and removes
 * its temp dir.
 */
function spawnWatchdog(redisPid: number, dir: string): ChildProcess {
  const script = 'read _unused; kill -9 "$1" 2>/dev/null; rm -rf "$2"';
  const watchdog = spawn("/bin/sh", ["-c", script, "watchdog", String(redisPid), dir], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  watchdog.on("error", () => {
    // Best effort only: without /bin/sh the exit hook still covers normal shutdowns.
  });
  unrefChild(watchdog);
  return watchdog;
}

function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as Socket | null)?.unref?.();
  }
}

async function waitUntilReady(port: number, current: Launch): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (current.hasExited()) break;
    if (await answersPing(port)) {
      // A PONG could come from a parallel worker's redis that won the race for this port
      // while ours is about to exit with EADDRINUSE, so confirm it is really our process.
      const info = await sendCommand(port, ["INFO", "server"]).catch(() => "");
      if (String(info).includes(`process_id:${current.child.pid}\r\n`)) return;
    }
    await sleep(10);
  }
  if (!current.hasExited()) {
    current.child.kill("SIGKILL");
    throw new Error(`redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms\n${current.output()}`);
  }
  await current.exited;
  const log = current.output();
  if (log.includes("Address already in use")) {
    throw new AddressInUseError(`redis-server could not bind a port on 127.0.0.1 (port ${port}): already in use\n${log}`);
  }
  throw new Error(`redis-server on port ${port} exited during startup:\n${log}`);
}

async function answersPing(port: number): Promise<boolean> {
  try {
    return (await sendCommand(port, ["PING"], 500)) === "PONG";
  } catch {
    return false;
  }
}

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  registry().dirs.delete(dir);
}

// ---------------------------------------------------------------------------------------
// Public entry points

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProcess> {
  const extra = opts.args ?? [];
  return RedisInstance.start(1, () => [...extra]);
}

/**
 * Starts a replica of `master` (`--replicaof`) on a fresh port and waits until it has synced
 * (master_link_status:up). Stop it like any other process; `REPLICAOF NO ONE` promotes it.
 */
export async function startRedisReplica(master: RedisProcess, opts: StartRedisOptions = {}): Promise<RedisProcess> {
  const extra = opts.args ?? [];
  // The full sync starts at once, not after the master's default 5 s wait for more replicas.
  await sendCommand(master.port, ["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
  const replica = await RedisInstance.start(1, () => ["--replicaof", REDIS_HOST, String(master.port), ...extra]);
  try {
    await waitForSync(replica.port, READY_TIMEOUT_MS);
  } catch (err) {
    await replica.stop();
    throw err;
  }
  return replica;
}

async function waitForSync(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let info = "";
  while (Date.now() < deadline) {
    info = String(await sendCommand(port, ["INFO", "replication"]).catch((err: Error) => err.message));
    if (info.includes("master_link_status:up")) return;
    await sleep(20);
  }
  throw new Error(`redis replica on port ${port} did not sync within ${timeoutMs} ms; last INFO replication:\n${info}`);
}

/**
 * Starts `masters` cluster masters, each with `replicasPerMaster` replicas, and waits for
 * cluster_state:ok (and the replicas in sync).
 * Needs Redis >= 7.0: the bus port is set explicitly with --cluster-port, because the
 * default port+10000 would overflow 65535 for most ports the kernel hands out.
 * Expect ~2 s: a fresh master refuses to report ok for its first 2 s (CLUSTER_WRITABLE_DELAY);
 * the replicas join and sync within that delay.
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterProcess> {
  const masters = opts.masters ?? 3;
  const perMaster = opts.replicasPerMaster ?? 0;
  const nodeTimeout = opts.nodeTimeoutMs ?? 2_000;
  const extra = opts.args ?? [];
  if (!Number.isInteger(masters) || masters < 1) throw new Error(`masters must be a positive integer, got ${masters}`);
  if (!Number.isInteger(perMaster) || perMaster < 0) throw new Error(`replicasPerMaster must be a non-negative integer, got ${perMaster}`);

  const argsFor: ArgsFor = (ports, dir) => [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    join(dir, "nodes.conf"),
    "--cluster-node-timeout",
    String(nodeTimeout),
    "--cluster-port",
    String(ports[1]),
    "--cluster-announce-ip",
    REDIS_HOST,
    // A replica's full sync starts at once, not after the default 5 s wait for more replicas.
    "--repl-diskless-sync-delay",
    "0",
    ...extra,
  ];
  const started = await Promise.allSettled(Array.from({ length: masters * (1 + perMaster) }, () => RedisInstance.start(2, argsFor)));
  const instances = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stopAll = async () => {
    await Promise.all(instances.map((i) => i.stop()));
  };
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await stopAll();
    throw failed.reason;
  }

  const primaries = instances.slice(0, masters);
  const replicasOf = new Map<RedisProcess, RedisInstance[]>(
    primaries.map((m, i) => [m, instances.slice(masters + i * perMaster, masters + (i + 1) * perMaster)]),
  );
  const answering = () => instances.filter((i) => i.answering);
  const cluster: RedisClusterProcess = {
    nodes: instances.map((i) => ({ host: REDIS_HOST, port: i.port })),
    processes: instances,
    replicasOf: (master) => replicasOf.get(master) ?? [],
    waitUntilHealthy: (timeoutMs = 15_000) => waitForClusterOk(instances, timeoutMs),
    masterOf: async (key) => {
      const [node] = answering();
      if (!node) throw new Error("no cluster node answers");
      const slot = Number(await sendCommand(node.port, ["CLUSTER", "KEYSLOT", key]));
      const owner = parseClusterNodes(String(await sendCommand(node.port, ["CLUSTER", "NODES"]))).find(
        (n) => n.flags.includes("master") && n.slots.some(([first, last]) => first <= slot && slot <= last),
      );
      const found = instances.find((i) => i.port === owner?.port);
      if (!found) throw new Error(`no master serves slot ${slot} of ${key} (asked 127.0.0.1:${node.port})`);
      return found;
    },
    failover: async (replica, mode, timeoutMs = 10_000) => {
      const startedAt = Date.now();
      const deadline = startedAt + timeoutMs;
      const agreeOn = async (what: string, seen: (node: ClusterNodeLine, self: ClusterNodeLine) => boolean) => {
        let last = "";
        while (Date.now() < deadline) {
          const views = await Promise.all(answering().map((i) => sendCommand(i.port, ["CLUSTER", "NODES"]).then(String, (err: Error) => err.message)));
          const selfView = parseClusterNodes(String(await sendCommand(replica.port, ["CLUSTER", "NODES"]).catch(() => ""))).find(
            (n) => n.port === replica.port,
          );
          const agreed =
            selfView !== undefined &&
            views.every((view) => {
              const node = parseClusterNodes(view).find((n) => n.port === replica.port);
              return node !== undefined && seen(node, selfView);
            });
          if (agreed) return;
          last = views.join("\n---\n");
          await sleep(20);
        }
        throw new Error(`127.0.0.1:${replica.port}: ${what} within ${timeoutMs} ms (CLUSTER FAILOVER ${mode ?? ""}); last CLUSTER NODES:\n${last}`);
      };
      // A master only accepts a manual failover from a node it knows as its replica: right after a
      // failover, the old master's turn to replica may not have reached it yet.
      if (mode !== "TAKEOVER")
        await agreeOn("not every node knows it as its master's replica", (n, self) => n.flags.includes("slave") && n.masterId === self.masterId);
      await sendCommand(replica.port, ["CLUSTER", "FAILOVER", ...(mode ? [mode] : [])]);
      await agreeOn("did not become a master", (n) => n.flags.includes("master") && n.slots.length > 0);
      return Date.now() - startedAt;
    },
    stop: stopAll,
  };
  try {
    await joinCluster(primaries, replicasOf);
    await cluster.waitUntilHealthy();
  } catch (err) {
    await stopAll();
    throw err;
  }
  return cluster;
}

interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string;
  slots: Array<[number, number]>;
}

/** CLUSTER NODES: `id ip:port@bus flags master ping pong epoch link slot…` per line. */
function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [id = "", address = "", flags = "", masterId = "", , , , , ...slots] = line.trim().split(" ");
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1]),
        flags: flags.split(","),
        masterId,
        slots: slots
          .filter((s) => !s.startsWith("["))
          .map((s) => {
            const [first, last = first] = s.split("-");
            return [Number(first), Number(last)] as [number, number];
          }),
      };
    });
}

/**
 * What `redis-cli --cluster create --cluster-replicas N` does, without needing redis-cli.
 * Two choices keep this near Redis' fixed 2 s start-up delay instead of 3-6 s:
 * - Slots go in right away. A node that knows of no slot-owning master counts itself
 *   as a minority, and leaving that state costs another cluster-node-timeout.
 * - Every pair meets directly. Meeting one seed only leaves the rest to gossip, which
 *   takes seconds to complete the mesh.
 * Replicas attach (CLUSTER REPLICATE) as soon as they know their master's id.
 */
async function joinCluster(masters: readonly RedisInstance[], replicasOf: ReadonlyMap<RedisProcess, readonly RedisInstance[]>): Promise<void> {
  const replicas = [...replicasOf.values()].flat();
  const instances = [...masters, ...replicas];
  await Promise.all(
    instances.map(async (node, i) => {
      if (i < masters.length) {
        const first = Math.floor((i * CLUSTER_SLOTS) / masters.length);
        const last = Math.floor(((i + 1) * CLUSTER_SLOTS) / masters.length) - 1;
        await sendCommand(node.port, ["CLUSTER", "ADDSLOTSRANGE", String(first), String(last)]);
      }
      // Distinct epochs (only settable while a node knows no one else), so the nodes
      // need no epoch-collision rounds to agree on slot ownership.
      await sendCommand(node.port, ["CLUSTER", "SET-CONFIG-EPOCH", String(i + 1)]);
    }),
  );
  const meets: Promise<unknown>[] = [];
  instances.forEach((from, i) => {
    // One direction per pair: two simultaneous handshakes between the same nodes only
    // produce a duplicate that Redis then has to discard.
    for (const to of instances.slice(i + 1)) {
      meets.push(sendCommand(from.port, ["CLUSTER", "MEET", REDIS_HOST, String(to.port), String(to.busPort)]));
    }
  });
  await Promise.all(meets);
  await Promise.all(
    masters.map(async (master) => {
      const id = String(await sendCommand(master.port, ["CLUSTER", "MYID"]));
      await Promise.all((replicasOf.get(master) ?? []).map((replica) => replicate(replica, id)));
    }),
  );
}

/** CLUSTER REPLICATE, retried while the handshake has not yet told the replica of its master. */
async function replicate(replica: RedisInstance, masterId: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      await sendCommand(replica.port, ["CLUSTER", "REPLICATE", masterId]);
      return;
    } catch (err) {
      if (!(err instanceof RedisReplyError) || !/Unknown node/i.test(err.message) || Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

async function waitForClusterOk(instances: readonly RedisInstance[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastInfo = "";
  while (Date.now() < deadline) {
    const running = instances.filter((i) => i.answering);
    const infos = await Promise.all(
      running.map(async (i) => {
        const ask = (args: string[]) => sendCommand(i.port, args).then(String, (err: Error) => err.message);
        const [cluster, replication] = await Promise.all([ask(["CLUSTER", "INFO"]), ask(["INFO", "replication"])]);
        // A replica of a running master must have its link up; one whose master is gone cannot.
        const masterPort = Number(/master_port:(\d+)/.exec(replication)?.[1]);
        const syncing = replication.includes("role:slave") && running.some((r) => r.port === masterPort) && !replication.includes("master_link_status:up");
        return cluster.includes("cluster_state:ok") && !syncing ? "" : `127.0.0.1:${i.port}\n${cluster}\n${replication}`;
      }),
    );
    lastInfo = infos.find((info) => info !== "") ?? "";
    if (lastInfo === "") return;
    await sleep(50);
  }
  throw new Error(
    `redis cluster did not reach cluster_state:ok (replicas in sync) within ${timeoutMs} ms; last CLUSTER INFO and INFO replication:\n${lastInfo}`,
  );
}
