/**
 * Collects the calls one transport makes in one turn of the event loop and hands them over
 * together, in the order they were made, at the end of that turn: the transport sends a run of
 * one as the plain call, and a longer run as one batch (`batch-protocol.ts`). A call made while
 * no other is open (queued, or sent and not yet answered) goes at once instead: so a lone caller
 * pays nothing for batching, not even the end of the turn (measured: a Worker's lone caller ran
 * 0.7–0.9× the unbatched pairs/s when every call waited for a timer).
 *
 * The end of the turn is `setImmediate` where the runtime has it (Node: right after the I/O that
 * woke the callers, so a lone call waits microseconds), elsewhere (Workers) a zero-delay
 * `setTimeout`. A timer rather than the end of the microtask queue, measured: answers that arrive
 * as separate events close together (the `wait`s of queued acquires) then share a batch, and a
 * Worker's contended loop ran 3.1× the unbatched pairs/s this way against 0.8× with a flush after
 * eight microtask rounds (one run each, on a loaded 2-core machine), with no better latency for a
 * lone caller either. A run reaching `max` calls is handed over at once.
 */

/** A call waiting for the end of its turn. */
export interface Pending<Op> {
  readonly op: Op;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Schedule = (run: () => void) => void;

const immediate = (globalThis as { setImmediate?: (run: () => void) => unknown }).setImmediate;
const endOfTurn: Schedule = typeof immediate === "function" ? (run) => void immediate(run) : (run) => void setTimeout(run, 0);

export class Batcher<Op> {
  readonly #send: (run: Pending<Op>[]) => void;
  readonly #max: number;
  #queue: Pending<Op>[] = [];
  #scheduled = false;
  /** Calls added and not yet settled, queued or sent. */
  #open = 0;

  /** `send` gets every run of calls, in order, each call to be settled by it. */
  constructor(send: (run: Pending<Op>[]) => void, max: number) {
    this.#send = send;
    this.#max = max;
  }

  /**
   * Queues one call for the end of this turn; settles with what `send` settles it with. A call
   * made while none is open goes at once, alone: a lone caller never waits for company, and the
   * calls that follow it in the same turn (if any) share the next batch.
   */
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
        endOfTurn(() => {
          this.#scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Hands over the calls queued so far (a call that must go alone flushes first). */
  flush(): void {
    if (this.#queue.length === 0) return;
    const run = this.#queue;
    this.#queue = [];
    this.#send(run);
  }
}
