/**
 * Collects the calls one transport makes in one turn of the event loop and hands them over
 * together, in the order they were made, at the end of that turn: the transport sends a run of
 * one as the plain call, and a longer run as one batch (`batch-protocol.ts`).
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

  /** `send` gets every run of calls, in order, each call to be settled by it. */
  constructor(send: (run: Pending<Op>[]) => void, max: number) {
    this.#send = send;
    this.#max = max;
  }

  /** Queues one call for the end of this turn; settles with what `send` settles it with. */
  add<T>(op: Op): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
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

  /** Hands over the calls queued so far (a call that must not wait, or must go alone, flushes first). */
  flush(): void {
    if (this.#queue.length === 0) return;
    const run = this.#queue;
    this.#queue = [];
    this.#send(run);
  }
}
