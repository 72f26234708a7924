/**
 * An HTTP frontend (`mode: http`): a reverse proxy where a slot is an in-flight request (HAProxy's
 * server maxconn in HTTP mode).
 *
 * The life of a request:
 * 1. `node.maxconn` is checked in process, before any store round trip (`full` when reached).
 * 2. The planner turns the request into its chain (priority class, keyed limits); a key value
 *    that is too long is answered at once (414/431).
 * 3. `guard.acquire` grants, rejects or queues. The body is not read while queued (TCP back
 *    pressure holds the client), and a client that disconnects leaves the queue at once.
 * 4. Granted: the request goes to the server the store chose, over a keep-alive agent per server,
 *    bodies streamed both ways with back pressure.
 * 5. The lease is released exactly once, when the response has been sent (`finish`) or the client
 *    went away (`close`), whichever comes first. A long response is covered by the lease's
 *    auto-renewal; a lease lost mid-response is logged, and the response goes on.
 *
 * Statuses the node answers itself:
 * - `deny_status` (503, or 429) with `Retry-After` and `x-slotgate-reason: full | queue-full |
 *   queue-timeout | unavailable` when no slot is granted;
 * - 400 (malformed request, or a value the guard refuses), 408 (headers too slow), 414/431 (a key
 *   value, or the headers, too long), all from the node without a slot;
 * - 503 `x-slotgate-error: connect-failed | connect-timeout` when the server cannot be reached
 *   within `timeout.connect` (as HAProxy: the request never reached a server);
 * - 504 `x-slotgate-error: server-timeout` when the server is silent for `timeout.server` before
 *   its response headers (after them, the response is cut: the client sees a truncated body);
 * - 502 `x-slotgate-error: bad-response` when the server resets or answers something that is not
 *   HTTP; 500 on a fault of the node itself (logged). The lease is released in every case.
 *
 * Forwarding: hop-by-hop headers (Connection and the headers it lists, Keep-Alive, Proxy-*, TE,
 * Trailer, Transfer-Encoding, Upgrade, Expect) are dropped both ways; `x-forwarded-for` gets the
 * client address appended, `x-forwarded-proto` and `x-forwarded-host` are set. The Host header
 * goes through unchanged to a `host:port` server (as HAProxy), and is the server's own host for a
 * URL server (virtual hosting, TLS SNI). A request that found a reused keep-alive connection
 * closed by the server (ECONNRESET before any response) is retried once when it has no body.
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { isSlotgateError } from "../core/errors.js";
import type { Lease } from "../core/lease.js";
import { splitTarget } from "./config/match.js";
import type { AcquirePlan } from "./config/to-guard.js";
import type { BackendConfig, FrontendConfig, ServerConfig } from "./config/schema.js";
import {
  boundAddress,
  clientAddress,
  clip,
  countReject,
  emptyCounters,
  listenOn,
  retryAfterSeconds,
  type FrontendContext,
  type FrontendCounters,
  type FrontendListener,
} from "./frontend.js";
import { errorFields, logPath } from "./logger.js";

/** Limits of the listening server; the defaults suit an edge node. */
export interface HttpFrontendOptions {
  /** Largest request head (request line + headers) in bytes; beyond it the client gets 431. @default 16384 */
  maxHeaderSize?: number;
  /** Time a client has to send its complete request head. @default 20000 */
  headersTimeoutMs?: number;
  /** How long an idle keep-alive client connection stays open. @default 5000 */
  keepAliveTimeoutMs?: number;
  /** How long an idle pooled connection to a server stays open. @default 4000 */
  upstreamIdleMs?: number;
}

const DEFAULTS = { maxHeaderSize: 16_384, headersTimeoutMs: 20_000, keepAliveTimeoutMs: 5_000, upstreamIdleMs: 4_000 };

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "expect"]);
const FORWARDED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);
/** Characters Node accepts in a reason phrase. */
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]{0,512}$/;
const DEFAULT_RETRY_AFTER_MS = 1000;

