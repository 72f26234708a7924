/**
 * What an HTTP frontend changes in the headers it forwards, both ways: hop-by-hop headers out,
 * framing made explicit, the forwarding headers (`x-forwarded-*`, `Forwarded`) set.
 *
 * Framing is the part an attacker aims at. `Connection` may list header names to drop at this hop,
 * and a proxy that obeyed `Connection: content-length` (or `transfer-encoding`) would drop the
 * length of a body it still forwards: the origin then reads that body as the next request on its
 * connection (request smuggling: a request with no slot, and a desynchronised connection that hands
 * one client another's response). So `content-length`, `transfer-encoding` and `host` can never be
 * dropped through `Connection`, and a body is forwarded with an explicit length or chunked, never
 * unframed.
 *
 * Forwarding headers: a client can write anything in `x-forwarded-for` or `Forwarded`. From a peer
 * that is not a trusted proxy (`forwarded_for.trusted`), the node replaces them with what it saw
 * (the socket's address); from a trusted one it keeps them and appends its own hop, as HAProxy's
 * `option forwardfor` does. `src` conditions and keyed limits always use the socket's address.
 */
import type http from "node:http";
import { cidrContains, parseCidr, parseIp, type Cidr } from "../edge/config/match.js";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "expect"]);
/** Set by the node itself: never copied from the client (unless from a trusted proxy, see {@link requestHeaders}). */
const FORWARDING = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]);
/** Never dropped because `Connection` lists them: the message's framing and its target. */
const NOT_CONNECTION_LISTABLE = new Set(["content-length", "transfer-encoding", "host"]);

/** How a request body is sent on: with its length, chunked, or not at all. */
export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };

/** The framing of a request as the client sent it (Node's parser has checked the headers already). */
export function requestFraming(req: http.IncomingMessage): Framing {
  const length = req.headers["content-length"];
  if (length !== undefined) {
    const n = Number(length);
    return n > 0 ? { kind: "length", length: n } : { kind: "none" };
  }
  return req.headers["transfer-encoding"] !== undefined ? { kind: "chunked" } : { kind: "none" };
}

/** The names `Connection` lists, lower case, minus those that may never be dropped that way. */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (value === undefined) return out;
  for (const part of (Array.isArray(value) ? value.join(",") : value).split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "" && !NOT_CONNECTION_LISTABLE.has(token)) out.add(token);
  }
  return out;
}

function isHopByHop(name: string, listed: Set<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-") || listed.has(name);
}

/** Peers whose forwarding headers are kept. */
export class TrustedForwarders {
  readonly #cidrs: Cidr[];

  constructor(cidrs: readonly string[]) {
    this.#cidrs = cidrs.map((text) => {
      const r = parseCidr(text);
      if (!r.ok) throw new Error(`forwarded_for.trusted: ${r.problem}`); // validated with the config
      return r.cidr;
    });
  }

  trusts(address: string | undefined): boolean {
    if (this.#cidrs.length === 0 || address === undefined) return false;
    const ip = parseIp(address);
    return ip !== undefined && this.#cidrs.some((c) => cidrContains(c, ip));
  }
}

export interface ForwardContext {
  /** The client's address as the socket reports it (IPv4-mapped forms already unwrapped). */
  client: string | undefined;
  /** The peer is a trusted proxy: its forwarding headers are kept and appended to. */
  trusted: boolean;
  /** Host header to send instead of the client's (URL servers), or undefined. */
  hostHeader: string | undefined;
  /** How the body goes on. */
  framing: Framing;
}

/** The headers to send to the server for `req`. */
export function requestHeaders(req: http.IncomingMessage, ctx: ForwardContext): http.OutgoingHttpHeaders {
  const listed = connectionTokens(req.headers.connection);
  const out = Object.create(null) as http.OutgoingHttpHeaders;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || isHopByHop(name, listed) || FORWARDING.has(name) || name === "content-length") continue;
    out[name] = value;
  }
  const h = req.headers;
  const prior = ctx.trusted ? h["x-forwarded-for"] : undefined;
  if (ctx.client !== undefined) out["x-forwarded-for"] = prior ? `${String(prior)}, ${ctx.client}` : ctx.client;
  else if (prior) out["x-forwarded-for"] = prior;
  out["x-forwarded-proto"] = (ctx.trusted ? h["x-forwarded-proto"] : undefined) ?? "http";
  const host = (ctx.trusted ? h["x-forwarded-host"] : undefined) ?? h.host;
  if (host !== undefined) out["x-forwarded-host"] = host;
  const element = forwardedElement(ctx.client, h.host);
  const priorForwarded = ctx.trusted ? h.forwarded : undefined;
  out.forwarded = priorForwarded ? `${priorForwarded}, ${element}` : element;
  if (ctx.hostHeader !== undefined) out.host = ctx.hostHeader;

  const f = ctx.framing;
  if (f.kind === "length") out["content-length"] = String(f.length);
  else if (f.kind === "chunked") out["transfer-encoding"] = "chunked";
  else if (h["content-length"] === "0") out["content-length"] = "0";
  return out;
}

/** The headers to send to the client for a server's response. */
export function responseHeaders(res: http.IncomingMessage): http.OutgoingHttpHeaders {
  const listed = connectionTokens(res.headers.connection);
  const out = Object.create(null) as http.OutgoingHttpHeaders;
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || isHopByHop(name, listed)) continue;
    out[name] = value;
  }
  return out;
}

/** One RFC 7239 element for this hop: `for=…;host=…;proto=http`. */
function forwardedElement(client: string | undefined, host: string | undefined): string {
  const parts = [`for=${client === undefined ? "unknown" : client.includes(":") ? quoted(`[${client}]`) : client}`];
  if (host !== undefined) parts.push(`host=${quoted(host)}`);
  parts.push("proto=http");
  return parts.join(";");
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
