/**
 * A TCP frontend (`mode: tcp`): a slot is a client connection, held for the connection's whole
 * life.
 *
 * - Accepted connections are paused at once (`pauseOnConnect`). While one waits for its slot, what
 *   it sends is kept (up to {@link EARLY_DATA_LIMIT} bytes, then reading stops) so that a client
 *   that closes (or half-closes) is noticed and leaves the queue at once.
 * - Granted: the node connects to the chosen server (`timeout.connect`), replays what the client
 *   already sent, then pipes both ways with back pressure; a half-close is passed on. The lease is
 *   released when either side closes; the other side is then ended once its pending data is out.
 *   `timeout.server` is the pair's inactivity timeout (no byte either way): both are closed.
 * - Rejected (`full`, `queue-full`, `queue-timeout`, `unavailable`): as Envoy's connection_limit
 *   filter (Gloo's `delay_before_close`), the node stops reading and closes the connection after
 *   `delay_before_close` (at once when 0). TCP has no status to send. At most
 *   {@link MAX_HELD_REJECTED} rejected connections are held at a time; beyond that they are closed
 *   at once (a flood must not pin file descriptors).
 * - A connection the server refuses, or one not made within `timeout.connect`, closes the client
 *   connection (counted as `error`).
 * - A lease lost while the connection is open (SPEC §2 rules 9 and 12: its slot may be someone
 *   else's by now) closes both sides at once (counted as `lease-lost`).
 */
import net, { type Socket } from "node:net";
import type { Lease } from "../core/lease.js";
import type { BackendConfig, FrontendConfig, ServerConfig } from "../edge/config/schema.js";
import {
  boundAddress,
  listenOn,
  countReject,
  emptyCounters,
  type FrontendContext,
  type FrontendCounters,
  type FrontendListener,
  type RejectCounterName,
} from "./frontend.js";
import { clientAddress } from "../edge/answers.js";
import { errorFields } from "./logger.js";

/** Bytes of client data kept while the connection waits for its slot; then reading stops. */
export const EARLY_DATA_LIMIT = 64 * 1024;
/** Rejected connections held for `delay_before_close` at the same time, at most. */
export const MAX_HELD_REJECTED = 10_000;
/** After one side closed, how long the other may take to flush before it is destroyed. */
const LINGER_MS = 5_000;

export function createTcpFrontend(frontend: FrontendConfig, backend: BackendConfig, ctx: FrontendContext): FrontendListener {
  return new TcpFrontend(frontend, backend, ctx);
}

class TcpFrontend implements FrontendListener {
  readonly name: string;
  readonly mode = "tcp" as const;
  readonly #frontend: FrontendConfig;
  readonly #backend: BackendConfig;
  readonly #ctx: FrontendContext;
  readonly #server: net.Server;
  readonly #counters: FrontendCounters = emptyCounters();
  /** Every socket still open: clients and server-side connections. */
  readonly #sockets = new Set<Socket>();
  /** Rejected client sockets waiting for their delayed close. */
  readonly #held = new Map<Socket, ReturnType<typeof setTimeout>>();
  #open = 0;
  #idleWaiters: Array<() => void> = [];
  #draining = false;
  #listening = false;
  #rr = 0;

