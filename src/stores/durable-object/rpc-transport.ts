/**
 * The RPC transport: a group's `SlotGroup` object through a Durable Object stub, for code that
 * runs inside Workers. The stub is structural ({@link SlotGroupRpc}), so this module imports
 * nothing from `cloudflare:*`: the namespace binding of the class fits it as is.
 *
 * - Batching: the calls a handle makes in one turn of the event loop leave together at its end
 *   (`core/batcher.ts`): one call alone as itself, several as one `batch` RPC, which the object applies
 *   in order in one atomic step (`batch-protocol.ts`). An acquire the batch queued is then one
 *   pending `wait` call. So 64 callers that release in the same turn cost one RPC, and a lone call
 *   costs what it did (a stub without `batch`, such as a test double, gets the calls one by one).
 * - Order: every call of a handle goes out on one stub, in the order made, and stubs keep that
 *   order (E-order), so a release followed at once by an acquire reaches the object in that order;
 *   a cancel leaves after its acquire, so it arrives after it. (The object also copes with a
 *   cancel that overtakes its acquire, after a reconnect.)
 * - Faults: a failed call becomes `SLOTGATE_STORE_UNAVAILABLE` ({@link storeFault}), whose
 *   `retryable` follows the runtime's flags. The stub is rebuilt after every fault, because a
 *   disconnected stub fails every later call. A queued acquire whose call broke (the object
 *   restarted, so its ticket is gone) rejects with a retryable fault.
 * - No connection to make: the first call simply reaches the object, so there is no cold start,
 *   and no timeout of its own (a call to a restarted object breaks).
 */
import { SlotgateError } from "../../core/errors.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { ChainRequest, RenewResult, StoreAcquireResult } from "../../core/store.js";
import { isPlainObject } from "../../core/validate.js";
import { Batcher, type Pending } from "../../core/batcher.js";
import { MAX_BATCH_OPS, callAlone, isQueued, type BatchOp } from "./batch-protocol.js";
import type { AcquireCall, Transport } from "./client.js";
import type { Reply, SlotGroupBatchRpc, SlotGroupRpc } from "./protocol.js";

/**
 * The part of a Durable Object namespace binding the RPC transport uses. Pass the binding of the
 * `SlotGroup` class as is (`env.SLOT_GROUP`).
 */
export interface SlotGroupNamespace {
  idFromName(name: string): DurableObjectIdLike;
  get(id: DurableObjectIdLike): SlotGroupRpc;
}

/** A Durable Object id, as far as this store cares. */
export interface DurableObjectIdLike {
  toString(): string;
}

/** What the runtime puts on the errors of a failed Durable Object call. */
interface RpcErrorFlags {
  message?: unknown;
  retryable?: unknown;
  overloaded?: unknown;
  remote?: unknown;
  durableObjectReset?: unknown;
}

/**
 * Wraps a failed call as a store fault. Idempotent calls may be tried again when the runtime
 * marks the error `retryable` or the object was reset, never when it is `overloaded`. For an
 * acquire, the ticket is gone if it was ever queued: asking again is the caller's choice, so the
 * fault is retryable unless the object is overloaded or its own code threw.
 */
export function storeFault(op: string, error: unknown): SlotgateError {
  if (error instanceof SlotgateError) return error;
  const e = (typeof error === "object" && error !== null ? error : {}) as RpcErrorFlags;
  const overloaded = e.overloaded === true;
  const reset = e.durableObjectReset === true;
  const retryable = !overloaded && (op === "acquire" ? reset || e.remote !== true : reset || e.retryable === true);
  const detail = typeof e.message === "string" ? e.message : String(error);
  const what = op === "acquire" ? "acquire failed (a queued ticket is gone)" : `${op} failed`;
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `Durable Object ${what}: ${detail}${overloaded ? " (overloaded)" : ""}`, { cause: error, retryable });
}

const same = <T>(value: T): T => value;

/** One handle's stub on one group's object. Signals are ignored: an RPC call cannot be stopped. */
export class RpcTransport implements Transport {
  readonly answered = true;
  readonly #connect: () => SlotGroupRpc;
  #stub: SlotGroupRpc | undefined;
  readonly #batcher = new Batcher<BatchOp>(
    { one: (op) => this.#send(op.op, (stub) => callAlone(stub, op)), many: (run) => this.#many(run) },
    { max: MAX_BATCH_OPS, fault: (op, error) => storeFault(op.op, error) },
  );

