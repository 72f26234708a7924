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
 *   response the Worker cannot pass on, 503 `lease-lost` when the lease is lost before the
 *   response head, 500 on a fault of its own (logged).
 *
 * Forwarding follows the rules of src/edge/forwarding.ts, as the Node edge node does: hop-by-hop
 * headers dropped both ways, forwarding headers (`x-forwarded-*`, `Forwarded`) replaced with what
 * the Worker saw (the client address is `CF-Connecting-IP`) unless the client is a trusted proxy
 * (`forwarded_for.trusted`). The `cf-*` and `cdn-loop` headers Cloudflare added on the way in are
 * dropped (it sets its own on the subrequest). Unlike the Node edge node, the Host header is always
 * the server's own (`fetch` derives it from the URL), for `host:port` servers too, and `fetch`
 * frames the body itself.
 *
 * A lease lost mid-request (SPEC §2 rules 9 and 12) stops the request: the upstream call is
 * aborted, and the client gets 503 `x-slotgate-error: lease-lost` before the response started, a
 * cut response after, so that nothing runs on beside a new holder (as on the Node edge node).
 */
import type { Guard } from "../core/guard.js";
import type { Lease } from "../core/lease.js";
import {
  classifyGuardFault,
  DEFAULT_RETRY_AFTER_MS,
  denyAnswer,
  leaseLostAnswer,
  upstreamErrorAnswer,
  type Answer,
  type UpstreamErrorKind,
} from "../edge/answers.js";
import type { ServerConfig } from "../edge/config/schema.js";
import { forwardingValues, hopByHop, isForwardingHeader, upstreamPath } from "../edge/forwarding.js";
import type { NodeLimit } from "../edge/node-limit.js";
import type { WorkerConfig } from "./config.js";
import { log } from "./log.js";

export interface ProxyContext {
  worker: WorkerConfig;
  /** This request's guard (a Durable Object stub cannot outlive its request, so neither can a guard). */
  guard: Guard;
  nodeLimit: NodeLimit;
  /** Picks a server for a lease without one (fail-open): round robin over the servers up. */
  nextServer: () => ServerConfig | undefined;
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  waitUntil: (promise: Promise<unknown>) => void;
}

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
    if (!nodeSlot) return respond(denyAnswer(denyStatus, "full", DEFAULT_RETRY_AFTER_MS));
    const url = new URL(request.url);
    const target = url.pathname + url.search;
    const src = request.headers.get("cf-connecting-ip") ?? undefined;
    const plan = pc.worker.planner(frontend.name, { method: request.method, path: target, headers: request.headers, src });
    if (!plan.ok) return text(plan.status, `${plan.message}\n`);

    let result: Awaited<ReturnType<Guard["acquire"]>>;
    try {
      result = await pc.guard.acquire({ ...plan.options, signal: request.signal });
    } catch (error) {
      return guardFault(error, denyStatus);
    }
    if (!result.ok) {
      if (request.signal.aborted) return clientGone();
      // `aborted` with the client still there: the guard was closing.
      return respond(denyAnswer(denyStatus, result.reason === "aborted" ? "unavailable" : result.reason, result.retryAfterMs));
    }
    lease = result.lease;
    if (request.signal.aborted) return clientGone();

    const server = lease.server === undefined ? pc.nextServer() : pc.worker.servers.get(lease.server);
    if (!server) {
      log("error", "no server to send the request to", { frontend: frontend.name, backend: backend.name, server: lease.server });
      return text(503, "no server available\n", { "x-slotgate-error": "no-server" });
    }

    // The upstream call ends when the client leaves, when no response head arrives in time, or
    // when the lease is lost (SPEC §2 rule 12: its slot may be someone else's now).
    const upstreamAbort = new AbortController();
    const held = lease;
    held.signal.addEventListener(
      "abort",
      () => {
        log("warn", "lease lost while the request was running: stopped", {
          frontend: frontend.name,
          lease: held.id,
          server: held.server,
          reason: String(held.signal.reason),
        });
        upstreamAbort.abort(new DOMException("the lease was lost", "AbortError"));
      },
      { once: true },
    );

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
        headers: upstreamHeaders(request.headers, url, src, pc.worker.trusted.trusts(src)),
        body: request.body,
        redirect: "manual",
        signal: upstreamAbort.signal,
      });
    } catch (error) {
      request.signal.removeEventListener("abort", onClientGone);
      if (request.signal.aborted) return clientGone();
      // The lease was lost and aborted the call: the server was reached, the slot is what failed.
      if (held.signal.aborted) return respond(leaseLostAnswer());
      const kind: UpstreamErrorKind = timedOut ? "server-timeout" : "connect-failed";
      log("warn", "upstream error", { frontend: frontend.name, backend: backend.name, server: server.name, error: kind, detail: String(error) });
      return respond(upstreamErrorAnswer(kind));
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
      return respond(upstreamErrorAnswer("bad-response"));
    }
    if (!handedOff) request.signal.removeEventListener("abort", onClientGone);
    return response;
  } finally {
    if (!handedOff) pc.waitUntil(finish());
  }
}

