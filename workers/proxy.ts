/**
 * The Worker's reverse proxy: one http frontend of the config, guarded exactly as the Node edge
 * node's (src/node/http-proxy.ts), with the slots in the `SlotGroup` object.
 *
 * The life of a request:
 * 1. `node.maxconn` is checked in the isolate, before any store round trip (`full` when reached).
 * 2. The planner (the Node edge node's, from the same config) turns the request into its chain:
 *    priority class and offset, keyed limits. A key value that is too long is answered at once
 *    (414/431).
 * 3. `guard.acquire` grants, rejects or queues. A client that goes away while queued
 *    (`request.signal`) cancels its ticket at once.
 * 4. Granted: the request goes to the server the object chose, with `fetch` (`redirect: manual`,
 *    bodies streamed both ways).
 * 5. The lease is released exactly once: when the response body has been streamed to the client,
 *    or the client went away (the body stream is cancelled, or `request.signal` aborts),
 *    whichever comes first. The release and the stream run under `ctx.waitUntil`, so the
 *    Worker stays alive for them, and the lease's auto-renewal keeps a long stream's slot.
 *
 * Statuses the Worker answers itself, as the Node edge node:
 * - `deny_status` (503 or 429) with `Retry-After` and `x-slotgate-reason: full | queue-full |
 *   queue-timeout | unavailable`;
 * - 400 (a value the guard refuses), 414/431 (a key value too long);
 * - 503 `x-slotgate-error: connect-failed` when `fetch` fails before a response (a Worker cannot
 *   tell a refused connection from a reset), 504 `x-slotgate-error: server-timeout` when no
 *   response head arrives within `timeout.connect + timeout.server`, 502 `bad-response` for a
 *   response the Worker cannot pass on, 500 on a fault of its own (logged).
 *
 * Forwarding: hop-by-hop headers (Connection and the headers it lists, Keep-Alive, Proxy-*, TE,
 * Trailer, Transfer-Encoding, Upgrade, Expect) are dropped both ways, as are the `cf-*` and
 * `cdn-loop` headers Cloudflare added on the way in (it sets its own on the subrequest);
 * `x-forwarded-for` gets the client address (`CF-Connecting-IP`) appended, `x-forwarded-proto`
 * and `x-forwarded-host` are set. Unlike the Node edge node, the Host header is always the
 * server's own (`fetch` derives it from the URL), for `host:port` servers too.
 */
import type { Guard } from "../src/core/guard.js";
import { isSlotgateError, type RejectReason } from "../src/core/errors.js";
import type { Lease } from "../src/core/lease.js";
import { splitTarget } from "../src/edge/config/match.js";
import type { ServerConfig } from "../src/edge/config/schema.js";
import type { NodeLimit } from "../src/node/frontend.js";
import { retryAfterSeconds } from "../src/node/frontend.js";
import type { WorkerConfig } from "./config.js";
import { log } from "./log.js";

export interface ProxyContext {
  worker: WorkerConfig;
  /** This request's guard (a Durable Object stub cannot outlive its request, so neither can a guard). */
  guard: Guard;
  /** `on_store_error: local`: the isolate's own limits while the object is unreachable. */
  localFallback: Guard | undefined;
  nodeLimit: NodeLimit;
  /** Picks a server for a lease without one (fail-open): round robin over the servers up. */
  nextServer: () => ServerConfig | undefined;
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  waitUntil: (promise: Promise<unknown>) => void;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "expect"]);
const FORWARDED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);
const DEFAULT_RETRY_AFTER_MS = 1000;
/** Local fallback leases are released explicitly; their TTL only bounds a leak to the isolate's life. */
const LOCAL_LEASE_TTL_MS = 24 * 3600 * 1000;

type DenyReason = Exclude<RejectReason, "aborted">;

