/**
 * An indexed binary min-heap of records ordered by their `deadline`. Each record remembers its
 * own position, so a released lease or a cancelled ticket leaves the heap at once (O(log n)) and
 * a renewed lease moves in place. Lazy deletion would instead keep every released lease in the
 * heap until its old expiry: at high throughput, millions of dead entries.
 */
export interface HeapEntry {
  deadline: number;
  /** Position in the heap, -1 when not in it. Owned by the heap. */
  heapIndex: number;
}

export class DeadlineHeap<T extends HeapEntry> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    item.heapIndex = this.#items.length;
    this.#items.push(item);
    this.#up(item.heapIndex);
  }

  /** Removes the item if it is in the heap. */
  remove(item: T): void {
    const i = item.heapIndex;
    const items = this.#items;
    if (i < 0 || items[i] !== item) return;
    const last = items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    items[i] = last;
    last.heapIndex = i;
    this.#down(i);
    this.#up(last.heapIndex);
  }

  /** Call after changing an item's deadline. */
  update(item: T): void {
    if (item.heapIndex < 0) return this.push(item);
    this.#up(item.heapIndex);
    this.#down(item.heapIndex);
  }

  #up(i: number): void {
    const items = this.#items;
    const item = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (p.deadline <= item.deadline) break;
      items[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    items[i] = item;
    item.heapIndex = i;
  }

  #down(i: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && items[r]!.deadline < items[l]!.deadline ? r : l;
      const child = items[c]!;
      if (child.deadline >= item.deadline) break;
      items[i] = child;
      child.heapIndex = i;
      i = c;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
