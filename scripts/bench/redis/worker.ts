/**
 * A worker process of the Redis benchmark (scripts/bench/redis.ts forks three or four of them).
 * It runs one library at a time, driven by requests from the main process (see ./protocol.ts):
 * loops of acquire → hold → release for the hand-off and clock-skew phases, single ordered
 * waiters for the FIFO phase. It exits when the main process goes away (IPC disconnect).
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { benchConnection, createLimiter, instrumentIoredis, resetSent, sentSnapshot, type BenchLimiter, type Release } from "./contenders.js";
import type { LoopReply, Reply, Request, RequestMessage, SetupReply, WorkerEvent } from "./protocol.js";

instrumentIoredis();

if (!process.send) {
  console.error("scripts/bench/redis/worker.ts is started by scripts/bench/redis.ts, not directly");
  process.exit(2);
}
const send = (message: Reply | WorkerEvent) => process.send!(message);
// The main process is gone (finished, crashed or interrupted): nothing left to do.
process.on("disconnect", () => process.exit(0));
// A library that fails inside its own timers (bottleneck under clock skew throws UNKNOWN_CLIENT
// from an internal promise) must not take the worker down: count it, report it as a fault.
let escaped = 0;
process.on("unhandledRejection", () => void escaped++);
process.on("uncaughtException", () => void escaped++);

let limiter: BenchLimiter | undefined;
let marker: Redis | undefined;
let clockBase = 0n;
let holder: Release | undefined;
let loop: { stop: boolean; done: Promise<LoopReply> } | undefined;

const now = () => Number(process.hrtime.bigint() - clockBase);

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`worker: no ${what} (setup first)`);
  return value;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.t) {
    case "setup": {
      clockBase = BigInt(req.clockBase);
      marker ??= await benchConnection(req.port);
      limiter = await createLimiter(req.lib, req);
      // One acquire → release so connections, scripts and subscriptions are in place before timing.
      await (
        await limiter.acquire()
      )();
      const reply: SetupReply = {
        pid: process.pid,
        skewMs: Date.now() - (performance.timeOrigin + performance.now()),
        wallMinusMonotonicMs: performance.timeOrigin + performance.now() - Number(process.hrtime.bigint()) / 1e6,
      };
      return reply;
    }
    case "loop": {
      if (loop) throw new Error("worker: a loop is already running");
      const state = { stop: false, done: undefined as unknown as Promise<LoopReply> };
      state.done = runLoop(need(limiter, "limiter"), need(marker, "marker"), req, state);
      loop = state;
      return undefined;
    }
    case "stop": {
      const current = need(loop, "loop");
      current.stop = true;
      const result = await current.done;
      loop = undefined;
      return result;
    }
    case "hold":
      holder = await need(limiter, "limiter").acquire();
      return undefined;
    case "unhold": {
      const release = need(holder, "held slot");
      holder = undefined;
      await release();
      return undefined;
    }
    case "enqueue": {
      const lim = need(limiter, "limiter");
      const m = need(marker, "marker");
      // Not awaited: the waiter stays queued; main is told when it was granted and done.
      lim.acquire(req.priority ?? undefined).then(
        async (release) => {
          // The grant order, recorded in Redis while the slot (limit 1) is held.
          await m.rpush(req.orderKey, String(req.waiter));
          await sleep(req.holdMs);
          await release();
          send({ ev: "done", waiter: req.waiter });
        },
        (error: unknown) => send({ ev: "failed", waiter: req.waiter, error: String(error) }),
      );
      return undefined;
    }
    case "queued": {
      const lim = need(limiter, "limiter");
      return lim.queued ? await lim.queued() : null;
    }
    case "close": {
      const lim = limiter;
      limiter = undefined;
      holder = undefined;
      await lim?.close();
      return undefined;
    }
  }
}

async function runLoop(lim: BenchLimiter, m: Redis, req: Extract<Request, { t: "loop" }>, state: { stop: boolean }): Promise<LoopReply> {
  const grants: number[] = [];
  const acquireStarts: number[] = [];
  const releases: number[] = [];
  let ops = 0;
  let maxHolders = 0;
  let overLimit = 0;
  let acquireErrors = 0;
  let firstError: string | undefined;
  resetSent();
  const faults0 = lim.faults() + escaped;
  const cpu0 = process.cpuUsage();
  const caller = async () => {
    while (!state.stop) {
      const startedAt = now();
      let release: Release;
      try {
        release = await lim.acquire();
      } catch (error) {
        // E.g. bottleneck failing every job with UNKNOWN_CLIENT once a skewed client evicted this one.
        acquireErrors++;
        firstError ??= String(error).split("\n")[0];
        await sleep(1);
        continue;
      }
      if (req.mode === "handoff") {
        grants.push(now());
        acquireStarts.push(startedAt);
        await sleep(req.holdMs);
        releases.push(now());
        await release();
      } else {
        // Holders right now, counted in Redis on a key of our own: INCR on entry, DECR on exit.
        const holders = await m.incr(req.counterKey);
        if (holders > maxHolders) maxHolders = holders;
        if (holders > req.limit) overLimit++;
        await sleep(req.holdMs);
        await m.decr(req.counterKey);
        await release();
      }
      ops++;
    }
  };
  await Promise.all(Array.from({ length: req.callers }, caller));
  const cpu = process.cpuUsage(cpu0);
  return {
    ops,
    grants,
    acquireStarts,
    releases,
    maxHolders,
    overLimit,
    cpuMs: (cpu.user + cpu.system) / 1000,
    sent: sentSnapshot(),
    faults: lim.faults() + escaped - faults0,
    acquireErrors,
    firstError: firstError ?? null,
  };
}

process.on("message", (message: RequestMessage) => {
  handle(message).then(
    (data) => send({ id: message.id, ok: true, data }),
    (error: unknown) => send({ id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
send({ ev: "ready" });
