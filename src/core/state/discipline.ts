/**
 * The queue disciplines of rule D (docs/semantics.md): the standing-queue detector that `codel`
 * and `lifo` share, after Facebook's "Fail at Scale": the queue stands when, at every grant from
 * it for a whole interval, its oldest ticket had waited at least the target. (The oldest, not the
 * one granted: newest-first grants short waits by design, and must not end the standing queue
 * they serve.) `fifo` keeps none of this state. What each discipline then does lives in the state machine's dispatch (lifo) and
 * settling of deadlines (codel); this file only answers when.
 */
import { QUEUE_DEFAULTS, type Discipline, type QueueSpec } from "../spec.js";

export class StandingDetector {
  discipline: Discipline = QUEUE_DEFAULTS.discipline;
  targetMs: number = QUEUE_DEFAULTS.targetMs;
  intervalMs: number = QUEUE_DEFAULTS.intervalMs;
  /** Since when (store clock) every ticket granted from the queue waited at least the target; undefined: not above. */
  aboveSince: number | undefined = undefined;

  configure(queue: QueueSpec | undefined): void {
    this.discipline = queue?.discipline ?? QUEUE_DEFAULTS.discipline;
    this.targetMs = queue?.targetMs ?? QUEUE_DEFAULTS.targetMs;
    this.intervalMs = queue?.intervalMs ?? QUEUE_DEFAULTS.intervalMs;
    if (this.discipline === "fifo") this.aboveSince = undefined;
  }

  /** A ticket was granted from the queue at `now`, when its oldest ticket had waited `sojournMs`. */
  served(sojournMs: number, now: number): void {
    if (this.discipline === "fifo") return;
    if (sojournMs < this.targetMs) this.aboveSince = undefined;
    else this.aboveSince ??= now;
  }

  /** The group's queue became empty. */
  emptied(): void {
    this.aboveSince = undefined;
  }

  /** Whether the queue stands at time `t`. */
  standing(t: number): boolean {
    return this.aboveSince !== undefined && t >= this.aboveSince + this.intervalMs;
  }

  /**
   * Under codel, when the oldest queued ticket (enqueued at `enqueuedAt`) is to be dropped if
   * nothing changes before: once the queue stands and the ticket has waited the target. Undefined
   * when no drop is due (not codel, or the wait is not above the target).
   */
  dropAt(enqueuedAt: number): number | undefined {
    if (this.discipline !== "codel" || this.aboveSince === undefined) return undefined;
    return Math.max(this.aboveSince + this.intervalMs, enqueuedAt + this.targetMs);
  }
}
