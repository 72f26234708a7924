/**
 * The stats listener (SPEC §5 `stats:`): a small `node:http` server with three read-only endpoints.
 *
 * - `GET /stats`       the HTML page (render-html.ts); `?refresh=N` sets the auto-refresh in
 *                      seconds (0 turns it off, at most 3600; default 5).
 * - `GET /stats.json`  `{ generatedAt, group, stats: GuardStats, node: NodeStats }`.
 * - `GET /metrics`     Prometheus text format 0.0.4 (metrics.ts).
 *
 * `HEAD` is answered like `GET` without a body; any other method gets 405 (with `Allow`), any other
 * path 404. Responses are `Cache-Control: no-store`, and the page is served under a CSP that allows
 * no script at all, as a second line behind the escaping of every value.
 *
 * Auth: with a token, every request (whatever its path) needs `Authorization: Bearer <token>` or
 * `?token=<token>`, else 401 with `WWW-Authenticate: Bearer`. The query form is for browsers; it
 * ends up in browser history, so prefer the header for scrapers. The listener refuses to be
 * created off loopback without a token (the config layer requires one already; this is defence in
 * depth). The token is never logged, nor is any request URL (it may carry `?token=`).
 *
 * DNS rebinding: without a token, the listener answers only requests whose `Host` names a
 * loopback address (127.0.0.0/8, [::1]) or `localhost`, with or without a port; anything else,
 * a missing `Host` included, gets 421 Misdirected Request. Otherwise a page on any web site could
 * point its own name at 127.0.0.1 and read the stats from the operator's browser, since the
 * browser takes the response as same-origin. With a token the token is the protection (a
 * rebinding page cannot know it), so any `Host` is answered, as before.
 *
 * Key values: every endpoint shows the snapshot through `readPublicStats` (keys.ts), which
 * replaces keyed-limit values and fairness flow names by digests unless `stats.show_keys` is set.
 *
 * Store failure: the cluster-wide numbers come from `guard.stats()`, i.e. from the store. When that
 * throws or takes longer than 5 s, `/stats.json` answers 503 with the error and this node's own
 * numbers, `/stats` answers 503 with an error banner and the node section, and `/metrics` answers
 * 200 with `slotgate_store_up 0` and the node's series (Prometheus convention: a scrape that fails
 * loses every series, and the node ones are still true). Concurrent requests share one
 * `guard.stats()` call.
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { SlotgateError, isSlotgateError } from "../../core/errors.js";
import type { Guard, GuardStats } from "../../core/guard.js";
import { isLoopback, parseIPv4, parseIPv6, parseIp } from "../../edge/config/match.js";
import type { BindAddress, EdgeConfig } from "../../edge/config/schema.js";
import { createTokenChecker, type TokenChecker } from "./auth.js";
import { readPublicStats } from "./keys.js";
import { createStatsMetrics } from "./metrics.js";
import type { NodeStats } from "./model.js";
import { renderStatsPage } from "./render-html.js";

export interface StatsLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export interface StatsListenerOptions {
  bind: BindAddress;
  /** Required unless `bind` is a loopback address. */
  token: string | null;
  guard: Pick<Guard, "stats">;
  config: EdgeConfig;
  /** This process's own numbers; called on every request, must be cheap and must not throw. */
  node: () => NodeStats;
  logger?: StatsLogger;
}

export interface StatsListener {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Where it listens (the actual port when bound to port 0), or null when not listening. */
  address(): { host: string; port: number } | null;
}

export const DEFAULT_REFRESH_SECONDS = 5;
export const MAX_REFRESH_SECONDS = 3600;
/** How long a request waits for `guard.stats()` before it reports the store unavailable. */
export const STATS_TIMEOUT_MS = 5_000;

const ROUTES = new Set(["/stats", "/stats.json", "/metrics"]);
const MAX_ERROR_MESSAGE = 300;

const COMMON_HEADERS: OutgoingHttpHeaders = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

type StatsResult = { ok: true; stats: GuardStats } | { ok: false; error: { code: string; message: string } };

