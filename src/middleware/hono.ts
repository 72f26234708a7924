/**
 * @module
 * slotgate/hono: a hono middleware that holds each request in a cluster-wide slot, on every
 * runtime hono runs on (Workers, Node through @hono/node-server, Bun, Deno). Web-standard APIs
 * only: no `node:` modules and no ioredis, so a Worker bundles it as is.
 *
 * ```ts
 * import { Hono } from "hono";
 * import { createGuard } from "slotgate";
 * import { slotgate, type SlotgateVariables } from "slotgate/hono";
 *
 * const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } });
 * const app = new Hono<{ Variables: SlotgateVariables }>();
 * app.use("/api/*", slotgate({ guard, scopes: (c) => ["global", `tenant:${c.req.header("x-tenant") ?? "anon"}`], queueTimeoutMs: 5_000 }));
 * app.get("/api/report", (c) => c.text(`fence ${c.get("slotgate").fence}`));
 * ```
 *
 * The slot is taken before the handler runs and given back once: when the response has been sent
 * (a streamed body holds it as long as it streams), when the handler throws, or when the client
 * goes away, whichever comes first. While queued, a client that goes away leaves the queue.
 * Where hono runs on a Web-standard server (Workers, Bun, Deno), "sent" is the response body read
 * to its end and "gone" is `c.req.raw.signal` or the body stream cancelled; on @hono/node-server
 * both come from its Node response (`c.env.outgoing`: 'finish', 'close').
 */
import type { Context, Env, MiddlewareHandler } from "hono";
import type { Lease } from "../core/lease.js";
import type { Answer } from "../edge/answers.js";
import { answerHeaders, bodyWithEnd, createGate, type Rejection, type SlotgateMiddlewareOptions } from "./common.js";
import { watchResponse, type NodeResponseLike } from "./node-response.js";

export type { Rejection, Priority, PerRequest } from "./common.js";

/** The context variables the middleware sets: `c.get("slotgate")` is the request's lease. */
export type SlotgateVariables = { slotgate: Lease };

export interface SlotgateHonoOptions<E extends Env = Env> extends SlotgateMiddlewareOptions<Context<E>> {
  /** Answers a rejection instead of the default (`denyStatus`, `Retry-After`, `x-slotgate-reason`). */
  onRejected?: (c: Context<E>, rejection: Rejection) => Response | Promise<Response>;
}

// `any` as hono's own factory defaults it: the middleware then fits every app's Env.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function slotgate<E extends Env = any>(options: SlotgateHonoOptions<E>): MiddlewareHandler<E & { Variables: SlotgateVariables }> {
  const gate = createGate<Context<E>>(options, (options as Partial<SlotgateHonoOptions<E>> | undefined)?.onRejected);
  const onRejected = options.onRejected;
  return async (c, next) => {
    const context = c as unknown as Context<E>;
    // On Node, the response object tells when the response has been sent in full (a streamed one
    // too) or the client left; elsewhere the request's signal and the body stream tell it.
    const outgoing = nodeResponse(c);
    const watch = outgoing ? watchResponse(outgoing) : undefined;
    const signal = watch?.signal ?? c.req.raw.signal;
    const entering = gate.enter(context, signal);
    // Workers end an invocation's I/O when its client goes away, unless waitUntil holds it: the
    // queued acquire must live on to leave the queue, and the release to reach the store.
    if (!watch) keepAlive(c, entering);
    const entry = await entering;
    if (entry.kind === "rejected") return onRejected ? onRejected(context, entry.rejection) : respond(entry.rejection.answer);
    if (entry.kind === "bad-request") return respond(entry.answer);
    if (entry.kind === "gone") return new Response(null, { status: 499 });

    const { hold } = entry;
    if (!watch) keepAlive(c, hold.done);
    const release = () => void hold.release();
    if (watch) watch.hold(hold);
    else {
      signal.addEventListener("abort", release, { once: true });
      void hold.done.then(() => signal.removeEventListener("abort", release));
    }
    c.set("slotgate", hold.lease);
    try {
      await next();
    } catch (error) {
      release();
      throw error;
    }
    // hono turns a handler's error into onError's response and sets c.error: the handler is done.
    if (c.error !== undefined) return release();
    if (watch) return;
    const res = c.res;
    if (res.body === null || hold.released) return release();
    c.res = new Response(bodyWithEnd(res.body, release), res);
  };
}

/**
 * The Node response of @hono/node-server (its bindings' `outgoing`), when hono runs there. Its
 * 'finish' comes once the last byte is handed to the socket, which a body stream cannot tell; and
 * leaving the body alone keeps the server's fast path for bodies it can write at once.
 */
function nodeResponse(c: Context): NodeResponseLike | undefined {
  const outgoing = (c.env as { outgoing?: Partial<NodeResponseLike> } | undefined)?.outgoing;
  if (typeof outgoing !== "object" || outgoing === null) return undefined;
  return typeof outgoing.once === "function" && typeof outgoing.destroyed === "boolean" ? (outgoing as NodeResponseLike) : undefined;
}

function respond(answer: Answer): Response {
  return new Response(answer.body, { status: answer.status, headers: answerHeaders(answer) });
}

/**
 * `waitUntil` where the runtime has one (Workers); elsewhere a promise keeps running by itself.
 * hono throws when the runtime gave it no execution context, and a thrown error costs more than
 * the rest of the middleware: once seen missing, it is not asked for again.
 */
let noExecutionContext = false;
function keepAlive(c: Context, promise: Promise<unknown>): void {
  if (noExecutionContext) return;
  let ctx: { waitUntil(p: Promise<unknown>): void };
  try {
    ctx = c.executionCtx;
  } catch {
    noExecutionContext = true;
    return;
  }
  ctx.waitUntil(promise.catch(() => undefined));
}
