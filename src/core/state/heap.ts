/**
 * Indexed binary min-heaps. Each record remembers its own position, so a released lease or a
 * cancelled ticket leaves its heap at once (O(log n)) and a renewed lease moves in place. Lazy
 * deletion would instead keep every released lease in the heap until its old expiry: at high
 * throughput, millions of dead entries.
 */
import { compareNewestFirst, compareOrder, type OrderKey } from "./order.js";

export interface HeapEntry {
  deadline: number;
  /** Position in the deadline heap, -1 when not in it. Owned by the heap. */
  heapIndex: number;
}

/** A heap whose subclass says how records compare and where a record keeps its position. */
abstract class IndexedHeap<T> {
  readonly #items: T[] = [];

  /** a goes before b. */
  protected abstract before(a: T, b: T): boolean;
  /** The record's position, -1 when not in the heap. */
  protected abstract position(item: T): number;
  protected abstract setPosition(item: T, i: number): void;

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const i = this.#items.length;
    this.#items.push(item);
    this.setPosition(item, i);
    this.#up(i);
  }

  /** Removes the item if it is in the heap. */
  remove(item: T): void {
    const i = this.position(item);
    const items = this.#items;
    if (i < 0 || items[i] !== item) return;
    const last = items.pop()!;
    this.setPosition(item, -1);
    if (last === item) return;
    items[i] = last;
    this.setPosition(last, i);
    this.#down(i);
    this.#up(this.position(last));
  }

  /** Call after changing how an item compares. */
  update(item: T): void {
    const i = this.position(item);
    if (i < 0) return this.push(item);
    this.#up(i);
    this.#down(this.position(item));
  }

  #up(i: number): void {
    const items = this.#items;
    const item = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (!this.before(item, p)) break;
      items[i] = p;
      this.setPosition(p, i);
      i = parent;
    }
    items[i] = item;
    this.setPosition(item, i);
  }

  #down(i: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.before(items[r]!, items[l]!) ? r : l;
      const child = items[c]!;
      if (!this.before(child, item)) break;
      items[i] = child;
      this.setPosition(child, i);
      i = c;
    }
    items[i] = item;
    this.setPosition(item, i);
  }
}

/** Records by `deadline`, earliest first: leases by expiry, tickets by queue timeout. */
export class DeadlineHeap<T extends HeapEntry> extends IndexedHeap<T> {
  protected before(a: T, b: T): boolean {
    return a.deadline < b.deadline;
  }
  protected position(item: T): number {
    return item.heapIndex;
  }
  protected setPosition(item: T, i: number): void {
    item.heapIndex = i;
  }
}

/**
 * Tickets by queue deadline; at the same deadline in arrival order, which is how the Redis scripts
 * settle them (key tdl: equal scores sort by ticket id, the padded arrival sequence).
 */
export class TicketDeadlineHeap<T extends HeapEntry & OrderKey> extends DeadlineHeap<T> {
  protected override before(a: T, b: T): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }
}

export interface OrderEntry extends OrderKey {
  /** Position in the order heap it waits in, -1 when in none. Owned by the heap. */
  orderIndex: number;
}

/** Records in queue order (SPEC §2 rule 4), first in order first. */
export class OrderHeap<T extends OrderEntry> extends IndexedHeap<T> {
  protected before(a: T, b: T): boolean {
    return compareOrder(a, b) < 0;
  }
  protected position(item: T): number {
    return item.orderIndex;
  }
  protected setPosition(item: T, i: number): void {
    item.orderIndex = i;
  }
}

export interface NewestEntry extends OrderKey {
  /** Position in the newest-first heap it waits in, -1 when in none. Owned by the heap. */
  newestIndex: number;
}

/** Records newest-first within each class (adaptive LIFO, rule D); kept only under `lifo`. */
export class NewestFirstHeap<T extends NewestEntry> extends IndexedHeap<T> {
  protected before(a: T, b: T): boolean {
    return compareNewestFirst(a, b) < 0;
  }
  protected position(item: T): number {
    return item.newestIndex;
  }
  protected setPosition(item: T, i: number): void {
    item.newestIndex = i;
  }
}
