/**
 * What a proxy changes in the headers it forwards, both ways, for every runtime: the Node edge
 * node (src/node/http-proxy.ts) and the Worker (src/worker/proxy.ts) loop over their own header
 * structures and ask these rules, so that each rule is written once.
 *
 * Framing is the part an attacker aims at. `Connection` may list header names to drop at this hop,
 * and a proxy that obeyed `Connection: content-length` (or `transfer-encoding`) would drop the
 * length of a body it still forwards: the origin then reads that body as the next request on its
 * connection (request smuggling). So `content-length`, `transfer-encoding` and `host` can never be
 * dropped through `Connection`. The framing of a forwarded body is the adapter's to set, from
 * {@link requestFraming} (Node) or by `fetch` itself (the Worker); the client's framing headers are
 * never copied as they are.
 *
 * Forwarding headers: a client can write anything in `x-forwarded-for` or `Forwarded`. From a peer
 * that is not a trusted proxy (`forwarded_for.trusted`), they are replaced with what the proxy saw;
 * from a trusted one they are kept and this hop is appended, as HAProxy's `option forwardfor` does.
 * `src` conditions and keyed limits always use the connection's address, never these headers.
 */
import { cidrContains, parseCidr, parseIp, splitTarget, type Cidr } from "./config/match.js";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "expect"]);
/** Set by the proxy itself: never copied from the client (unless from a trusted proxy, see {@link forwardingValues}). */
const FORWARDING = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]);
/** Never dropped because `Connection` lists them: the message's framing and its target. */
const NOT_CONNECTION_LISTABLE = new Set(["content-length", "transfer-encoding", "host"]);

/** How a request body is sent on: with its length, chunked, or not at all. */
export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };

/** The framing of a request from its (parser-checked) `content-length` and `transfer-encoding`. */
export function requestFraming(contentLength: string | undefined, transferEncoding: string | undefined): Framing {
  if (contentLength !== undefined) {
    const n = Number(contentLength);
    return n > 0 ? { kind: "length", length: n } : { kind: "none" };
  }
  return transferEncoding !== undefined ? { kind: "chunked" } : { kind: "none" };
}

/**
 * The names `Connection` lists, lower case, minus those that may never be dropped that way and
 * those dropped anyway; undefined when that leaves none (`Connection: keep-alive`, or no header:
 * the common case, which then allocates nothing).
 */
function connectionTokens(value: string | readonly string[] | null | undefined): Set<string> | undefined {
  if (value === undefined || value === null) return undefined;
  let out: Set<string> | undefined;
  for (const part of (typeof value === "string" ? value : value.join(",")).split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "" && !NOT_CONNECTION_LISTABLE.has(token) && !HOP_BY_HOP.has(token)) (out ??= new Set()).add(token);
  }
  return out;
}

/** A header that stops at every hop, whatever `Connection` lists. */
function alwaysHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-");
}

/**
 * For one message (request or response), given its `Connection` header: whether a header (lower
 * case name) stops at this hop. Framing headers are left to the caller (see the module comment).
 */
export function hopByHop(connection: string | readonly string[] | null | undefined): (name: string) => boolean {
  const listed = connectionTokens(connection);
  if (listed === undefined) return alwaysHopByHop;
  return (name) => alwaysHopByHop(name) || listed.has(name);
}

/** A forwarding header: set by the proxy, see {@link forwardingValues}. */
export function isForwardingHeader(name: string): boolean {
  return FORWARDING.has(name);
}

/** What the proxy saw of a request, and what the client said in its forwarding headers. */
export interface ForwardingInput {
  /** The client's address (the connection's), or undefined when unknown. */
  client: string | undefined;
  /** The client is a trusted proxy: its forwarding headers are kept and appended to. */
  trusted: boolean;
  /** The scheme the client used to reach this proxy. */
  proto: "http" | "https";
  /** The client's Host header. */
  host: string | undefined;
  /** The client's own forwarding headers (used only when `trusted`). */
  xForwardedFor: string | undefined;
  xForwardedProto: string | undefined;
  xForwardedHost: string | undefined;
  forwarded: string | undefined;
}

/** The forwarding headers to send to the server, lower-case names. */
export function forwardingValues(i: ForwardingInput): Record<string, string> {
  const out: Record<string, string> = {};
  const prior = i.trusted ? i.xForwardedFor : undefined;
  if (i.client !== undefined) out["x-forwarded-for"] = prior ? `${prior}, ${i.client}` : i.client;
  else if (prior) out["x-forwarded-for"] = prior;
  out["x-forwarded-proto"] = (i.trusted ? i.xForwardedProto : undefined) ?? i.proto;
  const host = (i.trusted ? i.xForwardedHost : undefined) ?? i.host;
  if (host !== undefined) out["x-forwarded-host"] = host;
  const element = forwardedElement(i.client, i.host, i.proto);
  const priorForwarded = i.trusted ? i.forwarded : undefined;
  out.forwarded = priorForwarded ? `${priorForwarded}, ${element}` : element;
  return out;
}

/** One RFC 7239 element for this hop: `for=…;host="…";proto=…`. */
function forwardedElement(client: string | undefined, host: string | undefined, proto: string): string {
  const forNode = client === undefined ? "unknown" : client.includes(":") ? quoted(`[${client}]`) : client;
  return host === undefined ? `for=${forNode};proto=${proto}` : `for=${forNode};host=${quoted(host)};proto=${proto}`;
}

function quoted(value: string): string {
  // Most values have nothing to escape: no regular expression run for them.
  if (!value.includes('"') && !value.includes("\\")) return `"${value}"`;
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Peers whose forwarding headers are kept (`forwarded_for.trusted`). */
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

/** The path to request from the server: its base path, then the client's origin-form target. */
export function upstreamPath(base: string, target: string): string {
  // The common case, an origin-form target and a server without a base path: as it is.
  if (base === "" && target.startsWith("/")) return target;
  let t = target;
  if (/^https?:\/\//i.test(t)) {
    const { path, query } = splitTarget(t);
    t = query === "" ? path : `${path}?${query}`;
  }
  if (t === "*") return base === "" ? "*" : `${base}/`;
  if (!t.startsWith("/")) t = `/${t}`;
  return base + t;
}
