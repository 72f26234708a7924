/**
 * Fair queuing by flow (rule F, docs/semantics.md): start-time fair queuing with integer tags.
 * Within a priority class, tickets are ordered by their tag (order.ts), so with every flow
 * backlogged each is served in proportion to its weight, whatever its number of waiting tickets.
 *
 * Only flows with tickets in the queue have an entry, so a hostile stream of flow names can grow
 * this state no further than the queue itself. The Redis scripts mirror every step with the same
 * integers.
 */

/** A flow's cost per ticket is this divided by its weight, rounded down. */
export const FLOW_COST_UNIT = 1_000_000;

/**
 * The flow that tickets without a flow share while a named flow waits, so that together they get
 * one flow's share. No caller can name it: a flow name has at least one character.
 */
export const DEFAULT_FLOW = "";

/**
 * No tag goes above this: far below 2^53 (exact integers) and below the 10^16 and 127^8 the Redis
 * scripts' order encodings hold.
 */
export const MAX_TAG = 2 ** 50;

export interface FlowEntry {
  /** Finish tag of the flow's last queued ticket. */
  finish: number;
  /** Its tickets in the queue (> 0 while the entry exists). */
  waiting: number;
  /** Its tickets granted from the queue since the entry was made. */
  granted: number;
}

export class FairQueue {
  /** Virtual time: the largest tag granted from the queue since it was last empty. */
  virtualTime = 0;
  readonly flows = new Map<string, FlowEntry>();

  /**
   * The flow a ticket queues under: its own; without one, the default flow while any named flow
   * has an entry, else none (a flow of its own, never backlogged: the order without flows).
   */
  flowOf(flow: string | undefined): string | undefined {
    if (flow !== undefined) return flow;
    const named = this.flows.size - (this.flows.has(DEFAULT_FLOW) ? 1 : 0);
    return named > 0 ? DEFAULT_FLOW : undefined;
  }

  /** The tag of a ticket entering the queue under `flow` (as {@link flowOf} chose it). */
  enter(flow: string | undefined, weight: number): number {
    const v = this.virtualTime;
    if (flow === undefined) return v;
    const cost = Math.floor(FLOW_COST_UNIT / weight);
    const entry = this.flows.get(flow);
    // Never charged more than its backlog (and the ticket in service) ahead of virtual time:
    // tickets that left ungranted give their cost back. A flow served in order has its first
    // waiting tag at most V + cost, so this bites only after such departures.
    let tag = entry === undefined ? v : Math.max(v, Math.min(entry.finish, v + (entry.waiting + 1) * cost));
    // The hard bound: past it, arrival order within the class until the queue empties.
    const capped = tag + cost > MAX_TAG;
    if (capped) tag = v;
    if (entry === undefined) {
      this.flows.set(flow, { finish: capped ? tag : tag + cost, waiting: 1, granted: 0 });
    } else {
      if (!capped) entry.finish = tag + cost;
      entry.waiting++;
    }
    return tag;
  }

  /** A ticket of `flow` (the flow it entered under) left the queue, by any road; `granted` when it was granted. */
  leave(flow: string | undefined, granted: boolean): void {
    if (flow === undefined) return;
    const entry = this.flows.get(flow);
    if (entry === undefined) return;
    if (granted) entry.granted++;
    if (--entry.waiting === 0) this.flows.delete(flow);
  }

  /** A ticket with `tag` was granted from the queue. */
  served(tag: number): void {
    if (tag > this.virtualTime) this.virtualTime = tag;
  }

  /** The queue is empty: virtual time starts again at 0 (no flow has an entry then). */
  emptied(): void {
    this.virtualTime = 0;
  }
}
