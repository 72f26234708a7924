/**
 * The batching rule every store shares: how the calls one client makes to one group's state are
 * grouped into calls of the store's transport. How a run of calls is sent (a Redis script, a
 * Durable Object RPC or HTTP request) stays with each store.
 *
 * - A call made while none of this batcher's calls is open (queued, or sent and not yet settled)
 *   goes at once, alone (`one`): a lone caller pays nothing for batching, not even the end of the
 *   turn (measured: a Worker's lone caller ran 0.7–0.9× the unbatched pairs/s when every call
 *   waited for a timer).
 * - A call made while one is open waits for the end of the current turn of the event loop; then
 *   all that waits goes out together (`many`), in the order the calls were made. A run reaching
 *   `max` calls goes at once, so no call carries more than `max` ops.
 * - A call that cannot join a batch flushes first (`flush`), so calls reach the store in the order
 *   they were made.
 * - Each op gets its own result or error; a fault of the whole call fails each op it left unsettled.
 *
 * The end of the turn is `setImmediate` where the runtime has it (Node: after the I/O callbacks
 * and promise jobs of this turn, so a lone call waits microseconds and a burst of replies that
 * each lead to a new call makes one batch), elsewhere (Workers) a zero-delay `setTimeout`. A timer
 * rather than the end of the microtask queue, measured: answers that arrive as separate events
 * close together (the `wait`s of queued acquires) then share a batch, and a Worker's contended
 * loop ran 3.1× the unbatched pairs/s this way against 0.8× with a flush after eight microtask
 * rounds, with no better latency for a lone caller either.
 */

/** A call waiting to be sent in a run; whoever sends the run settles it (a second settle is ignored). */
export interface Pending<Op> {
  readonly op: Op;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** How one store sends calls: its transport-specific part. */
export interface BatchSender<Op> {
  /** Sends one call as itself; what it settles with is the call's outcome. */
  one(op: Op): Promise<unknown>;
  /**
   * Sends a run of two or more calls as one, settling each. A throw or a rejection of what it
   * returns is a fault of the whole call: every call of the run it left unsettled fails with it.
   */
  many(run: readonly Pending<Op>[]): Promise<unknown> | void;
}

/** Runs `run` once, at the end of the current turn of the event loop. */
export type EndOfTurn = (run: () => void) => void;

export interface BatcherOptions<Op> {
  /** The most calls in one run. */
  readonly max: number;
  /** Defaults to `setImmediate` where the runtime has it, else a zero-delay `setTimeout`. */
  readonly endOfTurn?: EndOfTurn;
  /** What a call of a run sees when the whole run faulted (default: the fault itself). */
  readonly fault?: (op: Op, error: unknown) => unknown;
}

const immediate = (globalThis as { setImmediate?: (run: () => void) => unknown }).setImmediate;
const defaultEndOfTurn: EndOfTurn = typeof immediate === "function" ? (run) => void immediate(run) : (run) => void setTimeout(run, 0);

export class Batcher<Op> {
  readonly #sender: BatchSender<Op>;
  readonly #max: number;
  readonly #endOfTurn: EndOfTurn;
  readonly #fault: (op: Op, error: unknown) => unknown;
  #queue: Pending<Op>[] = [];
  #scheduled = false;
  /** Calls added and not yet settled, queued or sent. */
  #open = 0;

  constructor(sender: BatchSender<Op>, options: BatcherOptions<Op>) {
    if (!Number.isInteger(options.max) || options.max < 1) throw new RangeError(`batcher: max must be a positive integer, got ${String(options.max)}`);
    this.#sender = sender;
    this.#max = options.max;
    this.#endOfTurn = options.endOfTurn ?? defaultEndOfTurn;
    this.#fault = options.fault ?? ((_op, error) => error);
  }

  /** Calls added and not yet settled. */
  get open(): number {
    return this.#open;
  }

  /** Sends `op` alone now, or with the others of this turn at its end; settles with its own outcome. */
  add<T>(op: Op): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const close = () => {
        if (settled) return false;
        settled = true;
        this.#open--;
        return true;
      };
      const call: Pending<Op> = {
        op,
        resolve: (value) => void (close() && resolve(value as T)),
        reject: (error) => void (close() && reject(error)),
      };
      this.#open++;
      if (this.#open === 1) return this.#send([call]);
      this.#queue.push(call);
      if (this.#queue.length >= this.#max) this.flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        this.#endOfTurn(() => {
          this.#scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Sends what waits, now (a call that cannot join a batch flushes first, to keep the order). */
  flush(): void {
    while (this.#queue.length > 0) this.#send(this.#queue.splice(0, this.#max));
  }

  #send(run: Pending<Op>[]): void {
    if (run.length === 1) {
      const call = run[0]!;
      let sent: Promise<unknown>;
      try {
        sent = this.#sender.one(call.op);
      } catch (error) {
        sent = Promise.reject(error);
      }
      sent.then(call.resolve, call.reject);
      return;
    }
    const failAll = (error: unknown) => {
      for (const call of run) call.reject(this.#fault(call.op, error));
    };
    try {
      // (Through Promise.resolve: a thenable's `then`, like an RPC promise's, may take no placeholder.)
      Promise.resolve(this.#sender.many(run)).then(undefined, failAll);
    } catch (error) {
      failAll(error);
    }
  }
}