export async function proxy(request: Request, pc: ProxyContext): Promise<Response> {
  const { frontend, backend } = pc.worker;
  const denyStatus = frontend.denyStatus ?? 503;
  let nodeSlot = pc.nodeLimit.tryTake();
  const giveNodeSlot = () => {
    if (nodeSlot) pc.nodeLimit.give();
    nodeSlot = false;
  };
  let lease: Lease | undefined;
  /** Set once the body pipe owns the lease and the node slot. */
  let handedOff = false;
  /** The end of the exchange: the node slot and the lease are given back, the guard closed. */
  const finish = async () => {
    giveNodeSlot();
    await lease?.release();
    await pc.guard.close().catch(() => undefined);
  };
  try {
    if (!nodeSlot) return deny(denyStatus, "full", DEFAULT_RETRY_AFTER_MS);
    const url = new URL(request.url);
    const target = url.pathname + url.search;
    const src = request.headers.get("cf-connecting-ip") ?? undefined;
    const plan = pc.worker.planner(frontend.name, { method: request.method, path: target, headers: request.headers, src });
    if (!plan.ok) return text(plan.status, `${plan.message}\n`);

    let result: Awaited<ReturnType<Guard["acquire"]>>;
    try {
      result = await pc.guard.acquire({ ...plan.options, signal: request.signal });
      if (!result.ok && result.reason === "unavailable" && pc.localFallback) {
        // No queue and no timers: they would belong to one request, while the limits are the isolate's.
        result = await pc.localFallback.acquire({ ...plan.options, queueTimeoutMs: 0, leaseTtlMs: LOCAL_LEASE_TTL_MS, autoRenew: false });
      }
    } catch (error) {
      return guardFault(error, denyStatus);
    }
    if (!result.ok) {
      if (request.signal.aborted) return clientGone();
      // `aborted` with the client still there: the guard was closing.
      return deny(denyStatus, result.reason === "aborted" ? "unavailable" : result.reason, result.retryAfterMs);
    }
    lease = result.lease;
    if (request.signal.aborted) return clientGone();

    const server = lease.server === undefined ? pc.nextServer() : pc.worker.servers.get(lease.server);
    if (!server) {
      log("error", "no server to send the request to", { frontend: frontend.name, backend: backend.name, server: lease.server });
      return text(503, "no server available\n", { "x-slotgate-error": "no-server" });
    }

    const held = lease;
    held.signal.addEventListener(
      "abort",
      () => log("warn", "lease lost while the response was still running", { frontend: frontend.name, lease: held.id, server: held.server, reason: String(held.signal.reason) }),
      { once: true },
    );

    // The upstream call ends when the client leaves, or when no response head arrives in time.
    const upstreamAbort = new AbortController();
    const onClientGone = () => upstreamAbort.abort(new DOMException("the client went away", "AbortError"));
    request.signal.addEventListener("abort", onClientGone, { once: true });
    const headMs = backend.timeout.connectMs + backend.timeout.serverMs;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      upstreamAbort.abort(new DOMException(`no response within ${headMs}ms`, "TimeoutError"));
    }, headMs);

    let upstream: Response;
    try {
      upstream = await pc.fetch(upstreamUrl(server, target), {
        method: request.method,
        headers: upstreamHeaders(request.headers, url, src),
        body: request.body,
        redirect: "manual",
        signal: upstreamAbort.signal,
      });
    } catch (error) {
      request.signal.removeEventListener("abort", onClientGone);
      if (request.signal.aborted) return clientGone();
      const kind = timedOut ? "server-timeout" : "connect-failed";
      log("warn", "upstream error", { frontend: frontend.name, backend: backend.name, server: server.name, error: kind, detail: String(error) });
      return text(timedOut ? 504 : 503, `${STATUS_TEXT[kind]}\n`, { "x-slotgate-error": kind });
    } finally {
      clearTimeout(timer);
    }

    let response: Response;
    const body = upstream.body;
    try {
      if (body === null || request.method === "HEAD") {
        response = new Response(null, { status: upstream.status, statusText: upstream.statusText, headers: responseHeaders(upstream.headers) });
      } else {
        const headers = responseHeaders(upstream.headers);
        const { readable, writable, fixedLength } = passThrough(upstream.headers);
        if (!fixedLength) headers.delete("content-length");
        response = new Response(readable, { status: upstream.status, statusText: upstream.statusText, headers });
        handedOff = true;
        // Resolves once the last byte is handed to the client; rejects if either side went away.
        const piping = body.pipeTo(writable).then(
          () => undefined,
          (error: unknown) => {
            // Whichever side failed, the other is done too: the server's side of the exchange ends.
            upstreamAbort.abort(new DOMException("the response was cut", "AbortError"));
            if (!request.signal.aborted) log("info", "response cut", { frontend: frontend.name, server: server.name, detail: String(error) });
          },
        );
        pc.waitUntil(
          piping.then(() => {
            request.signal.removeEventListener("abort", onClientGone);
            return finish();
          }),
        );
      }
    } catch (error) {
      await body?.cancel().catch(() => undefined);
      request.signal.removeEventListener("abort", onClientGone);
      log("warn", "unusable response head", { frontend: frontend.name, server: server.name, status: upstream.status, detail: String(error) });
      return text(502, `${STATUS_TEXT["bad-response"]}\n`, { "x-slotgate-error": "bad-response" });
    }
    if (!handedOff) request.signal.removeEventListener("abort", onClientGone);
    return response;
  } finally {
    if (!handedOff) pc.waitUntil(finish());
  }
}

