/**
 * An HTTP frontend (`mode: http`): a reverse proxy where a slot is an in-flight request (HAProxy's
 * server maxconn in HTTP mode).
 *
 * The life of a request:
 * 1. `node.maxconn` is checked in process, before any store round trip (`full` when reached).
 * 2. The planner turns the request into its chain (priority class, keyed limits); a key value
 *    that is too long is answered at once (414/431).
 * 3. A body of up to `buffer_request` bytes is received before the slot is taken (HAProxy's
 *    `option http-buffer-request`), so that a slow upload does not hold a slot while it trickles in.
 * 4. `guard.acquire` grants, rejects or queues. The rest of a body is not read while queued (TCP
 *    back pressure holds the client), and a client that disconnects leaves the queue at once.
 * 5. Granted: the request goes to the server the store chose, over a keep-alive agent per server,
 *    bodies streamed both ways with back pressure.
 * 6. The lease is released exactly once, when the response has been sent (`finish`) or the client
 *    went away (`close`), whichever comes first. A long response is covered by the lease's
 *    auto-renewal. A lease lost mid-request (its renewal found it gone, or the store lost its state
 *    and could not re-register it: SPEC §2 rules 9 and 12) stops the request: the request to the
 *    server is abandoned, and the client gets 503 `x-slotgate-error: lease-lost` before the
 *    response started, a cut connection after, so that nothing runs on beside a new holder.
 *
 * One request of a client connection is served at a time (see http-pipeline.ts), and the client's
 * side has HAProxy's timeouts: `timeout.http_request` bounds the whole request (its head through
 * Node's headersTimeout, its body from the moment the node reads it; time in the queue does not
 * count, as the node does not read then), `timeout.client` the client's inactivity whenever the node
 * waits on it (reading its request, or writing the response to it).
 *
 * Statuses the node answers itself:
 * - `deny_status` (503, or 429) with `Retry-After` and `x-slotgate-reason: full | queue-full |
 *   queue-timeout | unavailable` when no slot is granted;
 * - 400 (malformed request, or a value the guard refuses), 408 (the request did not arrive within
 *   `timeout.http_request`, or the client went silent for `timeout.client` while sending it; the
 *   slot, if taken, is released), 414/431 (a key value, or the headers, too long);
 * - 503 `x-slotgate-error: connect-failed | connect-timeout` when the server cannot be reached
 *   within `timeout.connect` (as HAProxy: the request never reached a server);
 * - 504 `x-slotgate-error: server-timeout` when the server is silent for `timeout.server` before
 *   its response headers (after them, the response is cut: the client sees a truncated body);
 * - 502 `x-slotgate-error: bad-response` when the server resets, answers something that is not
 *   HTTP, or switches protocols (`101`) on a request that asked for no upgrade; 500 on a fault of the node itself (logged). The lease is released in every case.
 *
 * Forwarding (forwarding.ts): hop-by-hop headers are dropped both ways, framing is always explicit
 * (`Connection` cannot remove `content-length`, `transfer-encoding` or `host`), and the forwarding
 * headers are replaced unless the peer is a trusted proxy. The Host header goes through unchanged
 * to a `host:port` server (as HAProxy), and is the server's own host for a URL server (virtual
 * hosting, TLS SNI). A request that found a reused keep-alive connection closed by the server
 * (ECONNRESET before any response) is retried once when it has no body.
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Lease } from "../core/lease.js";
import type { AcquirePlan } from "../edge/config/to-guard.js";
import type { BackendConfig, FrontendConfig, ServerConfig } from "../edge/config/schema.js";
import {
  classifyGuardFault,
  clientAddress,
  DEFAULT_RETRY_AFTER_MS,
  denyAnswer,
  leaseLostAnswer,
  upstreamErrorAnswer,
  type DenyReason,
  type UpstreamErrorKind,
} from "../edge/answers.js";
import { requestFraming, TrustedForwarders, upstreamPath, type Framing } from "../edge/forwarding.js";
import { requestHeaders, responseHeaders } from "./forward-headers.js";
import { boundAddress, clip, countReject, emptyCounters, listenOn, type FrontendContext, type FrontendCounters, type FrontendListener } from "./frontend.js";
import { Pipeline } from "./http-pipeline.js";
import { errorFields, logPath } from "./logger.js";

/** Limits of the listening server; the defaults suit an edge node. */
export interface HttpFrontendOptions {
  /** Largest request head (request line + headers) in bytes; beyond it the client gets 431. @default 16384 */
  maxHeaderSize?: number;
  /** Time a client has to send its complete request head. @default the frontend's `timeout.http_request` */
  headersTimeoutMs?: number;
  /** How long an idle keep-alive client connection stays open. @default 5000 */
  keepAliveTimeoutMs?: number;
  /** How long an idle pooled connection to a server stays open. @default 4000 */
  upstreamIdleMs?: number;
}

