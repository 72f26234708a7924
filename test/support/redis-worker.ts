// One edge node of a fleet, in a process of its own: the fleet and fault tests
// (test/redis/fleet*.test.ts, test/redis/fault*.test.ts) start several of these through
// ./redis-fleet.ts and drive them over the IPC channel. It runs from source under tsx
// (`node --import tsx`), so it always tests the current src/ and needs no build; the pid the
// parent sees is this very process, so SIGKILL hits the node, not a wrapper.
//
// Holders are counted independently of the store: a lease granted by the store INCRs a probe key
// (its own namespace, its own connection) right after the grant and DECRs it right before the
// release. Each step waits for the previous reply, so in Redis' serial order [INCR, DECR] lies
// inside [grant, release]: an INCR that returns more than the limit proves that many leases were
// held at once. The probe connection neither queues offline nor re-sends after a reconnect, so a
// Redis crash cannot replay a probe step later.
//
// An unhandled rejection or an uncaught exception ends the process with a non-zero code, which
// the tests assert.

import { setTimeout as sleep } from "node:timers/promises";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { createGuard, type Lease } from "../../src/index.js";
import { createRedisStore } from "../../src/stores/redis/index.js";
import {
  EXIT_UNCAUGHT_EXCEPTION,
  EXIT_UNHANDLED_REJECTION,
  OUTCOME,
  type Command,
  type LoadCommand,
  type LoadReport,
  type Progress,
  type Results,
  type TimelineEntry,
  type WorkerConfig,
  type WorkerEvent,
  type WorkerReply,
  type WorkerRequest,
} from "./redis-worker-protocol.js";

// ── the process ──────────────────────────────────────────────────────────────────────────────

if (process.send === undefined) {
  console.error("redis-worker.ts runs as a forked child (see test/support/redis-fleet.ts)");
  process.exit(2);
}

process.on("unhandledRejection", (reason) => {
  console.error("unhandledRejection:", reason);
  process.exit(EXIT_UNHANDLED_REJECTION);
});
process.on("uncaughtException", (error) => {
  console.error("uncaughtException:", error);
  process.exit(EXIT_UNCAUGHT_EXCEPTION);
});
// The parent is gone (however it died): so are we.
process.on("disconnect", () => process.exit(0));

const config = JSON.parse(process.argv[2] ?? "") as WorkerConfig;

function send(message: WorkerEvent | WorkerReply): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

const progress: Progress = {
  acquires: 0,
  granted: { store: 0, local: 0, failOpen: 0 },
  rejected: {},
  probe: {},
  probeErrors: 0,
  localMax: 0,
  lost: 0,
  events: {},
  clientErrors: 0,
};

function newClient(options: RedisOptions, clusterOptions: ClusterOptions = {}): Redis | Cluster {
  const client =
    "url" in config.target ? new Redis(config.target.url, options) : new Cluster(config.target.nodes, { ...clusterOptions, redisOptions: options });
  client.on("error", () => progress.clientErrors++);
  return client;
}

async function whenReady(client: Redis | Cluster): Promise<void> {
  if (client.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`client not ready: ${client.status}`)), 15_000);
    client.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// The store's client keeps ioredis' defaults (retryStrategy, offline queue, re-sends): that is
// what the outage tests exercise.
const redis = newClient({});
const probe = newClient({ enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 }, { enableOfflineQueue: false });
const store = createRedisStore({ redis, ...config.store });
const guard = createGuard({
  store,
  group: config.group,
  limits: { global: config.limit },
  defaults: { queueTimeoutMs: config.queueTimeoutMs, leaseTtlMs: config.leaseTtlMs },
  ...(config.queue === undefined ? {} : { queue: config.queue }),
  ...(config.onStoreError === undefined ? {} : { onStoreError: config.onStoreError }),
  ...(config.localShare === undefined ? {} : { localShare: config.localShare }),
  onEvent: (event) => {
    progress.events[event.type] = (progress.events[event.type] ?? 0) + 1;
  },
});

let probeKey: string | null = null;
let localInside = 0;
const held: Lease[] = [];

function snapshot(): Progress {
  return structuredClone(progress);
}

// ── load ─────────────────────────────────────────────────────────────────────────────────────

interface RunningLoad {
  stopping: boolean;
  done: Promise<LoadReport>;
}

let load: RunningLoad | undefined;