  constructor(connect: () => SlotGroupRpc) {
    this.#connect = connect;
  }

  acquire(request: ChainRequest, waiterId: string): AcquireCall {
    const reply = this.#batcher.add<Reply<StoreAcquireResult>>({ op: "acquire", request, waiterId });
    // Behind the acquire on the same stub, so it arrives second (E-order); a retry on the current stub.
    return { reply, cancel: () => this.#batcher.add<Reply<boolean>>({ op: "cancel", waiterId }) };
  }

  release(leaseId: string): Promise<Reply<boolean>> {
    return this.#batcher.add({ op: "release", leaseId });
  }

  renew(leaseId: string, ttlMs: number): Promise<Reply<RenewResult>> {
    return this.#batcher.add({ op: "renew", leaseId, ttlMs });
  }

  configure(spec: GroupSpec, version: number | null): Promise<Reply<unknown>> {
    // Alone: a spec can be large, and it is pushed rarely.
    this.#batcher.flush();
    const op: BatchOp = { op: "configure", spec, version };
    return this.#send(op.op, (stub) => callAlone(stub, op));
  }

  setServerState(backend: string, server: string, up: boolean): Promise<Reply<null>> {
    return this.#batcher.add({ op: "setServerState", backend, server, up });
  }

  stats(): Promise<Reply<GroupStatsSnapshot>> {
    return this.#batcher.add({ op: "stats" });
  }

  /**
   * Sends a run of calls on the current stub as one `batch` (or one by one to a stub without it).
   * A queued acquire's outcome is then collected with `wait`, on the stub of its batch.
   */
  #many(run: readonly Pending<BatchOp>[]): Promise<void> {
    const stub = this.#current();
    const batching = stub as Partial<SlotGroupBatchRpc>;
    if (typeof batching.batch !== "function") {
      for (const p of run) this.#send(p.op.op, () => callAlone(stub, p.op), stub).then(p.resolve, p.reject);
      return Promise.resolve();
    }
    return Promise.resolve(this.#raw(stub, () => batching.batch!(run.map((p) => p.op)))).then((reply) => {
      const replies = reply.status === 0 && Array.isArray(reply.value) && reply.value.length === run.length ? reply.value : undefined;
      run.forEach((p, i) => {
        // A refusal of the whole batch is each op's answer; a malformed one, each op's unreadable answer.
        const answer = replies === undefined ? (reply.status === 0 ? undefined : reply) : replies[i];
        if (p.op.op === "acquire" && isQueuedReply(answer)) p.resolve(this.#wait(stub, p.op.waiterId));
        else p.resolve(answer);
      });
    });
  }

  /** The outcome of a ticket a batch queued: a pending call, like the acquire's own. */
  #wait(stub: SlotGroupRpc, waiterId: string): Promise<Reply<unknown>> {
    const batching = stub as Partial<SlotGroupBatchRpc>;
    if (typeof batching.wait !== "function") return Promise.reject(storeFault("acquire", new Error("the object queued a ticket but has no wait method")));
    return this.#send("acquire", () => batching.wait!(waiterId), stub);
  }

  #current(): SlotGroupRpc {
    return (this.#stub ??= this.#connect());
  }

  /** One call, sent at once on `on` or the current stub; a fault drops that stub and rejects coded. */
  #send<T>(op: string, call: (stub: SlotGroupRpc) => Promise<Reply<T>>, on?: SlotGroupRpc): Promise<Reply<T>> {
    let stub: SlotGroupRpc;
    try {
      stub = on ?? this.#current();
    } catch (error) {
      return Promise.reject(storeFault(op, error));
    }
    return this.#raw(stub, call).catch((error: unknown) => {
      throw storeFault(op, error);
    });
  }

  /** `call` on `stub`; a fault drops the stub (a disconnected stub fails every later call) and rejects as the runtime did. */
  #raw<T>(stub: SlotGroupRpc, call: (stub: SlotGroupRpc) => Promise<T>): Promise<T> {
    let sent: Promise<T>;
    try {
      sent = call(stub);
    } catch (error) {
      sent = Promise.reject(error);
    }
    // (Both handlers: a stub's call is an RPC promise, whose `then` takes no placeholder.)
    return sent.then(same, (error: unknown) => {
      if (this.#stub === stub) this.#stub = undefined;
      throw error;
    });
  }
}

function isQueuedReply(reply: unknown): boolean {
  return isPlainObject(reply) && reply.status === 0 && isQueued(reply.value);
}