  constructor(frontend: FrontendConfig, backend: BackendConfig, ctx: FrontendContext) {
    this.name = frontend.name;
    this.#frontend = frontend;
    this.#backend = backend;
    this.#ctx = ctx;
    this.#server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true });
    this.#server.on("connection", (socket: Socket) => {
      this.#onConnection(socket).catch((error: unknown) => {
        this.#ctx.logger.error({ frontend: this.name, err: errorFields(error, true) }, "connection handler fault");
        countReject(this.#counters, "error");
        socket.destroy();
      });
    });
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
    if (this.#listening) this.#server.close();
    // Rejected connections only wait to be closed: no reason to keep them through a drain.
    for (const socket of [...this.#held.keys()]) socket.destroy();
  }

  whenIdle(): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): Promise<void> {
    this.stopAccepting();
    for (const socket of [...this.#sockets]) socket.destroy();
    if (!this.#listening) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#listening = false;
        resolve();
      };
      if (!this.#server.listening) done();
      else this.#server.once("close", done);
    });
  }

  // ── a connection ─────────────────────────────────────────────────────────────────────────────

  async #onConnection(socket: Socket): Promise<void> {
    this.#counters.requests++;
    this.#track(socket);
    this.#open++;
    const tookNodeSlot = this.#ctx.limit.tryTake();
    const controller = new AbortController();
    let active = false;
    // Filled in once granted and connected; the close handler below reads them.
    const held: { lease: Lease | undefined; upstream: Socket | undefined } = { lease: undefined, upstream: undefined };
    let closed = false;
    socket.on("error", () => undefined);
    let waiting = false;
    socket.once("close", () => {
      closed = true;
      if (waiting) controller.abort();
      if (held.lease) this.#ctx.leases.unwatch(held.lease.id);
      if (tookNodeSlot) this.#ctx.limit.give();
      if (active) this.#counters.active--;
      void held.lease?.release();
      if (held.upstream && !held.upstream.destroyed) lingerThenDestroy(held.upstream);
      this.#open--;
      if (this.#open === 0) this.#idle();
    });
    const src = clientAddress(socket.remoteAddress);

    if (this.#draining) {
      socket.destroy();
      return;
    }
    if (!tookNodeSlot) {
      this.#reject(socket, "full", src, "node.maxconn");
      return;
    }
    const plan = this.#ctx.planner(this.name, { src: socket.remoteAddress });
    if (!plan.ok) {
      // tcp keys come from the client address only, so this cannot happen; close rather than guess.
      countReject(this.#counters, "bad-request");
      socket.destroy();
      return;
    }

    // Read while waiting, to notice a client that goes away; keep what it sends for the server.
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const onData = (chunk: Buffer) => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes >= EARLY_DATA_LIMIT) socket.pause();
    };
    const onEnd = () => {
      if (waiting) controller.abort();
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.resume();

    this.#counters.queued++;
    waiting = true;
    let result: Awaited<ReturnType<FrontendContext["guard"]["acquire"]>>;
    try {
      result = await this.#ctx.guard.acquire({ ...plan.options, signal: controller.signal });
    } catch (error) {
      waiting = false;
      this.#counters.queued--;
      socket.off("data", onData);
      countReject(this.#counters, "error");
      this.#ctx.logger.error({ frontend: this.name, err: errorFields(error) }, "acquire failed");
      socket.destroy();
      return;
    }
    waiting = false;
    this.#counters.queued--;
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.pause();

    if (!result.ok) {
      if (closed || socket.readableEnded) {
        countReject(this.#counters, "aborted");
        socket.destroy();
        return;
      }
      this.#reject(socket, result.reason === "aborted" ? "unavailable" : result.reason, src);
      return;
    }
    const granted = result.lease;
    held.lease = granted;
    if (closed || socket.readableEnded) {
      countReject(this.#counters, "aborted");
      socket.destroy(); // 'close' (already fired, or about to) releases the lease
      if (closed) void granted.release();
      return;
    }
    active = true;
    this.#counters.active++;
    this.#ctx.leases.watch(granted.id, () => {
      if (closed) return;
      countReject(this.#counters, "lease-lost");
      this.#ctx.logger.warn(
        { frontend: this.name, lease: granted.id, server: granted.server, src },
        "lease lost while the connection was open: connection closed",
      );
      held.upstream?.destroy();
      socket.destroy();
    });

    const server = this.#pickServer(granted);
    if (!server) {
      countReject(this.#counters, "error");
      this.#ctx.logger.error({ frontend: this.name, backend: this.#backend.name, server: granted.server }, "no server to connect to");
      socket.destroy();
      return;
    }
    held.upstream = this.#connect(socket, server, early, () => void granted.release());
  }

  #connect(client: Socket, server: ServerConfig, early: Buffer[], release: () => void): Socket {
    const { connectMs, serverMs } = this.#backend.timeout;
    const upstream = net.connect({ host: server.address.host, port: server.address.port, allowHalfOpen: true, noDelay: true });
    this.#track(upstream);
    let connected = false;
    const connectTimer = setTimeout(
      () => upstream.destroy(Object.assign(new Error(`no connection within ${connectMs}ms`), { code: "SLOTGATE_CONNECT_TIMEOUT" })),
      connectMs,
    );
    let failed = false;
    upstream.on("error", (error: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      if (failed) return;
      failed = true;
      if (!connected) {
        countReject(this.#counters, "error");
        this.#ctx.logger.warn(
          {
            frontend: this.name,
            server: server.name,
            error: error.code === "SLOTGATE_CONNECT_TIMEOUT" ? "connect-timeout" : "connect-failed",
            err: errorFields(error),
          },
          "upstream connect failed",
        );
      } else {
        this.#ctx.logger.debug({ frontend: this.name, server: server.name, err: errorFields(error) }, "upstream connection error");
      }
      client.destroy();
    });
    upstream.once("connect", () => {
      connected = true;
      clearTimeout(connectTimer);
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      upstream.setTimeout(serverMs, () => {
        this.#ctx.logger.debug({ frontend: this.name, server: server.name }, "connection idle past timeout.server");
        upstream.destroy();
        client.destroy();
      });
      for (const chunk of early) upstream.write(chunk);
      early.length = 0;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once("close", () => {
      clearTimeout(connectTimer);
      release(); // either side closing ends the slot
      if (!client.destroyed) lingerThenDestroy(client);
    });
    return upstream;
  }

  /** The server of a lease; a fail-open lease has none, so one is picked here (round robin over the servers up). */
  #pickServer(lease: Lease): ServerConfig | undefined {
    if (lease.server !== undefined) return this.#backend.servers.find((s) => s.name === lease.server);
    const up = this.#backend.servers.filter((s) => !s.down);
    return up.length === 0 ? undefined : up[this.#rr++ % up.length];
  }

  #reject(socket: Socket, reason: Exclude<RejectCounterName, "aborted" | "bad-request" | "error">, src: string | undefined, limit?: string): void {
    countReject(this.#counters, reason);
    const delayMs = this.#frontend.delayBeforeCloseMs;
    this.#ctx.logger.info({ frontend: this.name, reason, ...(limit === undefined ? {} : { limit }), src, delayBeforeCloseMs: delayMs }, "connection rejected");
    socket.pause();
    if (delayMs === 0 || this.#held.size >= MAX_HELD_REJECTED || this.#draining) {
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => socket.destroy(), delayMs);
    this.#held.set(socket, timer);
    socket.once("close", () => {
      clearTimeout(timer);
      this.#held.delete(socket);
    });
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #idle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** Ends a socket and destroys it once its pending output is flushed (or after {@link LINGER_MS}). */
function lingerThenDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once("finish", () => socket.destroy());
  socket.end();
}
