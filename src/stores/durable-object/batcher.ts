/**
 * Collects the calls one transport makes in one turn of the event loop and hands them over
 * together, in the order they were made, at the end of that turn: the transport sends a run of
 * one as the plain call, and a longer run as one batch (`batch-protocol.ts`).
 *
 * The end of the turn is `setImmediate` where the runtime has it (Node: right after the I/O that
 * woke the callers, so a lone call waits microseconds). Elsewhere (Workers) it is the end of the
 * turn's microtasks, give or take: {@link MICROTASK_ROUNDS} trips through the microtask queue,
 * each of which first runs everything queued before it. Callers woken by one answer (the replies
 * of one batch) advance through their promise chains in lockstep, so they all make their next
 * call within a few rounds; a zero-delay timer would instead make every lone call wait for a trip
 * through the event loop. A run reaching `max` calls is handed over at once.
 */

/** A call waiting for the end of its turn. */
export interface Pending<Op> {
  readonly op: Op;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Schedule = (run: () => void) => void;

/** How many times a Worker's flush goes to the back of the microtask queue before it runs. */
export const MICROTASK_ROUNDS = 8;

const afterMicrotasks = (run: () => void, rounds: number): void => queueMicrotask(() => (rounds <= 1 ? run() : afterMicrotasks(run, rounds - 1)));
const immediate = (globalThis as { setImmediate?: (run: () => void) => unknown }).setImmediate;
const endOfTurn: Schedule = typeof immediate === "function" ? (run) => void immediate(run) : (run) => afterMicrotasks(run, MICROTASK_ROUNDS);

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
