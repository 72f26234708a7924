/**
 * Vitest global setup of the workers project (runs in Node): the origins of the proxy case suite
 * for the Worker. workerd cannot start a server, so this process starts them: the very test origin
 * of test/support/origin.ts that the Node edge node's cases use, on 127.0.0.1, one per case, and a
 * refused port next to it. A small control server on 127.0.0.1 lets the tests inside workerd
 * create an origin, read what it saw, and close it:
 *
 * - `POST /origins` → `{ id, address, refused }`
 * - `GET /origins/<id>` → `{ current, requests: [{ method, url, headers }] }`
 * - `DELETE /origins/<id>`
 *
 * Its URL reaches the tests as `inject("proxyCaseControl")`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";
import { closedPort, flatHeaders, startOrigin, type Origin } from "../support/origin.js";

declare module "vitest" {
  export interface ProvidedContext {
    proxyCaseControl: string;
  }
}

/** More origins than this at once means a test forgot to close them. */
const MAX_ORIGINS = 64;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const origins = new Map<string, Origin>();
  let seq = 0;

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  const control = http.createServer((req, res) => {
    req.resume();
    void (async () => {
      const id = /^\/origins\/(\d+)$/.exec(req.url ?? "")?.[1];
      if (req.method === "POST" && req.url === "/origins") {
        if (origins.size >= MAX_ORIGINS) return reply(res, 429, { error: "too many origins open" });
        const origin = await startOrigin();
        const key = String(++seq);
        origins.set(key, origin);
        return reply(res, 200, { id: key, address: origin.address, refused: `127.0.0.1:${await closedPort()}` });
      }
      const origin = id === undefined ? undefined : origins.get(id);
      if (!origin) return reply(res, 404, { error: "no such origin" });
      if (req.method === "GET") {
        return reply(res, 200, {
          current: origin.current,
          requests: origin.requests.map((r) => ({ method: r.method, url: r.url, headers: flatHeaders(r.headers) })),
        });
      }
      if (req.method === "DELETE") {
        origins.delete(id!);
        await origin.close();
        return reply(res, 200, {});
      }
      return reply(res, 405, { error: "method not allowed" });
    })().catch((error: unknown) => reply(res, 500, { error: String(error) }));
  });
  await new Promise<void>((resolve, reject) => {
    control.once("error", reject);
    control.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  project.provide("proxyCaseControl", `http://127.0.0.1:${(control.address() as AddressInfo).port}`);

  return async () => {
    await Promise.all([...origins.values()].map((o) => o.close()));
    control.closeAllConnections();
    await new Promise<void>((resolve) => control.close(() => resolve()));
  };
}
