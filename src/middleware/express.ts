/**
 * @module
 * slotgate/express: an express middleware that holds each request in a cluster-wide slot.
 *
 * ```ts
 * import express from "express";
 * import { createGuard } from "slotgate";
 * import { slotgate } from "slotgate/express";
 *
 * const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } });
 * const app = express();
 * app.use("/api", slotgate({ guard, scopes: (req) => ["global", `tenant:${req.get("x-tenant") ?? "anon"}`], queueTimeoutMs: 5_000 }));
 * app.get("/api/report", (req, res) => res.send(`fence ${req.slotgate!.fence}`));
 * ```
 *
 * The slot is taken before the next handler runs and given back once: when the response has been
 * sent in full (`res` 'finish'; a streamed response holds it until `res.end()`), or when the
 * connection closes first (`res` 'close': the client went away). A handler that throws ends in
 * express's error handler, whose response gives the slot back. While queued, a client that goes
 * away leaves the queue. Faults of the guard go to `next(error)`.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Lease } from "../core/lease.js";
import type { Answer } from "../edge/answers.js";
import { answerHeaders, createGate, type Rejection, type SlotgateMiddlewareOptions } from "./common.js";
import { watchResponse } from "./node-response.js";

export type { Rejection, Priority, PerRequest } from "./common.js";

declare global {
  // express's own way to add request properties (declaration merging).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The request's lease, set by slotgate's middleware on the routes it guards. */
      slotgate?: Lease;
    }
  }
}

export interface SlotgateExpressOptions extends SlotgateMiddlewareOptions<Request> {
  /** Answers a rejection instead of the default (`denyStatus`, `Retry-After`, `x-slotgate-reason`). */
  onRejected?: (req: Request, res: Response, rejection: Rejection) => void;
}

export function slotgate(options: SlotgateExpressOptions): RequestHandler {
  const gate = createGate<Request>(options, (options as Partial<SlotgateExpressOptions> | undefined)?.onRejected);
  const onRejected = options.onRejected;
  return (req: Request, res: Response, next: NextFunction) => {
    const watch = watchResponse(res);
    gate
      .enter(req, watch.signal)
      .then((entry) => {
        if (entry.kind === "granted") {
          watch.hold(entry.hold);
          req.slotgate = entry.hold.lease;
          return next();
        }
        if (entry.kind === "gone") return;
        if (entry.kind === "rejected" && onRejected) return onRejected(req, res, entry.rejection);
        send(res, entry.kind === "rejected" ? entry.rejection.answer : entry.answer);
      })
      .catch(next);
  };
}

function send(res: Response, answer: Answer): void {
  res.status(answer.status).set(answerHeaders(answer)).send(answer.body);
}
