/**
 * The Node edge node's side of the forwarding rules (src/edge/forwarding.ts): Node's header
 * objects in and out, with framing made explicit (a body is sent with its length or chunked,
 * never unframed).
 */
import type http from "node:http";
import { forwardingValues, hopByHop, isForwardingHeader, type Framing } from "../edge/forwarding.js";

export interface NodeForwardContext {
  /** The client's address (IPv4-mapped forms unwrapped). */
  client: string | undefined;
  trusted: boolean;
  /** Host header for URL servers; undefined: the client's goes through. */
  hostHeader: string | undefined;
  framing: Framing;
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(", ") : v);

/** The headers to send to the server for `req`. */
export function requestHeaders(req: http.IncomingMessage, ctx: NodeForwardContext): http.OutgoingHttpHeaders {
  const h = req.headers;
  const drop = hopByHop(h.connection);
  const out = Object.create(null) as http.OutgoingHttpHeaders;
  for (const name in h) {
    const value = h[name];
    if (value === undefined || drop(name) || isForwardingHeader(name) || name === "content-length") continue;
    out[name] = value;
  }
  Object.assign(
    out,
    forwardingValues({
      client: ctx.client,
      trusted: ctx.trusted,
      proto: "http",
      host: h.host,
      xForwardedFor: one(h["x-forwarded-for"]),
      xForwardedProto: one(h["x-forwarded-proto"]),
      xForwardedHost: one(h["x-forwarded-host"]),
      forwarded: one(h.forwarded),
    }),
  );
  if (ctx.hostHeader !== undefined) out.host = ctx.hostHeader;
  const f = ctx.framing;
  if (f.kind === "length") out["content-length"] = String(f.length);
  else if (f.kind === "chunked") out["transfer-encoding"] = "chunked";
  else if (h["content-length"] === "0") out["content-length"] = "0";
  return out;
}

/** The headers to send to the client for a server's response. */
export function responseHeaders(res: http.IncomingMessage): http.OutgoingHttpHeaders {
  const drop = hopByHop(res.headers.connection);
  const out = Object.create(null) as http.OutgoingHttpHeaders;
  for (const name in res.headers) {
    const value = res.headers[name];
    if (value === undefined || drop(name)) continue;
    out[name] = value;
  }
  return out;
}
