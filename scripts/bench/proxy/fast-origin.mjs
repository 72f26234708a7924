// The fast origin of scripts/bench/proxy.ts: a separate process (so it never shares an event loop
// with a proxy under test) that answers every request at once with 200 "ok".
//
//   node scripts/bench/proxy/fast-origin.mjs [--port 0]
//
// Prints `listening <port>` on stdout once bound to 127.0.0.1. Request bodies are read and thrown
// away. Idle keep-alive connections stay open for 65 s, longer than any proxy's pool keeps them,
// so the proxies (not the origin) decide when a pooled connection ends.
import http from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string", default: "0" } }, strict: true });

const BODY = "ok";
const HEADERS = { "content-type": "text/plain", "content-length": String(BODY.length) };

const server = http.createServer({ noDelay: true, requestTimeout: 0 }, (req, res) => {
  req.resume();
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen({ host: "127.0.0.1", port: Number(values.port) }, () => {
  const address = server.address();
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : ""}`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