function startLoad(command: LoadCommand): RunningLoad {
  const timeline: TimelineEntry[] = [];
  const fences: number[] = [];
  let remaining = command.quota ?? Infinity;
  const startedAt = Date.now();
  const running: RunningLoad = { stopping: false, done: undefined as unknown as Promise<LoadReport> };

  const criticalSection = async (lease: Lease) => {
    const key = lease.fallback === undefined ? probeKey : null;
    let inside = false;
    if (key !== null) {
      try {
        const value = await probe.incr(key);
        inside = true;
        const figures = (progress.probe[key] ??= { max: 0, samples: 0 });
        figures.samples++;
        figures.max = Math.max(figures.max, value);
      } catch {
        progress.probeErrors++;
      }
    }
    const holdMs = Math.floor(Math.random() * (command.holdMaxMs + 1));
    if (holdMs > 0) await sleep(holdMs);
    else await Promise.resolve();
    if (inside) {
      try {
        await probe.decr(key!);
      } catch {
        progress.probeErrors++;
      }
    }
  };

  const loop = async () => {
    while (!running.stopping && remaining > 0) {
      remaining--;
      progress.acquires++;
      const begin = Date.now();
      const result = await guard.acquire({ scopes: ["global"] });
      const end = Date.now();
      if (!result.ok) {
        progress.rejected[result.reason] = (progress.rejected[result.reason] ?? 0) + 1;
        if (command.timeline) timeline.push([begin, end, result.reason === "unavailable" ? OUTCOME.unavailable : OUTCOME.otherReject]);
        if (result.reason === "unavailable" && command.retryDelayMs > 0) await sleep(command.retryDelayMs);
        continue;
      }
      const lease = result.lease;
      const kind = lease.fallback === undefined ? "store" : lease.fallback === "local" ? "local" : "failOpen";
      progress.granted[kind]++;
      if (command.timeline) timeline.push([begin, end, OUTCOME[kind]]);
      if (command.fences && kind === "store") fences.push(lease.fence);
      if (kind === "local") progress.localMax = Math.max(progress.localMax, ++localInside);
      try {
        await criticalSection(lease);
        if (!lease.held) progress.lost++;
      } finally {
        if (kind === "local") localInside--;
        await lease.release();
      }
    }
  };

  running.done = Promise.all(Array.from({ length: command.workers }, loop)).then(() => ({
    ...snapshot(),
    elapsedMs: Date.now() - startedAt,
    ...(command.timeline ? { timeline } : {}),
    ...(command.fences ? { fences } : {}),
  }));
  return running;
}

// ── commands ─────────────────────────────────────────────────────────────────────────────────

async function handle(command: Command): Promise<Results[Command["cmd"]]> {
  switch (command.cmd) {
    case "load": {
      if (load) throw new Error("a load is already running");
      load = startLoad(command);
      try {
        return await load.done;
      } finally {
        load = undefined;
      }
    }
    case "probe":
      probeKey = command.key;
      return null;
    case "stop": {
      const running = load;
      if (!running) return null;
      running.stopping = true;
      return running.done;
    }
    case "progress":
      return snapshot();
    case "hold": {
      const fences: number[] = [];
      for (let i = 0; i < command.n; i++) {
        const result = await guard.acquire({ scopes: ["global"], queueTimeoutMs: 0 });
        if (!result.ok) throw new Error(`hold: acquire ${i + 1} of ${command.n} was rejected: ${result.reason}`);
        held.push(result.lease);
        fences.push(result.lease.fence);
      }
      return fences;
    }
    case "wait":
      for (let i = 0; i < command.n; i++) {
        void guard.acquire({ scopes: ["global"] }).then(
          (result) => {
            if (!result.ok) return send({ event: "wait-ended", reason: result.reason });
            held.push(result.lease);
            return send({ event: "granted", at: Date.now(), fence: result.lease.fence });
          },
          (error: unknown) => send({ event: "wait-ended", reason: `error: ${String(error)}` }),
        );
      }
      return null;
    case "abandon": {
      const result = await guard.acquire({ scopes: ["global"], queueTimeoutMs: 0, leaseTtlMs: command.leaseTtlMs, autoRenew: false });
      if (!result.ok) throw new Error(`abandon: acquire was rejected: ${result.reason}`);
      return result.lease.id; // never released, never renewed
    }
    case "stats":
      return { stats: await guard.stats(), faults: { ...store.faults }, clientStatus: redis.status };
    case "flows": {
      const grants: Record<string, number[]> = {};
      const until = Date.now() + command.durationMs;
      const loop = async (flow: string) => {
        const times = (grants[flow] ??= []);
        while (Date.now() < until) {
          const result = await guard.acquire({ scopes: ["global"], ...(command.fair ? { flow } : {}) });
          if (!result.ok) throw new Error(`flows: ${flow} was rejected: ${result.reason}`);
          times.push(Date.now());
          await sleep(command.holdMs);
          await result.lease.release();
        }
      };
      await Promise.all(Object.entries(command.loops).flatMap(([flow, n]) => Array.from({ length: n }, () => loop(flow))));
      return grants;
    }
    case "exit":
      if (load) {
        load.stopping = true;
        await load.done;
      }
      await guard.close();
      redis.disconnect();
      probe.disconnect();
      // Let anything still settling surface (an unhandled rejection exits non-zero instead).
      await sleep(50);
      return null;
  }
}

process.on("message", (message: WorkerRequest) => {
  const { id } = message;
  handle(message).then(
    async (result) => {
      await send({ id, ok: true, result });
      if (message.cmd === "exit") process.exit(0);
    },
    (error: unknown) => send({ id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});

await redis.ping();
await Promise.all([whenReady(redis), whenReady(probe)]);
await send({ event: "ready", pid: process.pid });
