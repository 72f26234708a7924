/**
 * The Worker's parts in isolation, inside workerd: its config (the Node schema, minus bind and
 * store), its routes without a config, and the outage policies (`on_store_error`) against an object
 * that cannot be reached, with a scripted upstream `fetch`.
 */
import { describe, expect, it } from "vitest";
import type { SlotGroupNamespace, SlotGroupRpc } from "../../src/cloudflare/index.js";
import { parseWorkerConfig } from "../../src/worker/config.js";
import { createSlotgateHandler, type SlotgateEnv } from "../../src/worker/handler.js";
import { upstreamHeaders, upstreamUrl } from "../../src/worker/proxy.js";

const minimal = {
  frontends: { web: { default_backend: "app" } },
  backends: { app: { servers: { a: { address: "a.example:8080", maxconn: 2 }, b: { address: "https://b.example/base/" } } } },
};

function configError(value: unknown, frontend?: string): string {
  try {
    parseWorkerConfig(value, frontend);
  } catch (error) {
    expect(error).toMatchObject({ code: "SLOTGATE_INVALID_CONFIG" });
    return (error as Error).message;
  }
  throw new Error("expected a config error");
}

describe("the Worker's config", () => {
  it("is the Node edge node's config without bind: JSON text or an object", () => {
    for (const value of [JSON.stringify(minimal), minimal]) {
      const w = parseWorkerConfig(value);
      expect(w.frontend.name).toBe("web");
      expect(w.backend.name).toBe("app");
      expect([...w.servers.keys()]).toEqual(["a", "b"]);
      expect(w.guardOptions).toMatchObject({ group: "default", limits: { "frontend:web": 1_000_000_000 }, backends: { app: { servers: { a: { max: 2 } } } } });
      expect(upstreamUrl(w.servers.get("a")!, "/x?y=1")).toBe("http://a.example:8080/x?y=1");
      expect(upstreamUrl(w.servers.get("b")!, "/x?y=1")).toBe("https://b.example:443/base/x?y=1");
    }
  });

  it("validates bind, store and stats when present (one file for both runtimes), then ignores them", () => {
    const shared = {
      ...minimal,
      store: { type: "redis", url: "redis://127.0.0.1:6379" },
      stats: { bind: "127.0.0.1:8404" },
      frontends: { web: { bind: "127.0.0.1:8080", default_backend: "app" } },
    };
    expect(parseWorkerConfig(shared).frontend.name).toBe("web");
    expect(configError({ ...minimal, frontends: { web: { bind: "nowhere", default_backend: "app" } } })).toContain("frontends.web.bind: expected an address");
    expect(configError({ ...minimal, store: { type: "postgres" } })).toContain("store.type");
  });

  it("reports every problem with its path, as slotgate check does", () => {
    const message = configError({
      ...minimal,
      backends: { app: { servers: { a: { address: "a.example:8080", maxconn: -1 } } } },
      frontends: { web: { default_backend: "app", maxcon: 3 } },
    });
    expect(message).toContain("backends.app.servers.a.maxconn: expected a positive integer, got -1");
    expect(message).toContain("frontends.web.maxcon");
    expect(configError("{not json")).toMatch(/^SLOTGATE_CONFIG: expected JSON/);
    expect(configError("{not json")).not.toContain("not json");
    expect(configError('{"__proto__": {"frontends": 1}}')).toContain("frontends");
  });

  it("serves one http frontend: the only one, or the one SLOTGATE_FRONTEND names", () => {
    const backends = { ...minimal.backends, tcp: { servers: { t: { address: "t.example:9000" } } } };
    const two = { backends, frontends: { web: { default_backend: "app" }, api: { default_backend: "app" }, raw: { mode: "tcp", default_backend: "tcp" } } };
    expect(configError(two)).toContain("SLOTGATE_FRONTEND: expected the name of the frontend this Worker serves, one of web, api");
    expect(parseWorkerConfig(two, "api").frontend.name).toBe("api");
    expect(configError(two, "raw")).toContain("SLOTGATE_FRONTEND: expected the name of an http frontend");
    expect(configError(two, "nope")).toContain("SLOTGATE_FRONTEND");
    // Every frontend's scopes are in the spec, so every member of the fleet pushes the same one.
    expect(Object.keys(parseWorkerConfig(two, "api").guardOptions.limits)).toEqual(["frontend:web", "frontend:api", "frontend:raw"]);
    expect(configError({ backends, frontends: { raw: { mode: "tcp", default_backend: "tcp" } } })).toContain("a Worker cannot serve tcp");
  });

  it("sets x-forwarded-* and drops hop-by-hop, Cloudflare and Host headers on the way up", () => {
    const incoming = new Headers({
      host: "edge.example",
      connection: "keep-alive, x-private",
      "x-private": "1",
      te: "trailers",
      "proxy-authorization": "x",
      "cf-connecting-ip": "198.51.100.9",
      "cf-ray": "abc",
      "cdn-loop": "cloudflare",
      "x-forwarded-for": "203.0.113.7",
      accept: "text/html",
    });
    // The rules of src/edge/forwarding.ts, as on the Node edge node: an untrusted client's
    // forwarding headers are replaced with what the Worker saw...
    const out = upstreamHeaders(incoming, new URL("https://edge.example/x"), "198.51.100.9", false);
    expect(Object.fromEntries(out)).toEqual({
      accept: "text/html",
      "x-forwarded-for": "198.51.100.9",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "edge.example",
      forwarded: 'for=198.51.100.9;host="edge.example";proto=https',
    });
    // ... and a trusted proxy's (forwarded_for.trusted) are kept, with this hop appended.
    const trusted = upstreamHeaders(incoming, new URL("https://edge.example/x"), "198.51.100.9", true);
    expect(trusted.get("x-forwarded-for")).toBe("203.0.113.7, 198.51.100.9");
  });
});

