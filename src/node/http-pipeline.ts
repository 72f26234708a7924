/**
 * One request at a time per client connection, as HAProxy serves HTTP/1.1 pipelining.
 *
 * Node's server parses every request a connection has sent and emits them all at once. Left alone,
 * 2,000 pipelined requests on one socket become 2,000 acquires: a single client fills the fleet's
 * queue. Here the requests of a connection wait in line, in process and without a slot, and the next
 * one starts only when the previous response is done.
 *
 * The line is bounded: past {@link MAX_PIPELINED} requests waiting, the node stops reading from the
 * connection (Node pauses its parser after the current read, as it does itself when responses back
 * up), closes it once the request in service is done, and never answers the requests in line, which
 * HTTP/1.1 allows: a client retries the requests a closed connection did not answer (RFC 9112
 * §9.3.2). Reading is not paused below that bound on purpose: a paused connection cannot see its
 * client leave, and a request in line would then start, take a slot and reach the origin for a
 * client that is gone.
 */
import type http from "node:http";
import type { Socket } from "node:net";

export const MAX_PIPELINED = 512;

/** The private hooks of Node's HTTP server that pause its parser (present in Node 20 and later). */
interface ParsedSocket extends Socket {
  _paused?: boolean;
  parser?: { pause?: () => void; resume?: () => void } | null;
}

export interface PipelineEvents {
  /** Starts a request; it calls {@link Pipeline.done} when its exchange has ended. */
  start(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** The connection went past {@link MAX_PIPELINED}. */
  overflow(): void;
}

export class Pipeline {
  readonly socket: ParsedSocket;
  /** Aborts the acquire still queued for this connection when it closes (one controller per connection, not per request). */
  readonly controller = new AbortController();
  /** A request of this connection is being served. */
  busy = false;
  closed = false;
  #overflowed = false;
  readonly #line: Array<[http.IncomingMessage, http.ServerResponse]> = [];
  readonly #events: PipelineEvents;

  constructor(socket: Socket, events: PipelineEvents) {
    this.socket = socket;
    this.#events = events;
  }

  /** A request parsed on this connection: started now, or put in line. */
  push(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.closed || this.#overflowed) return; // never answered: the connection is closing
    if (!this.busy) {
      this.busy = true;
      this.#events.start(req, res);
      return;
    }
    this.#line.push([req, res]);
    req.on("error", () => undefined); // a reset while in line: the connection's 'close' handles it
    if (this.#line.length > MAX_PIPELINED) {
      this.#overflowed = true;
      this.#dropAll();
      this.#events.overflow();
      if (!this.#stopReading()) this.socket.destroy();
    }
  }

  /** The request in service has ended: the next one in line starts (or the overflowed connection closes). */
  done(): void {
    this.busy = false;
    if (this.closed) return;
    if (this.#overflowed) {
      this.socket.destroy();
      return;
    }
    const next = this.#line.shift();
    if (next) {
      this.busy = true;
      this.#events.start(next[0], next[1]);
    }
  }

  /** The connection closed: nothing in line will be served. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.abort();
    this.#dropAll();
  }

  get waiting(): number {
    return this.#line.length;
  }

  /** The requests in line are never answered; Node frees them with the connection. */
  #dropAll(): void {
    this.#line.length = 0;
  }

  /** Asks Node to parse nothing more from this connection; false when this Node has no such hook. */
  #stopReading(): boolean {
    if (typeof this.socket.parser?.pause !== "function") return false;
    // Node checks this flag after each parser run and pauses the parser.
    this.socket._paused = true;
    this.socket.pause();
    return true;
  }
}