// ── answers the Worker gives itself ─────────────────────────────────────────────────────────────

function respond(answer: Answer): Response {
  return text(answer.status, answer.body, answer.headers);
}

function guardFault(error: unknown, denyStatus: number): Response {
  const fault = classifyGuardFault(error);
  if (fault === "closed") return respond(denyAnswer(denyStatus, "unavailable", DEFAULT_RETRY_AFTER_MS));
  if (fault === "bad-request") {
    log("info", "request refused by the guard", { detail: error instanceof Error ? error.message : String(error) });
    return text(400, "bad request\n");
  }
  log("error", fault === "unknown-scope" ? "request names a scope the store does not know" : "acquire failed", {
    detail: error instanceof Error ? error.message : String(error),
  });
  return text(500, "internal error\n", { "x-slotgate-error": "internal" });
}

/** The answer to a client that already left: nobody reads it. */
function clientGone(): Response {
  return new Response(null, { status: 499 });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...headers, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

// ── forwarding ──────────────────────────────────────────────────────────────────────────────────

/** The server's URL for a request-target: its origin, its base path, then the client's path and query. */
export function upstreamUrl(server: ServerConfig, target: string): string {
  const a = server.address;
  const origin = a.url.slice(0, a.url.length - a.path.length);
  return origin + upstreamPath(a.path, target);
}

/** Headers Cloudflare added on the way in: it sets its own on the subrequest. */
function addedByCloudflare(name: string): boolean {
  return name.startsWith("cf-") || name === "cdn-loop";
}

/**
 * The headers to send to the server (the rules of src/edge/forwarding.ts). `fetch` frames the body
 * and sets Host from the URL, so neither framing headers nor Host are copied.
 */
export function upstreamHeaders(incoming: Headers, url: URL, client: string | undefined, trusted: boolean): Headers {
  const drop = hopByHop(incoming.get("connection"));
  const out = new Headers();
  for (const [name, value] of incoming) {
    if (drop(name) || isForwardingHeader(name) || name === "host" || name === "content-length" || name === "transfer-encoding" || addedByCloudflare(name))
      continue;
    out.append(name, value);
  }
  const values = forwardingValues({
    client,
    trusted,
    proto: url.protocol === "https:" ? "https" : "http",
    host: incoming.get("host") ?? url.host,
    xForwardedFor: incoming.get("x-forwarded-for") ?? undefined,
    xForwardedProto: incoming.get("x-forwarded-proto") ?? undefined,
    xForwardedHost: incoming.get("x-forwarded-host") ?? undefined,
    forwarded: incoming.get("forwarded") ?? undefined,
  });
  for (const [name, value] of Object.entries(values)) out.set(name, value);
  return out;
}

/** The headers to send to the client for a server's response. */
export function responseHeaders(upstream: Headers): Headers {
  const drop = hopByHop(upstream.get("connection"));
  const out = new Headers();
  for (const [name, value] of upstream) if (!drop(name)) out.append(name, value);
  return out;
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