// ── the handler, with an unreachable object and a scripted upstream ──────────────────────────────

/** A namespace whose every call fails, as an unreachable object's would. */
const unreachable: SlotGroupNamespace = {
  idFromName: (name) => ({ toString: () => name }),
  get: () => {
    const fail = () => Promise.reject(Object.assign(new Error("Network connection lost."), { retryable: false }));
    const stub: SlotGroupRpc = { acquire: fail, cancel: fail, release: fail, renew: fail, configure: fail, setServerState: fail, stats: fail };
    return stub;
  },
};

function harness(config: unknown) {
  const pending: Promise<unknown>[] = [];
  const upstream: { url: string; finish: () => void }[] = [];
  const handler = createSlotgateHandler({
    fetch: (url) => {
      // Each upstream response streams until the test finishes it.
      let finish!: () => void;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          finish = () => {
            controller.enqueue(new TextEncoder().encode("done"));
            controller.close();
          };
        },
      });
      upstream.push({ url, finish });
      return Promise.resolve(new Response(body, { headers: { "x-upstream": url } }));
    },
  });
  const env: SlotgateEnv = { SLOT_GROUP: unreachable, SLOTGATE_CONFIG: JSON.stringify(config) };
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
  return { fetch: (path: string) => handler.fetch(new Request(`https://edge.example${path}`), env, ctx), upstream, settle: () => Promise.all(pending) };
}

describe("the Worker's handler", () => {
  it("answers the health check, 404 for the rest without a config, 500 for a bad one", async () => {
    const handler = createSlotgateHandler();
    const ctx = { waitUntil: () => undefined };
    const noConfig: SlotgateEnv = { SLOT_GROUP: unreachable };
    const health = await handler.fetch(new Request("https://edge.example/_slotgate/healthz"), noConfig, ctx);
    expect([health.status, await health.text()]).toEqual([200, "ok\n"]);
    expect((await handler.fetch(new Request("https://edge.example/_slotgate/healthz", { method: "POST" }), noConfig, ctx)).status).toBe(405);
    expect((await handler.fetch(new Request("https://edge.example/anything"), noConfig, ctx)).status).toBe(404);
    expect((await handler.fetch(new Request("https://edge.example/_slotgate/other"), noConfig, ctx)).status).toBe(404);
    expect((await handler.fetch(new Request("https://edge.example/_slotgate/v1/ping"), noConfig, ctx)).status).toBe(404);
    const bad = await handler.fetch(new Request("https://edge.example/x"), { SLOT_GROUP: unreachable, SLOTGATE_CONFIG: '{"frontends": 3}' }, ctx);
    expect(bad.status).toBe(500);
    expect(bad.headers.get("x-slotgate-error")).toBe("config");
    expect(await bad.text()).not.toContain("frontends");
  });

  it("on_store_error fail-closed: deny_status with x-slotgate-reason unavailable", async () => {
    const h = harness({ ...minimal, on_store_error: "fail-closed", frontends: { web: { default_backend: "app", deny_status: 429 } } });
    const res = await h.fetch("/x");
    expect(res.status).toBe(429);
    expect(res.headers.get("x-slotgate-reason")).toBe("unavailable");
    expect(res.headers.get("retry-after")).toBe("1");
    expect(h.upstream).toHaveLength(0);
    await h.settle();
  });

  it("on_store_error fail-open: admitted, sent round robin over the servers up", async () => {
    const h = harness({ ...minimal, on_store_error: "fail-open" });
    const replies = await Promise.all([h.fetch("/1"), h.fetch("/2")]);
    expect(replies.map((r) => r.status)).toEqual([200, 200]);
    expect(h.upstream.map((u) => new URL(u.url).host).sort()).toEqual(["a.example:8080", "b.example"]);
    for (const u of h.upstream) u.finish();
    await Promise.all(replies.map((r) => r.text()));
    await h.settle();
  });

  it("on_store_error local: each isolate admits max × local_share per scope (no queue) until the store is back", async () => {
    const h = harness({
      ...minimal,
      on_store_error: "local",
      local_share: 0.5,
      backends: { app: { servers: { a: { address: "a.example:8080", maxconn: 4 } } } },
    });
    const first = await h.fetch("/1");
    const second = await h.fetch("/2");
    expect([first.status, second.status]).toEqual([200, 200]);
    // 4 × 0.5 = 2 held: the third is refused.
    const third = await h.fetch("/3");
    expect(third.status).toBe(503);
    expect(third.headers.get("x-slotgate-reason")).toBe("full");
    // A finished response gives its local slot back.
    h.upstream[0]!.finish();
    expect(await first.text()).toBe("done");
    await new Promise((resolve) => setTimeout(resolve, 10));
    const fourth = await h.fetch("/4");
    expect(fourth.status).toBe(200);
    for (const u of h.upstream.slice(1)) u.finish();
    await Promise.all([second.text(), fourth.text()]);
    await h.settle();
  });
});
