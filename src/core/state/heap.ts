/**
 * A binary min-heap of (deadline, id) pairs with lazy deletion: entries are never removed in
 * place; the owner checks on pop whether the entry still matches its record. Renewing a lease
 * pushes a fresh entry, so the heap stays O(log n) per change and `peek` finds the next deadline.
 */
export class DeadlineHeap {
  #deadlines: number[] = [];
  #ids: string[] = [];

  get size(): number {
    return this.#deadlines.length;
  }

  push(deadline: number, id: string): void {
    const d = this.#deadlines;
    const ids = this.#ids;
    let i = d.length;
    d.push(deadline);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (d[parent]! <= deadline) break;
      d[i] = d[parent]!;
      ids[i] = ids[parent]!;
      i = parent;
    }
    d[i] = deadline;
    ids[i] = id;
  }

  peekDeadline(): number | undefined {
    return this.#deadlines[0];
  }

  peekId(): string | undefined {
    return this.#ids[0];
  }

  pop(): void {
    const d = this.#deadlines;
    const ids = this.#ids;
    const lastD = d.pop()!;
    const lastId = ids.pop()!;
    const n = d.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && d[r]! < d[l]! ? r : l;
      if (d[c]! >= lastD) break;
      d[i] = d[c]!;
      ids[i] = ids[c]!;
      i = c;
    }
    d[i] = lastD;
    ids[i] = lastId;
  }

  clear(): void {
    this.#deadlines = [];
    this.#ids = [];
  }
}
