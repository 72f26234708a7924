// The baseline of scripts/bench/proxy.ts: a plain Node reverse proxy with no limits, on the same
// HTTP stack as slotgate's src/node/http-proxy.ts, so that the difference between the two is what
// slotgate adds (node.maxconn, the request planner, guard.acquire / lease.release, the
// AbortController and the bookkeeping around them), not a different way of proxying.
//
//   node scripts/bench/proxy/plain-proxy.mjs --target 127.0.0.1:9001 [--port 0]
//
// Prints `listening <port>` on stdout once bound to 127.0.0.1.
//
// Kept identical to http-proxy.ts (same options, same per-request work):
// - the listening server: maxHeaderSize 16384, headersTimeout 20 s, requestTimeout 0, noDelay,
//   keepAliveTimeout 5 s;
// - one keep-alive http.Agent for the server: keepAliveMsecs 1000, maxFreeSockets 256, lifo,
//   idle timeout 4 s;
// - hop-by-hop headers (and those the Connection header lists) dropped both ways, x-forwarded-for
//   / -proto / -host set, the client's Host passed through;
// - the connect timer (only when the socket is still connecting), timeout.server through
//   ClientRequest.setTimeout, the 'finish'/'close' end hook per request, a retry of a body-less
//   request whose reused connection was reset, the reason phrase check, bodies piped both ways.
// Left out: everything of the guard, and the node's own error answers are reduced to the
// statuses (no logging, no counters).
import { Buffer } from "node:buffer";
import http from "node:http";
import { clearTimeout, setTimeout } from "node:timers";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, target: { type: "string" } },
  strict: true,
});
const match = /^([\d.]+):(\d+)$/.exec(values.target ?? "");
if (!match) {
  console.error("usage: plain-proxy.mjs --target 127.0.0.1:PORT [--port 0]");
  process.exit(2);
}
const TARGET = { host: match[1], port: Number(match[2]) };
const CONNECT_MS = 5_000;
const SERVER_MS = 60_000;

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "expect"]);
const FORWARDED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]);
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]{0,512}$/;

const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 256, scheduling: "lifo", timeout: 4_000 });

const server = http.createServer({ maxHeaderSize: 16_384, requestTimeout: 0, headersTimeout: 20_000, noDelay: true });
server.keepAliveTimeout = 5_000;

server.on("request", (req, res) => {
  const ex = { ended: false, upstream: undefined };
  const end = () => {
    if (ex.ended) return;
    ex.ended = true;
    if (!res.writableFinished) ex.upstream?.destroy();
  };
  res.once("finish", end);
  res.once("close", end);
  req.on("error", () => undefined);
  forward(ex, req, res, 0);
});
server.on("clientError", (_error, socket) => socket.destroy());

function forward(ex, req, res, attempt) {
  const hasBody = requestHasBody(req);
  let upstream;
  try {
    upstream = http.request({ host: TARGET.host, port: TARGET.port, method: req.method, path: req.url ?? "/", headers: upstreamHeaders(req), agent });
  } catch {
    answer(res, 400, "bad request\n");
    return;
  }
  ex.upstream = upstream;

  let connected = false;
  let responded = false;
  let connectTimer;
  upstream.on("socket", (socket) => {
    if (!socket.connecting) {
      connected = true;
      return;
    }
    connectTimer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timeout"), { code: "CONNECT_TIMEOUT" })), CONNECT_MS);
    socket.once("connect", () => {
      connected = true;
      clearTimeout(connectTimer);
    });
  });
  upstream.setTimeout(SERVER_MS, () => upstream.destroy(Object.assign(new Error("server timeout"), { code: "SERVER_TIMEOUT" })));

  upstream.on("error", (error) => {
    clearTimeout(connectTimer);
    if (ex.ended) return;
    if (responded) {
      res.destroy();
      return;
    }
    if (!hasBody && attempt === 0 && upstream.reusedSocket && error.code === "ECONNRESET") {
      forward(ex, req, res, attempt + 1);
      return;
    }
    const status = error.code === "SERVER_TIMEOUT" ? 504 : connected ? 502 : 503;
    answer(res, status, `${status}\n`);
  });

  upstream.on("response", (upstreamRes) => {
    responded = true;
    clearTimeout(connectTimer);
    if (ex.ended) {
      upstreamRes.resume();
      upstream.destroy();
      return;
    }
    upstreamRes.on("error", () => undefined);
    upstreamRes.on("close", () => {
      if (!upstreamRes.complete && !ex.ended) res.destroy();
    });
    try {
      const status = upstreamRes.statusCode ?? 502;
      const headers = responseHeaders(upstreamRes);
      const reason = upstreamRes.statusMessage;
      if (reason !== undefined && REASON_PHRASE.test(reason)) res.writeHead(status, reason, headers);
      else res.writeHead(status, headers);
    } catch {
      upstreamRes.resume();
      upstream.destroy();
      answer(res, 502, "502\n");
      return;
    }
    upstreamRes.pipe(res);
  });

  if (hasBody) req.pipe(upstream);
  else upstream.end();
}

function upstreamHeaders(req) {
  const listed = connectionTokens(req.headers.connection);
  const out = Object.create(null);
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
  return out;
}

function responseHeaders(res) {
  const listed = connectionTokens(res.headers.connection);
  const out = Object.create(null);
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || name.startsWith("proxy-") || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function connectionTokens(value) {
  const out = new Set();
  if (value === undefined) return out;
  for (const part of (Array.isArray(value) ? value.join(",") : value).split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "") out.add(token);
  }
  return out;
}

/** As src/node/frontend.ts clientAddress: IPv4-mapped IPv6 shown as IPv4. */
function clientAddress(address) {
  if (address === undefined) return undefined;
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

function requestHasBody(req) {
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}

function answer(res, status, body) {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
}

server.listen({ host: "127.0.0.1", port: Number(values.port) }, () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : ""}`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