type UpstreamErrorKind = "connect-failed" | "connect-timeout" | "server-timeout" | "bad-response";

interface Target {
  server: ServerConfig;
  agent: http.Agent;
  request: typeof http.request;
  /** Host header for URL servers; undefined: pass the client's through. */
  hostHeader: string | undefined;
  servername: string | undefined;
}

/** Per-request state shared by the steps of one request. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The response has been sent or the client went away. */
  ended: boolean;
  lease: Lease | undefined;
  upstream: http.ClientRequest | undefined;
  /** The acquire is pending. */
  waiting: boolean;
  startedAt: number;
}

interface ConnectionWatch {
  ends: Set<() => void>;
  controller: AbortController;
}

export function createHttpFrontend(frontend: FrontendConfig, backend: BackendConfig, ctx: FrontendContext, options: HttpFrontendOptions = {}): FrontendListener {
  return new HttpFrontend(frontend, backend, ctx, { ...DEFAULTS, ...options });
}

class HttpFrontend implements FrontendListener {
  readonly name: string;
  readonly mode = "http" as const;
  readonly #frontend: FrontendConfig;
  readonly #backend: BackendConfig;
  readonly #ctx: FrontendContext;
  readonly #server: http.Server;
  readonly #targets = new Map<string, Target>();
  readonly #counters: FrontendCounters = emptyCounters();
  /**
   * Per client connection: its pending exchanges, ended when it closes, and one AbortController
   * that aborts every acquire still queued for it (a queued request ends only by its connection
   * closing). One controller per connection, not per request: an AbortController per request was
   * the largest cost of the proxy's hot path.
   */
  readonly #byConnection = new WeakMap<Socket, ConnectionWatch>();
  readonly #denyStatus: number;
  #open = 0;
  #idleWaiters: Array<() => void> = [];
  #draining = false;
  #listening = false;
  #rr = 0;