// ── answers the Worker gives itself ─────────────────────────────────────────────────────────────

function deny(status: number, reason: DenyReason, retryAfterMs: number): Response {
  const phrase = status === 429 ? "Too Many Requests" : "Service Unavailable";
  return text(status, `${status} ${phrase}: no slot (${reason})\n`, {
    "retry-after": String(retryAfterSeconds(retryAfterMs)),
    "x-slotgate-reason": reason,
  });
}

function guardFault(error: unknown, denyStatus: number): Response {
  if (isSlotgateError(error, "SLOTGATE_CLOSED")) return deny(denyStatus, "unavailable", DEFAULT_RETRY_AFTER_MS);
  if (isSlotgateError(error, "SLOTGATE_INVALID_OPTION") || isSlotgateError(error, "SLOTGATE_INVALID_CONFIG")) {
    log("info", "request refused by the guard", { detail: error.message });
    return text(400, "bad request\n");
  }
  const known = isSlotgateError(error, "SLOTGATE_UNKNOWN_SCOPE");
  log("error", known ? "request names a scope the store does not know" : "acquire failed", { detail: error instanceof Error ? error.message : String(error) });
  return text(500, "internal error\n", { "x-slotgate-error": "internal" });
}

/** The answer to a client that already left: nobody reads it. */
function clientGone(): Response {
  return new Response(null, { status: 499 });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...headers, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

const STATUS_TEXT = {
  "connect-failed": "503 Service Unavailable: the server cannot be reached",
  "server-timeout": "504 Gateway Timeout: the server did not answer in time",
  "bad-response": "502 Bad Gateway: the server's answer was not usable",
} as const;

// ── forwarding ──────────────────────────────────────────────────────────────────────────────────

/** The server's URL for a request-target: its origin, its base path, then the client's path and query. */
export function upstreamUrl(server: ServerConfig, target: string): string {
  const a = server.address;
  const origin = a.url.slice(0, a.url.length - a.path.length);
  return origin + upstreamPath(a.path, target);
}

/** As the Node edge node's `upstreamPath` (which lives in a module that imports node:http). */
export function upstreamPath(base: string, target: string): string {
  let t = target;
  if (/^https?:\/\//i.test(t)) {
    const { path, query } = splitTarget(t);
    t = query === "" ? path : `${path}?${query}`;
  }
  if (!t.startsWith("/")) t = `/${t}`;
  return base + t;
}

function connectionTokens(value: string | null): Set<string> {
  const out = new Set<string>();
  if (value === null) return out;
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "") out.add(token);
  }
  return out;
}

function dropHopByHop(headers: Headers): Headers {
  for (const name of connectionTokens(headers.get("connection"))) headers.delete(name);
  for (const name of [...headers.keys()]) {
    if (HOP_BY_HOP.has(name) || name.startsWith("proxy-")) headers.delete(name);
  }
  return headers;
}

export function upstreamHeaders(incoming: Headers, url: URL, client: string | undefined): Headers {
  const out = dropHopByHop(new Headers(incoming));
  const prior = incoming.get("x-forwarded-for");
  for (const name of [...out.keys()]) {
    if (FORWARDED.has(name) || name === "host" || name.startsWith("cf-") || name === "cdn-loop") out.delete(name);
  }
  if (client !== undefined) out.set("x-forwarded-for", prior ? `${prior}, ${client}` : client);
  else if (prior) out.set("x-forwarded-for", prior);
  out.set("x-forwarded-proto", url.protocol.slice(0, -1));
  const host = incoming.get("host") ?? url.host;
  out.set("x-forwarded-host", host);
  return out;
}

export function responseHeaders(upstream: Headers): Headers {
  return dropHopByHop(new Headers(upstream));
}

/**
 * The stream the client reads: native (no JavaScript per chunk), of fixed length when the server
 * sent a Content-Length for an unencoded body, so the client gets the same Content-Length.
 */
function passThrough(headers: Headers): { readable: ReadableStream; writable: WritableStream; fixedLength: boolean } {
  const length = headers.get("content-length");
  const encoding = headers.get("content-encoding");
  if (length !== null && /^\d{1,15}$/.test(length) && (encoding === null || encoding === "identity")) {
    const { readable, writable } = new FixedLengthStream(Number(length));
    return { readable, writable, fixedLength: true };
  }
  const { readable, writable } = new IdentityTransformStream();
  return { readable, writable, fixedLength: false };
}
