/**
 * `node.maxconn`: HAProxy's process maxconn. Checked and taken before any store round trip, so an
 * overloaded node sheds load without touching the store. In http mode a unit is an in-flight
 * request (queued or proxied), in tcp mode a connection.
 */
export class NodeLimit {
  readonly max: number | null;
  #inUse = 0;

  constructor(max: number | null) {
    this.max = max;
  }

  get inUse(): number {
    return this.#inUse;
  }

  tryTake(): boolean {
    if (this.max !== null && this.#inUse >= this.max) return false;
    this.#inUse++;
    return true;
  }

  give(): void {
    if (this.#inUse > 0) this.#inUse--;
  }
}