  constructor(frontend: FrontendConfig, backend: BackendConfig, ctx: FrontendContext, options: Required<HttpFrontendOptions>) {
    this.name = frontend.name;
    this.#frontend = frontend;
    this.#backend = backend;
    this.#ctx = ctx;
    this.#denyStatus = frontend.denyStatus ?? 503;
    for (const server of backend.servers) this.#targets.set(server.name, makeTarget(server, options.upstreamIdleMs));

    this.#server = http.createServer({
      maxHeaderSize: options.maxHeaderSize,
      // The whole request may take long (a queued request's body is read only once granted, and
      // uploads stream); timeout.server bounds an idle exchange, headersTimeout slow heads.
      requestTimeout: 0,
      headersTimeout: options.headersTimeoutMs,
      // Node checks headersTimeout on this interval (30 s by default), so a slow head could
      // linger that long; check every second so it is cut close to its limit.
      connectionsCheckingInterval: 1_000,
      noDelay: true,
    });
    this.#server.keepAliveTimeout = options.keepAliveTimeoutMs;
    this.#server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res));
    this.#server.on("clientError", (error: Error & { code?: string }, socket: Socket) => this.#onClientError(error, socket));
  }

  async listen(): Promise<void> {
    await listenOn(this.#server, this.#frontend.bind, this.#ctx.logger, this.name);
    this.#listening = true;
  }

  address(): { host: string; port: number } | null {
    return boundAddress(this.#server, this.#listening);
  }

  counters(): FrontendCounters {
    return { ...this.#counters, rejected: { ...this.#counters.rejected } };
  }

  inFlight(): number {
    return this.#open;
  }

  stopAccepting(): void {
    if (this.#draining) return;
    this.#draining = true;
    // Node's close() also ends idle keep-alive connections; busy ones end after their response
    // (each response now says Connection: close).
    if (this.#listening) this.#server.close();
    this.#server.closeIdleConnections();
  }

  whenIdle(): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): Promise<void> {
    this.stopAccepting();
    this.#server.closeAllConnections();
    for (const t of this.#targets.values()) t.agent.destroy();
    if (!this.#listening) return Promise.resolve();
    return new Promise((resolve) => {
      if (!this.#server.listening) {
        this.#listening = false;
        resolve();
        return;
      }
      this.#server.once("close", () => {
        this.#listening = false;
        resolve();
      });
    });
  }

  // ── a request ────────────────────────────────────────────────────────────────────────────────

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#handle(req, res).catch((error: unknown) => {
      this.#ctx.logger.error({ frontend: this.name, err: errorFields(error, true) }, "request handler fault");
      countReject(this.#counters, "error");
      this.#answer(res, 500, "internal error\n", { "x-slotgate-error": "internal" });
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.#counters.requests++;
    const tookNodeSlot = this.#ctx.limit.tryTake();
    const ex: Exchange = { req, res, ended: false, lease: undefined, upstream: undefined, waiting: false, startedAt: performance.now() };
    this.#open++;
    let active = false;
    const end = () => {
      if (ex.ended) return;
      ex.ended = true;
      watch.ends.delete(end);
      if (tookNodeSlot) this.#ctx.limit.give();
      if (active) this.#counters.active--;
      if (ex.lease) {
        if (!res.writableFinished) ex.upstream?.destroy();
        void ex.lease.release();
      }
      this.#open--;
      if (this.#open === 0) this.#idle();
    };
    res.once("finish", end);
    res.once("close", end);
    // A pipelined request's response waits for the ones before it and has no socket yet: when the
    // connection closes meanwhile, Node emits 'close' on neither that response nor (once its body
    // was read) its request. The connection's own 'close' ends it.
    const watch = this.#watchConnection(req.socket);
    watch.ends.add(end);
    req.on("error", () => undefined); // a client reset mid-upload: 'close' handles it
    if (this.#draining) res.setHeader("connection", "close");

    if (!tookNodeSlot) {
      this.#deny(ex, "full", DEFAULT_RETRY_AFTER_MS, "node.maxconn");
      return;
    }

    const plan: AcquirePlan = this.#ctx.planner(this.name, {
      method: req.method,
      path: req.url,
      headers: req.headers,
      src: req.socket.remoteAddress,
    });
    if (!plan.ok) {
      countReject(this.#counters, "bad-request");
      this.#ctx.logger.info({ frontend: this.name, status: plan.status, reason: plan.message, src: clientAddress(req.socket.remoteAddress) }, "request refused");
      this.#answer(res, plan.status, `${plan.message}\n`, { connection: "close" });
      return;
    }

    this.#counters.queued++;
    ex.waiting = true;
    let result: Awaited<ReturnType<FrontendContext["guard"]["acquire"]>>;
    try {
      // The planner builds a fresh options object per request: no copy needed to add the signal.
      plan.options.signal = watch.controller.signal;
      result = await this.#ctx.guard.acquire(plan.options);
    } catch (error) {
      this.#guardFault(ex, error);
      return;
    } finally {
      ex.waiting = false;
      this.#counters.queued--;
    }

    if (!result.ok) {
      if (ex.ended) {
        countReject(this.#counters, "aborted");
        this.#ctx.logger.debug({ frontend: this.name, src: clientAddress(req.socket.remoteAddress) }, "client left while queued");
        return;
      }
      // `aborted` with the client still there: the guard is closing (shutdown).
      this.#deny(ex, result.reason === "aborted" ? "unavailable" : result.reason, result.retryAfterMs);
      return;
    }

    const lease = result.lease;
    if (ex.ended) {
      // Granted in the same instant the client left.
      countReject(this.#counters, "aborted");
      void lease.release();
      return;
    }
    ex.lease = lease;
    active = true;
    this.#counters.active++;
    // A lease lost mid-response is logged by the guard's `lease-lost` event; reading lease.signal
    // here would create an AbortController per request for nothing.

    const target = this.#target(lease);
    if (!target) {
      countReject(this.#counters, "error");
      this.#ctx.logger.error({ frontend: this.name, backend: this.#backend.name, server: lease.server }, "no server to send the request to");
      this.#answer(res, 503, "no server available\n", { "x-slotgate-error": "no-server" });
      return;
    }
    this.#forward(ex, target, 0);
  }

  /** The connection's watch (one listener per connection, whatever its number of requests). */
  #watchConnection(socket: Socket): ConnectionWatch {
    let watch = this.#byConnection.get(socket);
    if (watch) return watch;
    watch = { ends: new Set(), controller: new AbortController() };
    const w = watch;
    this.#byConnection.set(socket, w);
    const closed = () => {
      w.controller.abort(); // every acquire still queued for this client leaves the queue at once
      for (const end of [...w.ends]) end();
    };
    if (socket.destroyed) queueMicrotask(closed);
    else socket.once("close", closed);
    return w;
  }

  /** The server of a lease; a fail-open lease has none, so one is picked here (round robin over the servers up). */
  #target(lease: Lease): Target | undefined {
    if (lease.server !== undefined) return this.#targets.get(lease.server);
    const up = this.#backend.servers.filter((s) => !s.down);
    if (up.length === 0) return undefined;
    return this.#targets.get(up[this.#rr++ % up.length]!.name);
  }

  #forward(ex: Exchange, target: Target, attempt: number): void {
    const { req, res } = ex;
    const hasBody = requestHasBody(req);
    const address = target.server.address;
    let upstream: http.ClientRequest;
    try {
      upstream = target.request({
        host: address.host,
        port: address.port,
        method: req.method,
        path: upstreamPath(address.path, req.url ?? "/"),
        headers: this.#upstreamHeaders(req, target),
        agent: target.agent,
        ...(target.servername === undefined ? {} : { servername: target.servername }),
      });
    } catch (error) {
      // A header value Node refuses to send, for instance: the client's fault.
      countReject(this.#counters, "bad-request");
      this.#ctx.logger.info({ frontend: this.name, err: errorFields(error) }, "request cannot be forwarded");
      this.#answer(res, 400, "bad request\n", { connection: "close" });
      return;
    }
    ex.upstream = upstream;

    let connected = false;
    let responded = false;
    let connectTimer: ReturnType<typeof setTimeout> | undefined;
    const { connectMs, serverMs } = this.#backend.timeout;
    upstream.on("socket", (socket: Socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      connectTimer = setTimeout(() => upstream.destroy(tagged("SLOTGATE_CONNECT_TIMEOUT", `no connection within ${connectMs}ms`)), connectMs);
      socket.once("connect", () => {
        connected = true;
        clearTimeout(connectTimer);
      });
    });
    upstream.setTimeout(serverMs, () => upstream.destroy(tagged("SLOTGATE_SERVER_TIMEOUT", `server silent for ${serverMs}ms`)));

    upstream.on("error", (error: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      if (ex.ended) return; // the client left; end() destroyed the upstream request
      if (responded) {
        // Mid-response: the status line is out, so the only honest signal is a cut connection.
        this.#ctx.logger.warn({ frontend: this.name, server: target.server.name, err: errorFields(error) }, "response cut");
        res.destroy();
        return;
      }
      if (!hasBody && attempt === 0 && upstream.reusedSocket && error.code === "ECONNRESET") {
        this.#forward(ex, target, attempt + 1);
        return;
      }
      const kind: UpstreamErrorKind =
        error.code === "SLOTGATE_CONNECT_TIMEOUT" ? "connect-timeout" : !connected ? "connect-failed" : error.code === "SLOTGATE_SERVER_TIMEOUT" ? "server-timeout" : "bad-response";
      const status = kind === "server-timeout" ? 504 : kind === "bad-response" ? 502 : 503;
      countReject(this.#counters, "error");
      this.#ctx.logger.warn({ frontend: this.name, backend: this.#backend.name, server: target.server.name, status, error: kind, err: errorFields(error) }, "upstream error");
      this.#answer(res, status, `${STATUS_TEXT[kind]}\n`, { "x-slotgate-error": kind });
    });

    upstream.on("response", (upstreamRes: http.IncomingMessage) => {
      responded = true;
      clearTimeout(connectTimer);
      if (ex.ended) {
        upstreamRes.resume();
        upstream.destroy();
        return;
      }
      upstreamRes.on("error", () => undefined);
      upstreamRes.on("close", () => {
        // Ended before its end (server reset, server timeout): cut the client's response too.
        if (!upstreamRes.complete && !ex.ended) res.destroy();
      });
      try {
        const status = upstreamRes.statusCode ?? 502;
        const headers = responseHeaders(upstreamRes);
        if (this.#draining) headers.connection = "close";
        const reason = upstreamRes.statusMessage;
        if (reason !== undefined && REASON_PHRASE.test(reason)) res.writeHead(status, reason, headers);
        else res.writeHead(status, headers);
      } catch (error) {
        upstreamRes.resume();
        upstream.destroy();
        countReject(this.#counters, "error");
        this.#ctx.logger.warn({ frontend: this.name, server: target.server.name, err: errorFields(error) }, "unusable response head");
        this.#answer(res, 502, `${STATUS_TEXT["bad-response"]}\n`, { "x-slotgate-error": "bad-response" });
        return;
      }
      upstreamRes.pipe(res);
    });

    if (hasBody) req.pipe(upstream);
    else upstream.end();
  }

  #upstreamHeaders(req: http.IncomingMessage, target: Target): http.OutgoingHttpHeaders {
    const listed = connectionTokens(req.headers.connection);
    const out = Object.create(null) as http.OutgoingHttpHeaders;
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || name.startsWith("proxy-") || listed.has(name) || FORWARDED.has(name)) continue;
      out[name] = value;
    }
    const client = clientAddress(req.socket.remoteAddress);
    const prior = req.headers["x-forwarded-for"];
    if (client !== undefined) out["x-forwarded-for"] = prior ? `${prior}, ${client}` : client;
    else if (prior) out["x-forwarded-for"] = prior;
    out["x-forwarded-proto"] = "http";
    if (req.headers.host !== undefined) out["x-forwarded-host"] = req.headers.host;
    if (target.hostHeader !== undefined) out.host = target.hostHeader;
    // A body without a length (chunked from the client) is sent chunked again. Node's client frames
    // a body on its own only for some methods: a GET, DELETE or OPTIONS body would go out unframed,
    // and the server would read it as the next request on the connection (request smuggling).
    if (req.headers["content-length"] === undefined && req.headers["transfer-encoding"] !== undefined) out["transfer-encoding"] = "chunked";
    return out;
  }

  // ── answers the node gives itself ───────────────────────────────────────────────────────────

  #deny(ex: Exchange, reason: "full" | "queue-full" | "queue-timeout" | "unavailable", retryAfterMs: number, limit?: string): void {
    countReject(this.#counters, reason);
    const { req, res } = ex;
    const status = this.#denyStatus;
    this.#ctx.logger.info(
      {
        frontend: this.name,
        status,
        reason,
        ...(limit === undefined ? {} : { limit }),
        waitedMs: Math.round(performance.now() - ex.startedAt),
        method: clip(req.method, 32),
        path: logPath(req.url, this.#ctx.config, this.name),
        src: clientAddress(req.socket.remoteAddress),
      },
      "request rejected",
    );
    const text = status === 429 ? "Too Many Requests" : "Service Unavailable";
    const headers: http.OutgoingHttpHeaders = { "retry-after": String(retryAfterSeconds(retryAfterMs)), "x-slotgate-reason": reason };
    // An unread body would be read and thrown away to keep the connection; closing is cheaper.
    if (requestHasBody(req)) headers.connection = "close";
    this.#answer(res, status, `${status} ${text}: no slot (${reason})\n`, headers);
  }

  #guardFault(ex: Exchange, error: unknown): void {
    if (isSlotgateError(error, "SLOTGATE_CLOSED")) {
      if (!ex.ended) this.#deny(ex, "unavailable", DEFAULT_RETRY_AFTER_MS);
      return;
    }
    if (isSlotgateError(error, "SLOTGATE_INVALID_OPTION") || isSlotgateError(error, "SLOTGATE_INVALID_CONFIG")) {
      countReject(this.#counters, "bad-request");
      this.#ctx.logger.info({ frontend: this.name, err: errorFields(error) }, "request refused by the guard");
      this.#answer(ex.res, 400, "bad request\n", { connection: "close" });
      return;
    }
    countReject(this.#counters, "error");
    const known = isSlotgateError(error, "SLOTGATE_UNKNOWN_SCOPE");
    this.#ctx.logger.error({ frontend: this.name, err: errorFields(error, !known) }, known ? "request names a scope the store does not know" : "acquire failed");
    this.#answer(ex.res, 500, "internal error\n", { "x-slotgate-error": "internal" });
  }

  #answer(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
    if (res.headersSent || res.destroyed || res.writableEnded) {
      if (!res.writableEnded) res.destroy();
      return;
    }
    try {
      res.writeHead(status, {
        ...headers,
        ...(this.#draining ? { connection: "close" } : {}),
        "content-type": "text/plain; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
      });
      res.end(body);
    } catch {
      res.destroy();
    }
  }

  #onClientError(error: Error & { code?: string }, socket: Socket): void {
    countReject(this.#counters, "bad-request");
    this.#ctx.logger.debug({ frontend: this.name, err: errorFields(error), src: clientAddress(socket.remoteAddress) }, "malformed request");
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, text] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large"]
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout"]
          : error.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
            ? [413, "Payload Too Large"]
            : [400, "Bad Request"];
    const body = `${status} ${text}\n`;
    socket.once("finish", () => socket.destroy());
    socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  }

  #idle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}

const STATUS_TEXT: Record<UpstreamErrorKind, string> = {
  "connect-failed": "503 Service Unavailable: the server cannot be reached",
  "connect-timeout": "503 Service Unavailable: the server did not accept the connection in time",
  "server-timeout": "504 Gateway Timeout: the server did not answer in time",
  "bad-response": "502 Bad Gateway: the server's answer was not usable",
};

function makeTarget(server: ServerConfig, idleMs: number): Target {
  const a = server.address;
  const agentOptions = { keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 256, scheduling: "lifo" as const, timeout: idleMs };
  const isHttps = a.protocol === "https:";
  const defaultPort = isHttps ? 443 : 80;
  const bracketed = a.host.includes(":") ? `[${a.host}]` : a.host;
  return {
    server,
    agent: isHttps ? new https.Agent(agentOptions) : new http.Agent(agentOptions),
    request: isHttps ? https.request : http.request,
    hostHeader: a.form === "url" ? (a.port === defaultPort ? bracketed : `${bracketed}:${a.port}`) : undefined,
    servername: isHttps && !/^[\d.]+$/.test(a.host) && !a.host.includes(":") ? a.host : undefined,
  };
}

function tagged(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Whether the request carries a body to stream (a length above 0, or chunked). */
function requestHasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}

function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (value === undefined) return out;
  for (const part of (Array.isArray(value) ? value.join(",") : value).split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "") out.add(token);
  }
  return out;
}

function responseHeaders(res: http.IncomingMessage): http.OutgoingHttpHeaders {
  const listed = connectionTokens(res.headers.connection);
  const out = Object.create(null) as http.OutgoingHttpHeaders;
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || name.startsWith("proxy-") || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** The path to request from the server: its base path, then the client's origin-form target. */
export function upstreamPath(base: string, target: string): string {
  let t = target;
  if (/^https?:\/\//i.test(t)) {
    const { path, query } = splitTarget(t);
    t = query === "" ? path : `${path}?${query}`;
  }
  if (t === "*") return base === "" ? "*" : `${base}/`;
  if (!t.startsWith("/")) t = `/${t}`;
  return base + t;
}
