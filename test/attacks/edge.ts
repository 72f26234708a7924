// Shared by the attack tests: a real edge node on a loopback address with the memory store, in
// front of test origins, and a plain HTTP client that measures each answer. Everything binds to
// 127.0.0.1 or ::1 only.

import http from "node:http";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { createEdgeNode, type EdgeNode } from "../../src/node/edge-node.js";
import { createLogger } from "../../src/node/logger.js";

export interface StartedEdge {
  node: EdgeNode;
  /** `http://HOST:PORT` of the frontend `web`. */
  url: string;
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts an edge node with one http frontend `web` (these frontend keys merged in) in front of the
 * backend `app` with these servers.
 */
export async function startEdge(
  frontend: Record<string, unknown>,
  servers: Record<string, Record<string, unknown>>,
  backend: Record<string, unknown> = {},
): Promise<StartedEdge> {
  const config = validateEdgeConfig({
    group: "attack",
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app", ...frontend } },
    backends: { app: { timeout: { queue: "5s", connect: "1s", server: "10s" }, ...backend, servers } },
  });
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: "info", destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  const node = await createEdgeNode(config, { logger });
  await node.start();
  const { host, port } = node.addresses.web!;
  return { node, url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`, logs, stop: () => node.stop(0) };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** From sending the request to the end of the answer. */
  ms: number;
}

/** One request on a fresh connection; rejects after `timeoutMs` so that no test waits unbounded. */
export function send(url: string, path: string, headers: http.OutgoingHttpHeaders = {}, timeoutMs = 10_000): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("latin1"), ms: performance.now() - t0 }),
      );
      res.once("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error(`no answer to ${path.slice(0, 40)} within ${timeoutMs}ms`)));
    req.once("error", reject);
    req.end();
  });
}

/** Polls `check` every few milliseconds, for at most `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
