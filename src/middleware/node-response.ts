/**
 * For the middleware of frameworks on Node's http server (express, fastify, hono on
 * @hono/node-server): a request's end as its response object tells it. 'finish' (the response
 * handed to the socket in full) or 'close' (the connection went away, or the response is done)
 * gives the slot back; a client that goes away while its request is queued takes it out of the
 * queue. Structural types: no `node:` import here.
 */
import type { Hold } from "./common.js";

/** What the middleware needs of a `ServerResponse` (or an `Http2ServerResponse`). */
export interface NodeResponseLike {
  once(event: "close" | "finish", listener: () => void): unknown;
  readonly destroyed: boolean;
  /** The connection (HTTP/1: one request at a time on it). */
  readonly socket?: SocketLike | null;
  /** Its request, for the HTTP version. */
  readonly req?: { readonly httpVersionMajor?: number };
}

interface SocketLike {
  once(event: "close", listener: () => void): unknown;
  readonly destroyed: boolean;
}

export interface ResponseWatch {
  /** Aborts when the client goes away before the slot is granted: the acquire leaves the queue. */
  readonly signal: AbortSignal;
  /** Hands the granted slot over: released at the response's end (at once if that came already). */
  hold(hold: Hold): void;
}

/**
 * One AbortController per HTTP/1 connection rather than per request: making one is the largest
 * single cost of the middleware on Node. On HTTP/1 a client leaves by closing its connection, and
 * the requests of a connection come one at a time, so the connection's signal is the request's.
 */
const connections = new WeakMap<object, AbortController>();

function connectionSignal(socket: SocketLike): AbortSignal {
  let controller = connections.get(socket);
  if (!controller) {
    const made = new AbortController();
    connections.set(socket, made);
    socket.once("close", () => made.abort());
    if (socket.destroyed) made.abort();
    controller = made;
  }
  return controller.signal;
}

export function watchResponse(res: NodeResponseLike): ResponseWatch {
  const socket = res.req?.httpVersionMajor === 1 ? res.socket : undefined;
  // HTTP/2: a stream can end while its connection lives on, so each request has its own.
  const controller = socket ? undefined : new AbortController();
  let held: Hold | undefined;
  let ended = false;
  const end = () => {
    ended = true;
    if (held) void held.release();
    else controller?.abort();
  };
  res.once("finish", end);
  res.once("close", end);
  if (res.destroyed) end();
  return {
    signal: socket ? connectionSignal(socket) : controller!.signal,
    hold(hold) {
      held = hold;
      if (ended) void hold.release();
    },
  };
}
