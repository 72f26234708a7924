// DNS rebinding against the stats listener. A web page on evil.example re-points its own name at
// 127.0.0.1; the victim's browser then sends the page's requests to the loopback listener with
// `Host: evil.example`, and reads the answers as same-origin. Without a token the listener must
// answer only a loopback Host. Real listener on 127.0.0.1, requests written on raw sockets.

import { afterEach, describe, expect, it } from "vitest";
import { createGuard, createMemoryStore } from "../../src/index.js";
import { validateEdgeConfig, type EdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { createStatsListener } from "../../src/node/stats/index.js";
import { isLoopbackHostHeader } from "../../src/node/stats/server.js";
import { getWithHost } from "../support/raw-http.js";

const TOKEN = "rebinding-test-token-0123456789";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

function config(): EdgeConfig {
  return validateEdgeConfig({
    group: "rebind",
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app" } },
    backends: { app: { servers: { a: { address: "127.0.0.1:9001" } } } },
    stats: { bind: "127.0.0.1:0" },
  });
}

/** A real stats listener on 127.0.0.1; returns its port. */
async function listen(token: string | null): Promise<number> {
  const c = config();
  const guard = createGuard({ ...toGuardOptions(c), store: createMemoryStore() });
  cleanups.push(() => guard.close());
  const listener = createStatsListener({ bind: c.stats!.bind, token, guard, config: c, node: () => ({ nodeMaxconn: null, nodeInUse: 0, frontends: {} }) });
  await listener.start();
  cleanups.push(() => listener.stop());
  return listener.address()!.port;
}

const FOREIGN = [
  "evil.example",
  "evil.example:8404",
  "localhost.evil.example",
  "127.0.0.1.nip.io",
  "2130706433", // 127.0.0.1 as one number: browsers resolve it, it is not a spelling we accept
  "0x7f.0.0.1",
  "127.1",
  "[::ffff:127.0.0.1]",
  "[::2]",
  "10.0.0.1",
  "user@127.0.0.1",
  "127.0.0.1:80:80",
  "",
];

describe("stats listener without a token: DNS rebinding", () => {
  it("answers 421 to every endpoint when Host is not a loopback name, and leaks no numbers", async () => {
    const port = await listen(null);
    for (const host of FOREIGN) {
      for (const path of ["/stats", "/stats.json", "/metrics"]) {
        const r = await getWithHost(port, path, host);
        expect(r.status, `Host: ${JSON.stringify(host)} ${path}`).toBe(421);
        expect(r.body).not.toContain("slotgate_");
        expect(r.body).not.toContain("rebind");
      }
    }
  });

  it("answers 421 to a request without any Host (HTTP/1.0)", async () => {
    const port = await listen(null);
    const r = await getWithHost(port, "/stats.json", null, {}, "1.0");
    expect(r.status).toBe(421);
    expect(r.body).not.toContain("generatedAt");
  });

  it("still answers localhost and loopback addresses, with or without a port, in any case", async () => {
    const port = await listen(null);
    for (const host of [
      "localhost",
      "LOCALHOST",
      `localhost:${port}`,
      "LocalHost:8404",
      "127.0.0.1",
      `127.0.0.1:${port}`,
      "127.5.6.7:80",
      "[::1]",
      `[::1]:${port}`,
      "[0:0:0:0:0:0:0:1]:1",
    ]) {
      const r = await getWithHost(port, "/stats.json", host);
      expect(r.status, `Host: ${host}`).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ group: "rebind" });
    }
  });
});

describe("stats listener with a token", () => {
  it("keeps the token check as the protection, whatever the Host", async () => {
    const port = await listen(TOKEN);
    expect((await getWithHost(port, "/stats.json", "evil.example")).status).toBe(401);
    expect((await getWithHost(port, "/stats.json", "evil.example", { authorization: "Bearer wrong-token-0123456789" })).status).toBe(401);
    const ok = await getWithHost(port, "/stats.json", "stats.internal.example", { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ group: "rebind" });
  });
});

describe("isLoopbackHostHeader", () => {
  it("accepts only exact loopback spellings", () => {
    expect(isLoopbackHostHeader(undefined)).toBe(false);
    for (const host of FOREIGN) expect(isLoopbackHostHeader(host), host).toBe(false);
    for (const host of ["localhost", "LOCALHOST:1", "127.0.0.1", "127.255.255.254:65535", "[::1]", "[::1]:8404"])
      expect(isLoopbackHostHeader(host), host).toBe(true);
  });
});