export function createStatsListener(options: StatsListenerOptions): StatsListener {
  const { bind, token, guard, config, node, logger } = options;
  if (token !== null && (typeof token !== "string" || token.length === 0)) {
    throw new SlotgateError("SLOTGATE_INVALID_CONFIG", "stats.token: expected a non-empty string or null");
  }
  if (token === null && !(bind.loopback && isLoopbackHost(bind.host))) {
    throw new SlotgateError(
      "SLOTGATE_INVALID_CONFIG",
      `stats.token: a token is required when the stats listener binds a non-loopback address (${bind.text}); refusing to start`,
    );
  }
  const auth: TokenChecker | null = token === null ? null : createTokenChecker(token);
  const metrics = createStatsMetrics(config);

  let server: Server | null = null;
  let bound: { host: string; port: number } | null = null;
  let inflight: Promise<StatsResult> | null = null;
  let storeOk = true;

  function readStats(): Promise<StatsResult> {
    inflight ??= fetchStats().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  async function fetchStats(): Promise<StatsResult> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `the store did not answer within ${STATS_TIMEOUT_MS} ms`, { retryable: true })),
          STATS_TIMEOUT_MS,
        );
        timer.unref?.();
      });
      const stats = await Promise.race([readPublicStats(guard, config), timeout]);
      if (!storeOk) logger?.info({}, "stats: store readable again");
      storeOk = true;
      return { ok: true, stats };
    } catch (error) {
      const e = describeError(error);
      if (storeOk) logger?.warn({ code: e.code, err: e.message }, "stats: cannot read the store; serving this node's numbers only");
      storeOk = false;
      return { ok: false, error: e };
    } finally {
      clearTimeout(timer);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://stats.invalid");
    } catch {
      return send(res, 400, "text/plain; charset=utf-8", "400 bad request\n");
    }
    if (!auth && !isLoopbackHostHeader(req.headers.host)) {
      return send(
        res,
        421,
        "text/plain; charset=utf-8",
        "421 misdirected request: without a token, this listener answers only Host: localhost or a loopback address\n",
      );
    }
    let linkQuery = "";
    if (auth) {
      const source = auth.check(req.headers, url.searchParams);
      if (source === null) {
        const given = req.headers.authorization !== undefined || url.searchParams.has("token");
        return send(res, 401, "text/plain; charset=utf-8", "401 unauthorized: send Authorization: Bearer <token> (or ?token=<token>)\n", {
          "www-authenticate": given ? 'Bearer realm="slotgate stats", error="invalid_token"' : 'Bearer realm="slotgate stats"',
        });
      }
      // A browser that came with ?token= keeps it on the page's links to the other endpoints.
      if (source === "query") linkQuery = new URLSearchParams({ token: url.searchParams.get("token")! }).toString();
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(res, 405, "text/plain; charset=utf-8", "405 method not allowed\n", { allow: "GET, HEAD" });
    }
    if (!ROUTES.has(url.pathname)) {
      return send(res, 404, "text/plain; charset=utf-8", "404 not found: try /stats, /stats.json or /metrics\n");
    }

    const result = await readStats();
    const nodeStats = node();
    const generatedAt = new Date();
    switch (url.pathname) {
      case "/stats.json": {
        const body = result.ok
          ? { generatedAt: generatedAt.toISOString(), group: config.group, stats: result.stats, node: nodeStats }
          : { generatedAt: generatedAt.toISOString(), group: config.group, stats: null, error: result.error, node: nodeStats };
        return send(res, result.ok ? 200 : 503, "application/json; charset=utf-8", `${JSON.stringify(body)}\n`);
      }
      case "/metrics": {
        const text = await metrics.render({ stats: result.ok ? result.stats : null, node: nodeStats });
        return send(res, 200, metrics.contentType, text);
      }
      default: {
        const page = renderStatsPage({
          config,
          node: nodeStats,
          stats: result.ok ? result.stats : null,
          error: result.ok ? null : result.error,
          generatedAt,
          refreshSeconds: parseRefresh(url.searchParams.get("refresh")),
          linkQuery,
        });
        return send(res, result.ok ? 200 : 503, "text/html; charset=utf-8", page);
      }
    }
  }

  return {
    async start() {
      if (server) return;
      const s = createServer((req, res) => {
        handle(req, res).catch((error: unknown) => {
          logger?.warn({ err: describeError(error).message }, "stats: request failed");
          if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "500 internal error\n");
          else res.destroy();
        });
      });
      s.headersTimeout = 10_000;
      s.requestTimeout = 15_000;
      s.keepAliveTimeout = 5_000;
      await new Promise<void>((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        s.once("error", onError);
        s.listen({ host: bind.host, port: bind.port }, () => {
          s.off("error", onError);
          resolve();
        });
      });
      s.on("error", (error) => logger?.warn({ err: error.message }, "stats: listener error"));
      server = s;
      const a = s.address() as AddressInfo;
      bound = { host: bind.host, port: a.port };
      logger?.info(
        { address: bind.family === 6 ? `[${bind.host}]:${a.port}` : `${bind.host}:${a.port}`, auth: auth ? "token" : "none" },
        "stats listener started",
      );
    },

    async stop() {
      const s = server;
      if (!s) return;
      server = null;
      bound = null;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
      logger?.info({}, "stats listener stopped");
    },

    address() {
      return bound ? { ...bound } : null;
    },
  };
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, ...headers, "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** `?refresh=N`: 0 (off) to {@link MAX_REFRESH_SECONDS}; anything else means the default. */
export function parseRefresh(value: string | null): number | null {
  if (value === null || !/^\d{1,5}$/.test(value)) return DEFAULT_REFRESH_SECONDS;
  const n = Number(value);
  if (n === 0) return null;
  return Math.min(n, MAX_REFRESH_SECONDS);
}

function isLoopbackHost(host: string): boolean {
  const bytes = parseIp(host);
  return bytes !== undefined && isLoopback(bytes);
}

/**
 * Whether a `Host` header names this machine's loopback: `localhost`, an IPv4 address in
 * 127.0.0.0/8 in dotted-quad form, or `[::1]` (any spelling), each optionally with `:port`; case
 * does not matter. A missing or empty Host is not. Only exact forms pass: `localhost.evil.com`,
 * `127.0.0.1.nip.io` or `2130706433` are names a rebinding attacker controls or could.
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (host === undefined) return false;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(host);
  if (!m) return false;
  if (m[2] !== undefined && m[2].toLowerCase() === "localhost") return true;
  const bytes = m[1] !== undefined ? parseIPv6(m[1]) : parseIPv4(m[2]!);
  return bytes !== undefined && isLoopback(bytes);
}

function describeError(error: unknown): { code: string; message: string } {
  const code = isSlotgateError(error) ? error.code : "SLOTGATE_STORE_UNAVAILABLE";
  const raw = error instanceof Error ? error.message : String(error);
  return { code, message: raw.length > MAX_ERROR_MESSAGE ? `${raw.slice(0, MAX_ERROR_MESSAGE)}…` : raw };
}
