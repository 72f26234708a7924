/**
 * Queue order of SPEC §2 rule 4 (HAProxy's set-priority-class / set-priority-offset): priority
 * class first (lower first), then arrival time shifted by the offset (lower first), then arrival
 * order. Unlike HAProxy we keep the full timestamp, so there is no 17-minute wrap-around.
 */

export const PRIORITY_CLASS_MIN = -2047;
export const PRIORITY_CLASS_MAX = 2047;
export const PRIORITY_OFFSET_MIN_MS = -524_287;
export const PRIORITY_OFFSET_MAX_MS = 524_287;

export interface OrderKey {
  /** Priority class. */
  cls: number;
  /** Arrival on the store clock plus the priority offset, in ms. */
  at: number;
  /** Arrival order within the group, strictly increasing. */
  seq: number;
}

export function compareOrder(a: OrderKey, b: OrderKey): number {
  return a.cls - b.cls || a.at - b.at || a.seq - b.seq;
}
