/**
 * Queue order of SPEC §2 rule 4 (HAProxy's set-priority-class / set-priority-offset): priority
 * class first (lower first), then the fair-queuing tag (rule F, fairness.ts: 0 for every ticket
 * while no ticket names a flow), then arrival time shifted by the offset (lower first), then
 * arrival order. Unlike HAProxy we keep the full timestamp, so there is no 17-minute wrap-around.
 *
 * Adaptive LIFO (rule D) serves a standing queue newest-first among tickets of equal class and
 * tag: {@link compareNewestFirst} keeps the class and tag order and reverses the rest.
 */

export const PRIORITY_CLASS_MIN = -2047;
export const PRIORITY_CLASS_MAX = 2047;
export const PRIORITY_OFFSET_MIN_MS = -524_287;
export const PRIORITY_OFFSET_MAX_MS = 524_287;

export interface OrderKey {
  /** Priority class. */
  cls: number;
  /** Fair-queuing start tag (rule F): an integer, at most 2^50 (fairness.ts, MAX_TAG). */
  tag: number;
  /** Arrival on the store clock plus the priority offset, in ms. */
  at: number;
  /** Arrival order within the group, strictly increasing. */
  seq: number;
}

export function compareOrder(a: OrderKey, b: OrderKey): number {
  return a.cls - b.cls || a.tag - b.tag || a.at - b.at || a.seq - b.seq;
}

/** Lower class first, then lower tag (fair order across flows); among equal tags, the newest first. */
export function compareNewestFirst(a: OrderKey, b: OrderKey): number {
  return a.cls - b.cls || a.tag - b.tag || b.at - a.at || b.seq - a.seq;
}
