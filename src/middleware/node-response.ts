/**
 * For the middleware of frameworks on Node's http server (express, fastify): a request's end as
 * its response object tells it. 'finish' (the response handed to the socket in full) or 'close'
 * (the connection went away, or the response is done) gives the slot back; a 'close' while the
 * request is still queued takes it out of the queue. Structural types: no `node:` import here.
 */
import type { Hold } from "./common.js";

/** What the middleware needs of a `ServerResponse`. */
export interface NodeResponseLike {
  once(event: "close" | "finish", listener: () => void): unknown;
  readonly destroyed: boolean;
}

export interface ResponseWatch {
  /** Aborts when the client goes away before the slot is granted: the acquire leaves the queue. */
  readonly signal: AbortSignal;
  /** Hands the granted slot over: released at the response's end (at once if that came already). */
  hold(hold: Hold): void;
}

export function watchResponse(res: NodeResponseLike): ResponseWatch {
  const controller = new AbortController();
  let held: Hold | undefined;
  let ended = false;
  const end = () => {
    ended = true;
    if (held) void held.release();
    else controller.abort();
  };
  res.once("finish", end);
  res.once("close", end);
  if (res.destroyed) end();
  return {
    signal: controller.signal,
    hold(hold) {
      held = hold;
      if (ended) void hold.release();
    },
  };
}
