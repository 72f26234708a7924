/**
 * @module
 * slotgate/fastify: a fastify plugin (fastify-plugin, so its hooks cover the scope it is
 * registered in) that holds each request in a cluster-wide slot.
 *
 * ```ts
 * import Fastify from "fastify";
 * import { createGuard } from "slotgate";
 * import slotgate from "slotgate/fastify";
 *
 * const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } });
 * const app = Fastify();
 * await app.register(slotgate, { guard, scopes: (request) => ["global", `tenant:${request.headers["x-tenant"] ?? "anon"}`], queueTimeoutMs: 5_000 });
 * app.get("/api/report", async (request) => `fence ${request.slotgate!.fence}`);
 * ```
 *
 * The slot is taken in the `onRequest` hook, before the body is read and the handler runs, and
 * given back once: when the response has been sent in full (a streamed reply holds it until the
 * stream ends), or when the connection closes first (the client went away). A handler that
 * throws ends in fastify's error response, which gives the slot back. While queued, a client that
 * goes away leaves the queue. Faults of the guard go to fastify's error handler.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import type { Lease } from "../core/lease.js";
import type { Answer } from "../edge/answers.js";
import { answerHeaders, createGate, type Rejection, type SlotgateMiddlewareOptions } from "./common.js";
import { watchResponse } from "./node-response.js";

export type { Rejection, Priority, PerRequest } from "./common.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The request's lease on the routes slotgate guards; null elsewhere. */
    slotgate: Lease | null;
  }
}

export interface SlotgateFastifyOptions extends SlotgateMiddlewareOptions<FastifyRequest> {
  /** Answers a rejection instead of the default (`denyStatus`, `Retry-After`, `x-slotgate-reason`). */
  onRejected?: (request: FastifyRequest, reply: FastifyReply, rejection: Rejection) => unknown;
}

const plugin: FastifyPluginAsync<SlotgateFastifyOptions> = async (app, options) => {
  // The keys fastify itself reads from registration options are not ours to check.
  const { prefix: _prefix, logLevel: _logLevel, logSerializers: _logSerializers, ...ours } = options as SlotgateFastifyOptions & Record<string, unknown>;
  const gate = createGate<FastifyRequest>(ours, options.onRejected);
  const onRejected = options.onRejected;
  // Two registrations in one scope (two guards, say) share the decorator.
  if (!app.hasRequestDecorator("slotgate")) app.decorateRequest("slotgate", null);
  app.addHook("onRequest", async (request, reply) => {
    const watch = watchResponse(reply.raw);
    const entry = await gate.enter(request, watch.signal);
    if (entry.kind === "granted") {
      watch.hold(entry.hold);
      request.slotgate = entry.hold.lease;
      return;
    }
    // Nobody to answer: the hijacked reply is left as it is, and the closed socket with it.
    if (entry.kind === "gone") return reply.hijack();
    if (entry.kind === "rejected" && onRejected) {
      await onRejected(request, reply, entry.rejection);
      return reply;
    }
    return send(reply, entry.kind === "rejected" ? entry.rejection.answer : entry.answer);
  });
};

function send(reply: FastifyReply, answer: Answer): FastifyReply {
  return reply.code(answer.status).headers(answerHeaders(answer)).send(answer.body);
}

/** The plugin: `await app.register(slotgate, { guard, scopes, … })`. */
export const slotgate = fp(plugin, { name: "slotgate", fastify: "5.x" });
export default slotgate;
