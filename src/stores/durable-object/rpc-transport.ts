/**
 * The RPC transport: a group's `SlotGroup` object through a Durable Object stub, for code that
 * runs inside Workers. The stub is structural ({@link SlotGroupRpc}), so this module imports
 * nothing from `cloudflare:*`: the namespace binding of the class fits it as is.
 *
 * - Order: every call of a handle goes out on one stub, and stubs keep that order (E-order), so a
 *   release followed at once by an acquire reaches the object in that order; a cancel goes on the
 *   stub its acquire went on, so it arrives after it. (The object also copes with a cancel that
 *   overtakes its acquire, after a reconnect.)
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
import type { ChainRequest, RenewResult } from "../../core/store.js";
import type { AcquireCall, Transport } from "./client.js";
import type { Reply, SlotGroupRpc } from "./protocol.js";

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

  constructor(connect: () => SlotGroupRpc) {
    this.#connect = connect;
  }

  acquire(request: ChainRequest, waiterId: string): AcquireCall {
    let on: SlotGroupRpc | undefined;
    const reply = this.#send("acquire", (stub) => ((on = stub), stub.acquire(request, waiterId)));
    return {
      reply,
      cancel: () => {
        // The first on the acquire's stub, so that it arrives second; a retry on the current stub.
        const via = on;
        on = undefined;
        return this.#send("cancel", (stub) => stub.cancel(waiterId), via);
      },
    };
  }

  release(leaseId: string): Promise<Reply<boolean>> {
    return this.#send("release", (stub) => stub.release(leaseId));
  }

  renew(leaseId: string, ttlMs: number): Promise<Reply<RenewResult>> {
    return this.#send("renew", (stub) => stub.renew(leaseId, ttlMs));
  }

  configure(spec: GroupSpec, version: number | null): Promise<Reply<unknown>> {
    return this.#send("configure", (stub) => stub.configure(spec, version));
  }

  setServerState(backend: string, server: string, up: boolean): Promise<Reply<null>> {
    return this.#send("setServerState", (stub) => stub.setServerState(backend, server, up));
  }

  stats(): Promise<Reply<GroupStatsSnapshot>> {
    return this.#send("stats", (stub) => stub.stats());
  }

  /** One call, sent at once on `on` or the current stub; a fault drops that stub and rejects coded. */
  #send<T>(op: string, call: (stub: SlotGroupRpc) => Promise<Reply<T>>, on?: SlotGroupRpc): Promise<Reply<T>> {
    let stub: SlotGroupRpc | undefined;
    let sent: Promise<Reply<T>>;
    try {
      stub = on ?? (this.#stub ??= this.#connect());
      sent = call(stub);
    } catch (error) {
      sent = Promise.reject(error);
    }
    // (Both handlers: a stub's call is an RPC promise, whose `then` takes no placeholder.)
    return sent.then(same, (error: unknown) => {
      // Forgets a stub that failed, so the next call builds a new one.
      if (stub !== undefined && this.#stub === stub) this.#stub = undefined;
      throw storeFault(op, error);
    });
  }
}
