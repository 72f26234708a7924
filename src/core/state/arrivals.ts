/**
 * Queued tickets in arrival order (by seq), oldest first: the order CoDel drops them in (rule D).
 * A doubly linked list, since arrivals only ever join at the end and leave from anywhere: O(1)
 * both ways, where a heap would cost O(log n) on every enqueue and grant. Kept only under `codel`.
 */

export interface ArrivalEntry<T> {
  /** Neighbours in the list; both undefined and not the head when not in it. Owned by the list. */
  older: T | undefined;
  newer: T | undefined;
}

export class ArrivalList<T extends ArrivalEntry<T>> {
  #oldest: T | undefined;
  #newest: T | undefined;

  peek(): T | undefined {
    return this.#oldest;
  }

  /** Appends `item`, which must have arrived after every item in the list. */
  push(item: T): void {
    item.older = this.#newest;
    item.newer = undefined;
    if (this.#newest) this.#newest.newer = item;
    else this.#oldest = item;
    this.#newest = item;
  }

  /** Removes `item` if it is in the list. */
  remove(item: T): void {
    if (item.older === undefined && this.#oldest !== item) return;
    if (item.older) item.older.newer = item.newer;
    else this.#oldest = item.newer;
    if (item.newer) item.newer.older = item.older;
    else this.#newest = item.older;
    item.older = item.newer = undefined;
  }
}