const DEFAULTS = { maxHeaderSize: 16_384, keepAliveTimeoutMs: 5_000, upstreamIdleMs: 4_000 };

/** Characters Node accepts in a reason phrase. */
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]{0,512}$/;

interface Target {
  server: ServerConfig;
  agent: http.Agent;
  request: typeof http.request;
  /** Host header for URL servers; undefined: pass the client's through. */
  hostHeader: string | undefined;
  servername: string | undefined;
}

/**
 * Where an exchange stands, for the client timeout: the node waits on the client while it
 * `buffer`s or `send`s the request body and while it is `responding`; on the store while
 * `queued`, and on the server while `waiting` for the response head.
 */
type Phase = "queued" | "buffer" | "send" | "waiting" | "responding";

/** Per-request state shared by the steps of one request. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  pipeline: Pipeline;
  /** The connection's lease-lost hook: it stops the exchange in service if it holds that lease. */
  onLeaseLost: (leaseId: string) => void;
  /** The response has been sent or the client went away. */
  ended: boolean;
  /** The node cut the exchange itself (a timeout): upstream errors that follow are not reported. */
  cut: boolean;
  phase: Phase;
  lease: Lease | undefined;
  upstream: http.ClientRequest | undefined;
  framing: Framing;
  /** The whole body, when it was received before the slot was taken. */
  body: Buffer | undefined;
  /** The start of a body longer than `buffer_request`, received before the slot; the rest follows from `req`. */
  bodyStart: Buffer | undefined;
  /** Ends a body buffering still in progress (the exchange ended meanwhile). */
  stopBuffering: (() => void) | undefined;
  /** What is left of `timeout.http_request` for the body; its clock stops while queued. */
  requestBudgetMs: number;
  requestTimer: ReturnType<typeof setTimeout> | undefined;
  clockStartedAt: number;
  startedAt: number;
  /** Took a unit of node.maxconn. */
  tookNodeSlot: boolean;
  /** Counted in the frontend's `active`. */
  active: boolean;
}

