// Parent side of ./redis-worker.ts: starts edge nodes as real child processes and talks to
// them over IPC. Every node is killed when the test process exits, and a node exits on its own
// when its parent's IPC channel closes.

import { fork, type ChildProcess } from "node:child_process";
import { setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import type { Command, Results, WorkerConfig, WorkerEvent, WorkerReply } from "./redis-worker-protocol.js";

const WORKER = fileURLToPath(new URL("./redis-worker.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const READY_TIMEOUT_MS = 30_000;
/**
 * Nodes generate load that would starve the timing-sensitive tests other files run at the same
 * time on a small machine (real-time conformance runs in units of 60 ms). At this niceness they
 * get the CPU those leave over: throughput drops when the machine is busy, timing does not.
 */
export const NODE_NICENESS = 10;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Grant {
  at: number;
  fence: number;
}

const live = new Set<FleetNode>();
let hooked = false;

export class FleetNode {
  readonly pid: number;
  /** Grants of `wait` acquires, in the order they were reported. */
  readonly grants: Grant[] = [];
  /** Reasons of `wait` acquires that ended without a grant. */
  readonly waitEnded: string[] = [];
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  #output = "";
  #nextId = 0;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; cmd: string }>();
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.pid = child.pid!;
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString("utf8")).slice(-16_384);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise<Exit>((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exit = { code, signal };
        live.delete(this);
        for (const p of this.#pending.values()) p.reject(new Error(`node ${this.pid} exited (${code ?? signal}) during ${p.cmd}\n${this.#output}`));
        this.#pending.clear();
        resolve(this.#exit);
      });
    });
    child.on("message", (message: WorkerReply | WorkerEvent) => {
      if ("event" in message) {
        if (message.event === "granted") this.grants.push({ at: message.at, fence: message.fence });
        else if (message.event === "wait-ended") this.waitEnded.push(message.reason);
        return;
      }
      const p = this.#pending.get(message.id);
      if (!p) return;
      this.#pending.delete(message.id);
      if (message.ok) p.resolve(message.result);
      else p.reject(new Error(`node ${this.pid}: ${p.cmd} failed: ${message.error}`));
    });
  }

  /** `niceness`: CPU priority of the node process, NODE_NICENESS by default (see there). */
  static async start(config: WorkerConfig, niceness = NODE_NICENESS): Promise<FleetNode> {
    if (!hooked) {
      hooked = true;
      process.on("exit", () => {
        for (const node of live) node.#child.kill("SIGKILL");
      });
    }
    // `node --import tsx`: the worker is this process itself, no tsx wrapper in between.
    const child = fork(WORKER, [JSON.stringify(config)], { cwd: ROOT, execArgv: ["--import", "tsx"], silent: true });
    const node = new FleetNode(child);
    live.add(node);
    try {
      if (niceness !== 0) setPriority(node.pid, niceness);
    } catch {
      // Not permitted here: run at normal priority.
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`node did not start within ${READY_TIMEOUT_MS} ms\n${node.#output}`));
      }, READY_TIMEOUT_MS);
      const onMessage = (message: WorkerEvent | WorkerReply) => {
        if (!("event" in message) || message.event !== "ready") return;
        clearTimeout(timer);
        child.off("message", onMessage);
        resolve();
      };
      child.on("message", onMessage);
      void node.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`node exited during start-up (${exit.code ?? exit.signal})\n${node.#output}`));
      });
    });
    return node;
  }

  /** Still running (has not exited or been killed). */
  get alive(): boolean {
    return this.#exit === undefined;
  }

  /** The tail of the node's stdout and stderr, for failure messages. */
  output(): string {
    return this.#output;
  }

  request<C extends Command>(command: C): Promise<Results[C["cmd"]]> {
    if (!this.alive) return Promise.reject(new Error(`node ${this.pid} is not running\n${this.#output}`));
    const id = ++this.#nextId;
    return new Promise<Results[C["cmd"]]>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, cmd: command.cmd });
      this.#child.send({ ...command, id }, (error) => {
        if (!error) return;
        this.#pending.delete(id);
        reject(error);
      });
    });
  }

  /** SIGKILL: no clean-up, no release; resolves once the process is gone. */
  async kill9(): Promise<Exit> {
    if (this.alive) this.#child.kill("SIGKILL");
    return this.exited;
  }

  /** Asks the node to close its guard and exit; resolves with how it exited. */
  async exit(timeoutMs = 10_000): Promise<Exit> {
    if (!this.alive) return this.exited;
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), timeoutMs);
    await this.request({ cmd: "exit" }).catch(() => undefined);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** Starts `count` nodes with the same config, in parallel. */
export async function startFleet(count: number, config: WorkerConfig, niceness = NODE_NICENESS): Promise<FleetNode[]> {
  const started = await Promise.allSettled(Array.from({ length: count }, () => FleetNode.start(config, niceness)));
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(nodes.map((n) => n.kill9()));
    throw failed.reason;
  }
  return nodes;
}

/** Kills every node still running (for afterAll/afterEach after a failed test). */
export async function killAllNodes(): Promise<void> {
  await Promise.all([...live].map((node) => node.kill9()));
}

/** Polls `check` until it returns true; throws `what` (with the last value seen) after `timeoutMs`. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 50): Promise<number> {
  const startedAt = Date.now();
  for (;;) {
    if (await check()) return Date.now() - startedAt;
    if (Date.now() - startedAt > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** `total` split into `parts` near-equal integers. */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}
