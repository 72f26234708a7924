/**
 * Lease renewal for a whole guard on one timer. A timer per lease would cost a Timeout object,
 * a timer-list insert and a clear on every acquire; here a lease is one heap entry, and the timer
 * moves only when the earliest renewal moves earlier (new leases usually come due later).
 */
import { DeadlineHeap, type HeapEntry } from "./state/heap.js";
import { unrefTimer } from "./timers.js";

export interface RenewalEntry extends HeapEntry {
  /** Called when due (after leaving the schedule); the callee schedules itself again if needed. */
  run(): void;
}

export class RenewalSchedule {
  readonly #heap = new DeadlineHeap<RenewalEntry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  schedule(entry: RenewalEntry, at: number): void {
    entry.deadline = at;
    this.#heap.update(entry);
    if (at < this.#timerAt) this.#arm(at);
  }

  cancel(entry: RenewalEntry): void {
    // The timer stays: when it fires with nothing due it re-arms for the new head (or stops).
    this.#heap.remove(entry);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
    // Renewal alone must not keep a process alive.
    unrefTimer(this.#timer);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    for (let head = this.#heap.peek(); head !== undefined && head.deadline <= now; head = this.#heap.peek()) {
      this.#heap.remove(head);
      head.run();
    }
    const next = this.#heap.peek();
    if (next !== undefined && next.deadline < this.#timerAt) this.#arm(next.deadline);
  }
}