export function createHttpFrontend(
  frontend: FrontendConfig,
  backend: BackendConfig,
  ctx: FrontendContext,
  options: HttpFrontendOptions = {},
): FrontendListener {
  return new HttpFrontend(frontend, backend, ctx, { ...DEFAULTS, headersTimeoutMs: frontend.timeout.httpRequestMs, ...options });
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
  readonly #trusted: TrustedForwarders;
  /** Per client connection: its requests in line, and the exchange in service. */
  readonly #pipelines = new WeakMap<Socket, Pipeline>();
  readonly #current = new WeakMap<Pipeline, Exchange>();
  readonly #denyStatus: number;
  readonly #clientMs: number;
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
    this.#clientMs = frontend.timeout.clientMs;
    this.#trusted = new TrustedForwarders(frontend.forwardedFor.trusted);
    for (const server of backend.servers) this.#targets.set(server.name, makeTarget(server, options.upstreamIdleMs));

    this.#server = http.createServer({
      maxHeaderSize: options.maxHeaderSize,
      // Node's requestTimeout would also count the time a request waits in the queue, when the node
      // does not read its body on purpose: timeout.http_request is kept here instead (#startClock).
      requestTimeout: 0,
      // Slow heads (slowloris): the head must arrive within timeout.http_request.
      headersTimeout: options.headersTimeoutMs,
      // Node checks headersTimeout on this interval (30 s by default), so a slow head could
      // linger that long; check every second so it is cut close to its limit.
      connectionsCheckingInterval: 1_000,
      noDelay: true,
    });
    this.#server.keepAliveTimeout = options.keepAliveTimeoutMs;
    // timeout.client: socket inactivity. Node arms it on every connection; #onClientTimeout decides
    // whether the node was waiting on the client at that moment.
    this.#server.timeout = this.#clientMs;
    this.#server.on("timeout", (socket: Socket) => this.#onClientTimeout(socket));
    this.#server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => this.#pipeline(req.socket).push(req, res));
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

  // ── a client connection ──────────────────────────────────────────────────────────────────────

  /** The connection's pipeline (one 'close' listener per connection, whatever its number of requests). */
  #pipeline(socket: Socket): Pipeline {
    let pipeline = this.#pipelines.get(socket);
    if (pipeline) return pipeline;
    // One lease-lost hook per connection, not a closure per request (see LeaseWatch).
    const onLeaseLost = (leaseId: string) => {
      const ex = this.#current.get(p);
      if (ex !== undefined && ex.lease?.id === leaseId) this.#leaseLost(ex);
    };
    const p = new Pipeline(socket, {
      start: (req, res) => this.#start(p, onLeaseLost, req, res),
      overflow: () =>
        this.#ctx.logger.warn({ frontend: this.name, src: clientAddress(socket.remoteAddress) }, "too many pipelined requests on one connection: closing it"),
    });
    pipeline = p;
    this.#pipelines.set(socket, p);
    const closed = () => {
      // A request in line has no response socket yet: Node emits 'close' on neither it nor its
      // response when the connection closes. The connection's own 'close' ends them all.
      p.close();
      const ex = this.#current.get(p);
      if (ex) this.#end(ex);
    };
    if (socket.destroyed) queueMicrotask(closed);
    else socket.once("close", closed);
    return p;
  }

  /** timeout.client expired on a connection: cut it if the node was waiting on the client. */
  #onClientTimeout(socket: Socket): void {
    const pipeline = this.#pipelines.get(socket);
    const ex = pipeline ? this.#current.get(pipeline) : undefined;
    if (ex === undefined || ex.ended) {
      socket.destroy(); // idle between requests (keep-alive), or nothing parsed yet
      return;
    }
    const waitingOnClient = ex.phase === "responding" || ((ex.phase === "buffer" || ex.phase === "send") && !ex.req.complete);
    if (!waitingOnClient) {
      // Waiting on the store (timeout.queue bounds it) or the server (timeout.server): re-arm,
      // so that the client's silence is still noticed once the node turns back to it.
      socket.setTimeout(this.#clientMs);
      return;
    }
    this.#cutSlowClient(ex, "client");
  }

  // ── a request ────────────────────────────────────────────────────────────────────────────────

  #start(pipeline: Pipeline, onLeaseLost: (leaseId: string) => void, req: http.IncomingMessage, res: http.ServerResponse): void {
    const ex: Exchange = {
      req,
      res,
      pipeline,
      onLeaseLost,
      ended: false,
      cut: false,
      phase: "queued",
      lease: undefined,
      upstream: undefined,
      framing: requestFraming(req.headers["content-length"], req.headers["transfer-encoding"]),
      body: undefined,
      bodyStart: undefined,
      stopBuffering: undefined,
      requestBudgetMs: this.#frontend.timeout.httpRequestMs,
      requestTimer: undefined,
      clockStartedAt: 0,
      startedAt: performance.now(),
      tookNodeSlot: false,
      active: false,
    };
    this.#current.set(pipeline, ex);
    this.#open++;
    this.#handle(ex).catch((error: unknown) => {
      this.#ctx.logger.error({ frontend: this.name, err: errorFields(error, true) }, "request handler fault");
      countReject(this.#counters, "error");
      this.#answer(res, 500, "internal error\n", { "x-slotgate-error": "internal" });
    });
  }

  /** Ends an exchange, once: gives back its node slot and lease, and starts the connection's next request. */
  #end(ex: Exchange): void {
    if (ex.ended) return;
    ex.ended = true;
    this.#stopClock(ex);
    ex.stopBuffering?.();
    if (ex.tookNodeSlot) this.#ctx.limit.give();
    if (ex.active) this.#counters.active--;
    if (ex.lease) {
      this.#ctx.leases.unwatch(ex.lease.id);
      if (!ex.res.writableFinished) ex.upstream?.destroy();
      void ex.lease.release();
    }
    this.#open--;
    if (this.#current.get(ex.pipeline) === ex) this.#current.delete(ex.pipeline);
    ex.pipeline.done();
    if (this.#open === 0) this.#idle();
  }

  async #handle(ex: Exchange): Promise<void> {
    const { req, res } = ex;
    this.#counters.requests++;
    ex.tookNodeSlot = this.#ctx.limit.tryTake();
    const end = () => this.#end(ex);
    // `on`, not `once`: #end runs once anyway, and `once` wraps each listener in a bound function.
    res.on("finish", end);
    res.on("close", end);
    req.on("error", ignore); // a client reset mid-upload: the connection's 'close' handles it
    if (this.#draining) res.setHeader("connection", "close");

    if (!ex.tookNodeSlot) {
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
      this.#ctx.logger.info(
        { frontend: this.name, status: plan.status, reason: plan.message, src: clientAddress(req.socket.remoteAddress) },
        "request refused",
      );
      this.#answer(res, plan.status, `${plan.message}\n`, { connection: "close" });
      return;
    }

    if (ex.framing.kind !== "none" && this.#frontend.bufferRequestBytes > 0) {
      ex.phase = "buffer";
      this.#startClock(ex);
      const received = await this.#bufferBody(ex, this.#frontend.bufferRequestBytes);
      if (!received || ex.ended) return;
      this.#stopClock(ex);
    }

    ex.phase = "queued";
    this.#counters.queued++;
    let result: Awaited<ReturnType<FrontendContext["guard"]["acquire"]>>;
    try {
      // The planner builds a fresh options object per request: no copy needed to add the signal.
      plan.options.signal = ex.pipeline.controller.signal;
      result = await this.#ctx.guard.acquire(plan.options);
    } catch (error) {
      this.#guardFault(ex, error);
      return;
    } finally {
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
    ex.active = true;
    this.#counters.active++;
    // Through the guard's `lease-lost` event: reading lease.signal would make an AbortController per request.
    this.#ctx.leases.watch(lease.id, ex.onLeaseLost);

    const target = this.#target(lease);
    if (!target) {
      countReject(this.#counters, "error");
      this.#ctx.logger.error({ frontend: this.name, backend: this.#backend.name, server: lease.server }, "no server to send the request to");
      this.#answer(res, 503, "no server available\n", { "x-slotgate-error": "no-server" });
      return;
    }
    this.#forward(ex, target, 0);
  }

  /**
   * Receives up to `limit` bytes of the body before the slot is taken. Resolves true when the
   * whole body (`ex.body`) or its first `limit` bytes (`ex.bodyStart`, the rest left in `req`) are
   * in, false when the exchange ended first (the client left, or was too slow).
   */
  #bufferBody(ex: Exchange, limit: number): Promise<boolean> {
    const { req } = ex;
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (received: boolean) => {
        req.off("data", onData);
        req.off("end", onEnd);
        ex.stopBuffering = undefined;
        resolve(received);
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size < limit) return;
        req.pause(); // the rest stays in the socket until the slot is granted
        ex.bodyStart = Buffer.concat(chunks);
        finish(true);
      };
      const onEnd = () => {
        ex.body = Buffer.concat(chunks);
        // Known in full now: forwarded with its length, whatever framing the client used.
        ex.framing = ex.body.length > 0 ? { kind: "length", length: ex.body.length } : { kind: "none" };
        finish(true);
      };
      ex.stopBuffering = () => finish(false);
      req.on("data", onData);
      req.once("end", onEnd);
    });
  }

  /** Starts (or restarts) the clock of timeout.http_request while the node reads the request. */
  #startClock(ex: Exchange): void {
    if (ex.requestTimer !== undefined) return;
    ex.clockStartedAt = performance.now();
    ex.requestTimer = setTimeout(
      () => {
        ex.requestTimer = undefined;
        this.#cutSlowClient(ex, "http_request");
      },
      Math.max(0, ex.requestBudgetMs),
    );
  }

  #stopClock(ex: Exchange): void {
    if (ex.requestTimer === undefined) return;
    clearTimeout(ex.requestTimer);
    ex.requestTimer = undefined;
    ex.requestBudgetMs -= performance.now() - ex.clockStartedAt;
  }

  /**
   * The client did not send its request in time (`http_request`), or went silent while the node
   * waited on it (`client`): 408 while no response has started, else the connection is cut. The
   * slot is released either way (the exchange ends), and the upstream request is abandoned.
   */
  #cutSlowClient(ex: Exchange, timeout: "http_request" | "client"): void {
    if (ex.ended) return;
    ex.cut = true;
    const { req, res } = ex;
    countReject(this.#counters, "client-timeout");
    this.#ctx.logger.info(
      { frontend: this.name, timeout, phase: ex.phase, waitedMs: Math.round(performance.now() - ex.startedAt), src: clientAddress(req.socket.remoteAddress) },
      "client too slow",
    );
    ex.upstream?.destroy();
    if (res.headersSent) {
      req.socket.destroy();
      return;
    }
    this.#answer(res, 408, "408 Request Timeout\n", { connection: "close", "x-slotgate-error": timeout === "client" ? "client-timeout" : "request-timeout" });
  }

  /** The lease was lost mid-request: the slot may be someone else's now, so the request stops here. */
  #leaseLost(ex: Exchange): void {
    if (ex.ended) return;
    ex.cut = true;
    const { req, res } = ex;
    countReject(this.#counters, "lease-lost");
    this.#ctx.logger.warn(
      { frontend: this.name, lease: ex.lease?.id, server: ex.lease?.server, phase: ex.phase, src: clientAddress(req.socket.remoteAddress) },
      "lease lost mid-request: request stopped",
    );
    ex.upstream?.destroy();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const answer = leaseLostAnswer();
    this.#answer(res, answer.status, answer.body, { ...answer.headers, connection: "close" });
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
    const address = target.server.address;
    let upstream: http.ClientRequest;
    try {
      upstream = target.request({
        host: address.host,
        port: address.port,
        method: req.method,
        path: upstreamPath(address.path, req.url ?? "/"),
        headers: requestHeaders(req, {
          client: clientAddress(req.socket.remoteAddress),
          trusted: this.#trusted.trusts(req.socket.remoteAddress),
          hostHeader: target.hostHeader,
          framing: ex.framing,
        }),
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
    let failed = false;
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

    const fail = (error: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      if (failed || ex.ended || ex.cut) return; // the client left (end() destroyed the upstream request), or the node cut it
      failed = true;
      if (responded) {
        // Mid-response: the status line is out, so the only honest signal is a cut connection.
        this.#ctx.logger.warn({ frontend: this.name, server: target.server.name, err: errorFields(error) }, "response cut");
        res.destroy();
        return;
      }
      if (ex.framing.kind === "none" && attempt === 0 && upstream.reusedSocket && error.code === "ECONNRESET") {
        this.#forward(ex, target, attempt + 1);
        return;
      }
      const kind: UpstreamErrorKind =
        error.code === "SLOTGATE_CONNECT_TIMEOUT"
          ? "connect-timeout"
          : !connected
            ? "connect-failed"
            : error.code === "SLOTGATE_SERVER_TIMEOUT"
              ? "server-timeout"
              : "bad-response";
      const answer = upstreamErrorAnswer(kind);
      countReject(this.#counters, "error");
      this.#ctx.logger.warn(
        { frontend: this.name, backend: this.#backend.name, server: target.server.name, status: answer.status, error: kind, err: errorFields(error) },
        "upstream error",
      );
      // The body may be partly unread: close the client connection rather than read it to its end.
      this.#answer(res, answer.status, answer.body, { ...answer.headers, ...(req.complete ? {} : { connection: "close" }) });
    };
    upstream.on("error", fail);
    // The request asked for no upgrade (Upgrade is hop-by-hop and never forwarded), so a 101 is a
    // broken server. Node hands the socket to an 'upgrade' listener, and destroys it without any
    // event when there is none: the client would get nothing and the slot stay held.
    upstream.on("upgrade", (_upRes: http.IncomingMessage, socket: Socket) => {
      socket.destroy();
      fail(tagged("SLOTGATE_UNEXPECTED_UPGRADE", "the server switched protocols on a request that asked for no upgrade"));
    });
    // Whatever else ends the upstream request before a response (and without an error event).
    upstream.on("close", () => {
      if (!responded) fail(tagged("SLOTGATE_NO_RESPONSE", "the server closed without a response"));
    });

    upstream.on("response", (upstreamRes: http.IncomingMessage) => {
      responded = true;
      clearTimeout(connectTimer);
      if (ex.ended || ex.cut) {
        upstreamRes.resume();
        upstream.destroy();
        return;
      }
      ex.phase = "responding";
      upstreamRes.on("error", ignore);
      upstreamRes.on("close", () => {
        // Ended before its end (server reset, server timeout): cut the client's response too.
        if (!upstreamRes.complete && !ex.ended) res.destroy();
      });
      try {
        const status = upstreamRes.statusCode ?? 502;
        const headers = responseHeaders(upstreamRes);
        if (this.#draining || !req.complete) headers.connection = "close";
        const reason = upstreamRes.statusMessage;
        if (reason !== undefined && REASON_PHRASE.test(reason)) res.writeHead(status, reason, headers);
        else res.writeHead(status, headers);
      } catch (error) {
        upstreamRes.resume();
        upstream.destroy();
        countReject(this.#counters, "error");
        this.#ctx.logger.warn({ frontend: this.name, server: target.server.name, err: errorFields(error) }, "unusable response head");
        const answer = upstreamErrorAnswer("bad-response");
        this.#answer(res, answer.status, answer.body, answer.headers);
        return;
      }
      upstreamRes.pipe(res);
    });

    this.#sendBody(ex, upstream);
  }

  /** Sends the request body with the framing the headers announced; never a body unframed. */
  #sendBody(ex: Exchange, upstream: http.ClientRequest): void {
    const { req } = ex;
    if (ex.framing.kind === "none") {
      ex.phase = "waiting";
      upstream.end();
      return;
    }
    if (ex.body !== undefined) {
      ex.phase = "waiting";
      upstream.end(ex.body);
      return;
    }
    ex.phase = "send";
    if (ex.bodyStart !== undefined) {
      upstream.write(ex.bodyStart);
      ex.bodyStart = undefined;
    }
    // The rest of the body counts against timeout.http_request (the clock stopped while queued).
    this.#startClock(ex);
    req.once("end", () => {
      this.#stopClock(ex);
      if (ex.phase === "send") ex.phase = "waiting";
    });
    req.pipe(upstream);
  }

  // ── answers the node gives itself ───────────────────────────────────────────────────────────

  #deny(ex: Exchange, reason: DenyReason, retryAfterMs: number, limit?: string): void {
    countReject(this.#counters, reason);
    const { req, res } = ex;
    const answer = denyAnswer(this.#denyStatus, reason, retryAfterMs);
    this.#ctx.logger.info(
      {
        frontend: this.name,
        status: answer.status,
        reason,
        ...(limit === undefined ? {} : { limit }),
        waitedMs: Math.round(performance.now() - ex.startedAt),
        method: clip(req.method, 32),
        path: logPath(req.url, this.#ctx.config, this.name),
        src: clientAddress(req.socket.remoteAddress),
      },
      "request rejected",
    );
    // An unread body would be read and thrown away to keep the connection; closing is cheaper.
    this.#answer(res, answer.status, answer.body, req.complete ? answer.headers : { ...answer.headers, connection: "close" });
  }

  #guardFault(ex: Exchange, error: unknown): void {
    const fault = classifyGuardFault(error);
    if (fault === "closed") {
      if (!ex.ended) this.#deny(ex, "unavailable", DEFAULT_RETRY_AFTER_MS);
      return;
    }
    if (fault === "bad-request") {
      countReject(this.#counters, "bad-request");
      this.#ctx.logger.info({ frontend: this.name, err: errorFields(error) }, "request refused by the guard");
      this.#answer(ex.res, 400, "bad request\n", { connection: "close" });
      return;
    }
    countReject(this.#counters, "error");
    const known = fault === "unknown-scope";
    this.#ctx.logger.error(
      { frontend: this.name, err: errorFields(error, !known) },
      known ? "request names a scope the store does not know" : "acquire failed",
    );
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

/** For the 'error' events handled elsewhere ('close'), one function rather than one per request. */
function ignore(): void {}

function tagged(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}
