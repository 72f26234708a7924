/**
 * The proxy cases: forwarding, rejection and release, written once and run unchanged against
 * every edge runtime (the Node edge node over loopback sockets, the Worker inside workerd; see
 * proxy.case.ts for the runner and the two `*.test.ts` files that call it).
 *
 * A case is its config (the edge config file's keys, SPEC §5, with servers that point at the test
 * origin of test/support/origin.ts or at a port that refuses connections) and either one exchange
 * (a request, what the origin must see, what the client must get) or a scenario over the
 * {@link ProxyEdge} a runner hands it. What a runtime cannot express is skipped by its runner,
 * with the reason, never loosened here.
 *
 * Plain data and `expect`: no runtime module is imported, so both runtimes load this file.
 */
import { expect } from "vitest";

// ── what a case is made of ─────────────────────────────────────────────────────────────────────

/** Where a server of the case points: the test origin (its `host:port`, or a URL with a base path), or a refused port. */
export interface CaseServer {
  to: "origin" | "refused";
  /** `url`: `http://host:port<base>` (a URL server); `host-port` (default): `host:port`. */
  form?: "host-port" | "url";
  base?: string;
  maxconn?: number;
  /** Marked down in the config. */
  down?: boolean;
}

export interface CaseConfig {
  /** Top-level keys (`node`, `on_store_error`, `local_share`, `version`, …); `group` is the runner's. */
  top?: Record<string, unknown>;
  /** Keys of the frontend `web`. */
  frontend?: Record<string, unknown>;
  /** Keys of the backend `app` (its `timeout` replaces the default one). */
  backend?: Record<string, unknown>;
  servers: Record<string, CaseServer>;
  /**
   * Another member of the fleet pushed this version of the spec first (SPEC §2 rule 13): the
   * same config, with its frontend named `frontend` instead of `web`.
   */
  fleet?: { version: number; frontend: string };
  /** The shared store cannot be reached from the start (see {@link ProxyEdge.setStoreDown}). */
  storeDown?: boolean;
}

export interface CaseRequest {
  method?: string;
  /** The request-target as the client writes it: origin-form `/p?q`, absolute-form `http://h/p?q`, or `*`. */
  target: string;
  /** The Host the client names (default: whatever the runtime's client sends). */
  host?: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface CaseResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

/** A request as the origin received it. */
export interface SeenRequest {
  method: string;
  url: string;
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
}

/** A response whose head has arrived, its body not yet read. */
export interface InFlight {
  /** The response head (rejects if the exchange ended without one, e.g. after `abort`). */
  head: Promise<{ status: number; headers: Record<string, string> }>;
  /** Waits for the first chunk of the body. */
  firstChunk(): Promise<void>;
  /** Reads the rest of the body. */
  rest(): Promise<CaseResponse>;
  /** The client goes away: before the head, while queued, or mid-body. */
  abort(): void;
}

/** What a runner gives a case: an edge in front of the case's servers, and what the origin and the store saw. */
export interface ProxyEdge {
  /** Sends a request and reads the whole response. */
  send(request: CaseRequest): Promise<CaseResponse>;
  /** Sends a request and hands it over as soon as it is sent. */
  start(request: CaseRequest): InFlight;
  /** The requests of this case the origin received, in arrival order. */
  seen(): Promise<SeenRequest[]>;
  /** Requests the origin is serving right now. */
  originCurrent(): Promise<number>;
  /**
   * Makes the shared store unreachable (every call fails as an unreachable store's would: the
   * outage policy decides), or reachable again.
   */
  setStoreDown(down: boolean): void;
  /** A scope's numbers in the store (`in_use`, `queued`, `aborted`); zeros for a scope the store has not used yet. */
  scope(name: string): Promise<{ in_use: number; queued: number; aborted: number }>;
  /**
   * Raw bytes on one client connection; resolves with what came back (the first response's
   * status, its body). Only a runtime that hands the edge a socket has this.
   */
  raw?(bytes: string): Promise<{ status: number; body: string }>;
}

/** Header expectations: a value, or null for "absent". */
export type HeaderExpectation = Record<string, string | null>;

export interface ExchangeCase {
  name: string;
  config: CaseConfig;
  request: CaseRequest;
  /** The one request the origin saw; omitted: the origin saw nothing. */
  origin?: { method?: string; url?: string; headers?: HeaderExpectation };
  response: { status: number; headers?: HeaderExpectation; body?: string };
}

export interface ScenarioCase {
  name: string;
  config: CaseConfig;
  scenario(edge: ProxyEdge): Promise<void>;
}

export type ProxyCase = ExchangeCase | ScenarioCase;

// ── building the config ─────────────────────────────────────────────────────────────────────────

/** The default backend timeouts of every case (a case's `backend.timeout` replaces them). */
const TIMEOUTS = { queue: "5s", connect: "1s", server: "10s" };

/**
 * The edge config of a case for one runtime, without `bind` (the Node runner adds it): the
 * frontend `web` in front of the backend `app`, the servers at the addresses `address` gives.
 */
export function caseConfig(c: CaseConfig, group: string, address: (server: CaseServer) => string, frontendName = "web"): Record<string, unknown> {
  const servers: Record<string, Record<string, unknown>> = {};
  for (const [name, s] of Object.entries(c.servers)) {
    const where = address(s);
    servers[name] = {
      address: s.form === "url" ? `http://${where}${s.base ?? ""}` : where,
      ...(s.maxconn === undefined ? {} : { maxconn: s.maxconn }),
      ...(s.down ? { down: true } : {}),
    };
  }
  return {
    ...c.top,
    group,
    frontends: { [frontendName]: { default_backend: "app", ...c.frontend } },
    backends: { app: { balance: "leastconn", timeout: TIMEOUTS, ...c.backend, servers } },
  };
}

/** Checks headers against expectations (null: absent). */
export function expectHeaders(actual: Record<string, string>, expected: HeaderExpectation | undefined, what: string): void {
  for (const [name, value] of Object.entries(expected ?? {})) expect(actual[name] ?? null, `${what} header ${name}`).toBe(value);
}

/** Polls `check` every 10 ms, for at most `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A rejection as SPEC §5 has it: deny_status, `Retry-After`, `x-slotgate-reason`, a plain-text body. */
function expectDenied(r: CaseResponse, status: number, reason: string): void {
  expect({ status: r.status, reason: r.headers["x-slotgate-reason"], retryAfter: r.headers["retry-after"] }).toEqual({
    status,
    reason,
    retryAfter: "1",
  });
  expect(r.headers["content-type"]).toBe("text/plain; charset=utf-8");
  expect(r.headers["cache-control"]).toBe("no-store");
  expect(r.body).toBe(`${status} ${status === 429 ? "Too Many Requests" : "Service Unavailable"}: no slot (${reason})\n`);
}

const ONE_SERVER: Record<string, CaseServer> = { a: { to: "origin", maxconn: 1 } };
const NO_QUEUE = { timeout: { ...TIMEOUTS, queue: 0 } };
/**
 * A body that is itself a request: were its framing dropped on the way, the origin would read it
 * as the next request on its connection (request smuggling) and see `/smuggled`.
 */
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: shop.example\r\n\r\n";
/** Forged forwarding headers, as an untrusted client could send them. */
const FORGED = {
  "x-forwarded-for": "203.0.113.9",
  forwarded: "for=203.0.113.9;proto=https",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "admin.internal",
};

// ── the cases ───────────────────────────────────────────────────────────────────────────────────

export const PROXY_CASES: ProxyCase[] = [
  // ── forwarding ──
  {
    name: "hop-by-hop request headers are dropped, including those Connection names; end-to-end ones pass",
    config: { servers: { a: { to: "origin" } } },
    request: {
      target: "/hop-req",
      headers: {
        connection: "keep-alive, x-drop-me",
        "x-drop-me": "1",
        "keep-alive": "timeout=30",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "proxy-connection": "keep-alive",
        te: "trailers",
        upgrade: "h2c",
        "x-end-to-end": "kept",
      },
    },
    origin: {
      url: "/hop-req",
      headers: {
        "x-drop-me": null,
        "keep-alive": null,
        "proxy-authorization": null,
        "proxy-connection": null,
        te: null,
        upgrade: null,
        "x-end-to-end": "kept",
      },
    },
    response: { status: 200 },
  },
  {
    name: "hop-by-hop response headers stop at the edge, including those the origin's Connection names",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/hop" },
    origin: { url: "/hop" },
    response: {
      status: 200,
      headers: { "x-hop-secret": null, "keep-alive": null, "proxy-authenticate": null, trailer: null, "x-end-to-end": "kept" },
      body: "hop\n",
    },
  },
  {
    name: "Connection cannot remove the framing: a body named in Connection with content-length arrives whole",
    config: { servers: { a: { to: "origin" } } },
    request: {
      method: "POST",
      target: "/echo",
      headers: { connection: "content-length, transfer-encoding, host, x-drop-me", "x-drop-me": "1", "content-type": "text/plain" },
      body: SMUGGLED,
    },
    origin: { method: "POST", url: "/echo", headers: { "x-drop-me": null } },
    response: { status: 200, body: SMUGGLED },
  },
  {
    name: "Connection cannot remove the framing of a chunked body (raw bytes on the client's socket)",
    config: { servers: { a: { to: "origin" } } },
    async scenario(edge) {
      const chunk = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
      const r = await edge.raw!(
        `POST /echo HTTP/1.1\r\nHost: shop.example\r\nConnection: transfer-encoding, close\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`,
      );
      expect(r.status).toBe(200);
      expect(r.body).toContain(SMUGGLED);
      const seen = await edge.seen();
      expect(seen.map((s) => s.url)).toEqual(["/echo"]);
      expect(seen[0]!.headers["transfer-encoding"] ?? seen[0]!.headers["content-length"]).toBeDefined();
    },
  },
  {
    name: "a request asking for a protocol upgrade goes on as a plain request: Upgrade is hop-by-hop",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/up", headers: { connection: "upgrade", upgrade: "websocket" } },
    origin: { url: "/up", headers: { upgrade: null } },
    response: { status: 200 },
  },
  {
    name: "HEAD: the response head goes through with its content-length, and no body",
    config: { servers: { a: { to: "origin" } } },
    async scenario(edge) {
      const r = await edge.send({ method: "HEAD", target: "/head" });
      expect(r.status).toBe(200);
      expect(r.headers["content-length"]).toMatch(/^[1-9]\d*$/);
      expect(r.body).toBe("");
      expect((await edge.seen()).map((s) => `${s.method} ${s.url}`)).toEqual(["HEAD /head"]);
    },
  },
  {
    name: "forwarding headers from an untrusted client are replaced with what the edge saw",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/f", host: "shop.example", headers: FORGED },
    origin: {
      headers: {
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "shop.example",
        forwarded: 'for=127.0.0.1;host="shop.example";proto=http',
      },
    },
    response: { status: 200 },
  },
  {
    name: "forwarding headers from a trusted proxy (forwarded_for.trusted) are kept, with this hop appended",
    config: { servers: { a: { to: "origin" } }, frontend: { forwarded_for: { trusted: ["127.0.0.0/8"] } } },
    request: { target: "/f", host: "shop.example", headers: FORGED },
    origin: {
      headers: {
        "x-forwarded-for": "203.0.113.9, 127.0.0.1",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "admin.internal",
        forwarded: 'for=203.0.113.9;proto=https, for=127.0.0.1;host="shop.example";proto=http',
      },
    },
    response: { status: 200 },
  },
  {
    name: "a host:port server gets the client's Host",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/h", host: "shop.example" },
    origin: { url: "/h", headers: { host: "shop.example" } },
    response: { status: 200 },
  },
  {
    name: "the path and query go through as the client wrote them, escapes and repeats included",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/p/a%2Fb/q?x=1&y=a%20b&y=2&z=%2F" },
    origin: { method: "GET", url: "/p/a%2Fb/q?x=1&y=a%20b&y=2&z=%2F" },
    response: { status: 200 },
  },
  {
    name: "dot segments in the path go through as the client wrote them (the origin resolves them, as HAProxy leaves them)",
    config: { servers: { a: { to: "origin" } } },
    request: { target: "/a/../b/./c" },
    origin: { url: "/a/../b/./c" },
    response: { status: 200 },
  },
  {
    name: "an empty POST reaches the origin with content-length 0",
    config: { servers: { a: { to: "origin" } } },
    request: { method: "POST", target: "/empty", headers: { "content-length": "0" }, body: "" },
    origin: { method: "POST", url: "/empty", headers: { "content-length": "0", "transfer-encoding": null } },
    response: { status: 200 },
  },
  {
    name: "a URL server gets its base path before the client's path, the query kept",
    config: { servers: { a: { to: "origin", form: "url", base: "/base" } } },
    request: { target: "/p/q?x=1", host: "shop.example" },
    origin: { url: "/base/p/q?x=1", headers: { "x-forwarded-host": "shop.example" } },
    response: { status: 200 },
  },
  {
    name: "an absolute-form target is sent on as its path and query, never to the host it names",
    config: { servers: { a: { to: "origin", form: "url", base: "/base" } } },
    request: { target: "http://evil.example/x?y=1" },
    origin: { url: "/base/x?y=1" },
    response: { status: 200 },
  },
  {
    name: "an asterisk-form target (OPTIONS *) reaches a URL server as its base path",
    config: { servers: { a: { to: "origin", form: "url", base: "/base" } } },
    request: { method: "OPTIONS", target: "*" },
    origin: { method: "OPTIONS", url: "/base/" },
    response: { status: 200 },
  },
  // ── rejections ──
  {
    name: "no queue allowed (timeout queue 0): deny_status with Retry-After and reason full",
    config: { servers: ONE_SERVER, backend: NO_QUEUE },
    async scenario(edge) {
      const holder = edge.start({ target: "/hang" });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the holder at the origin");
      expectDenied(await edge.send({ target: "/second" }), 503, "full");
      holder.abort();
      expect((await edge.seen()).map((s) => s.url)).toEqual(["/hang"]);
    },
  },
  {
    name: "a keyed limit's maxqueue reached: deny_status 429 with reason queue-full; the queued one times out with queue-timeout",
    config: {
      servers: { a: { to: "origin", maxconn: 10 } },
      frontend: { deny_status: 429, limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 1, maxqueue: 1 }] },
      backend: { timeout: { ...TIMEOUTS, queue: "600ms" } },
    },
    async scenario(edge) {
      const key = { "x-api-key": "A" };
      const holder = edge.start({ target: "/hang", headers: key });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the holder at the origin");
      const queued = edge.start({ target: "/queued", headers: key });
      await until(async () => (await edge.scope("frontend:web:apikey:A")).queued === 1, 3000, "one ticket");
      expectDenied(await edge.send({ target: "/third", headers: key }), 429, "queue-full");
      const t0 = Date.now();
      const timedOut = await queued.head.then(() => queued.rest());
      expectDenied(timedOut, 429, "queue-timeout");
      expect(Date.now() - t0).toBeLessThan(2000);
      holder.abort();
      expect((await edge.seen()).map((s) => s.url)).toEqual(["/hang"]);
    },
  },
  {
    name: "node.maxconn reached: shed at once with reason full, before any store round trip",
    config: { servers: { a: { to: "origin", maxconn: 10 } }, top: { node: { maxconn: 1 } } },
    async scenario(edge) {
      const holder = edge.start({ target: "/hang" });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the holder at the origin");
      const before = await edge.scope("frontend:web");
      expectDenied(await edge.send({ target: "/shed" }), 503, "full");
      expect((await edge.scope("frontend:web")).queued).toBe(before.queued);
      holder.abort();
    },
  },
  {
    name: "a scope the fleet's newer spec removed: deny_status with reason unavailable",
    config: { servers: { a: { to: "origin" } }, top: { version: 1 }, fleet: { version: 2, frontend: "shop" } },
    request: { target: "/gone" },
    response: { status: 503, headers: { "x-slotgate-reason": "unavailable", "retry-after": "1" } },
  },
  {
    name: "a scope the fleet's newer spec removed is unavailable under on_store_error local too: the store is up, nothing to fall back from",
    config: {
      servers: { a: { to: "origin" } },
      top: { version: 1, on_store_error: "local", local_share: 0.5 },
      fleet: { version: 2, frontend: "shop" },
    },
    request: { target: "/gone" },
    response: { status: 503, headers: { "x-slotgate-reason": "unavailable", "retry-after": "1" } },
  },
  {
    name: "a key value too long for a keyed limit: 431, before any slot is taken",
    config: { servers: { a: { to: "origin" } }, frontend: { limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 1 }] } },
    request: { target: "/k", headers: { "x-api-key": "k".repeat(2000) } },
    response: { status: 431 },
  },
  // ── store outage (SPEC §2 rule 11) ──
  {
    name: "store unreachable, on_store_error fail-closed: deny_status with reason unavailable",
    config: { servers: { a: { to: "origin" } }, storeDown: true, frontend: { deny_status: 429 } },
    request: { target: "/x" },
    response: { status: 429, headers: { "x-slotgate-reason": "unavailable", "retry-after": "1" } },
  },
  {
    name: "store unreachable, on_store_error fail-open: admitted and forwarded",
    config: { servers: { a: { to: "origin", maxconn: 1 } }, storeDown: true, top: { on_store_error: "fail-open" } },
    request: { target: "/open" },
    origin: { url: "/open" },
    response: { status: 200 },
  },
  {
    name: "store unreachable, on_store_error local: max × local_share admitted in process, the slot given back when the response ends",
    config: {
      servers: { a: { to: "origin", maxconn: 4 } },
      storeDown: true,
      top: { on_store_error: "local", local_share: 0.5 },
      backend: NO_QUEUE,
    },
    async scenario(edge) {
      const held = [edge.start({ target: "/hang" }), edge.start({ target: "/hang" })];
      await until(async () => (await edge.originCurrent()) === 2, 3000, "two held at the origin");
      // 4 × 0.5 = 2 held: the third is refused, as the store would refuse it.
      const third = await edge.send({ target: "/third" });
      expect({ status: third.status, reason: third.headers["x-slotgate-reason"] }).toEqual({ status: 503, reason: "full" });
      held[0]!.abort();
      await until(async () => (await edge.originCurrent()) === 1, 3000, "one left at the origin");
      let fourth = await edge.send({ target: "/fourth" });
      // The local slot is given back once the exchange ends, which may trail the origin's view by a moment.
      for (let i = 0; i < 50 && fourth.status !== 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        fourth = await edge.send({ target: "/fourth" });
      }
      expect(fourth.status).toBe(200);
      held[1]!.abort();
    },
  },
  {
    name: "store unreachable, on_store_error fail-open, every server down: 503 no-server",
    config: { servers: { a: { to: "origin", down: true } }, storeDown: true, top: { on_store_error: "fail-open" } },
    request: { target: "/none" },
    response: { status: 503, headers: { "x-slotgate-error": "no-server" } },
  },
  {
    name: "a lease lost while the request waits on its server (renewals fail past lease_ttl): 503 lease-lost, the origin's request cut",
    config: { servers: { a: { to: "origin", maxconn: 1 } }, backend: { lease_ttl: "1s" } },
    async scenario(edge) {
      const waiting = edge.start({ target: "/hang" });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the request at the origin");
      edge.setStoreDown(true);
      const head = await waiting.head;
      expect({ status: head.status, error: head.headers["x-slotgate-error"] }).toEqual({ status: 503, error: "lease-lost" });
      await until(async () => (await edge.originCurrent()) === 0, 3000, "the origin's request cut");
      edge.setStoreDown(false);
    },
  },
  // ── upstream errors ──
  {
    name: "a server that refuses the connection: 503 connect-failed, not a rejection",
    config: { servers: { a: { to: "refused", maxconn: 1 } } },
    request: { target: "/x" },
    response: { status: 503, headers: { "x-slotgate-error": "connect-failed", "x-slotgate-reason": null } },
  },
  {
    name: "a server silent past its timeout: 504 server-timeout",
    config: { servers: { a: { to: "origin", maxconn: 1 } }, backend: { timeout: { ...TIMEOUTS, server: "300ms" } } },
    request: { target: "/hang" },
    origin: { url: "/hang" },
    response: { status: 504, headers: { "x-slotgate-error": "server-timeout", "x-slotgate-reason": null } },
  },
  // ── release ──
  {
    name: "the lease is held while the response streams and released once it is complete: the next request gets the slot",
    config: { servers: ONE_SERVER, backend: NO_QUEUE },
    async scenario(edge) {
      const streaming = edge.start({ target: "/stream?chunks=4&interval=100&size=8" });
      expect((await streaming.head).status).toBe(200);
      await streaming.firstChunk();
      expect((await edge.scope("server:app/a")).in_use).toBe(1);
      expectDenied(await edge.send({ target: "/during" }), 503, "full");
      const whole = await streaming.rest();
      expect(whole.body.length).toBe(32);
      await until(async () => (await edge.scope("server:app/a")).in_use === 0, 1000, "the slot released after the response");
      expect((await edge.send({ target: "/after" })).status).toBe(200);
    },
  },
  {
    name: "a client that goes away mid-response releases the lease, and the origin's request is cut",
    config: { servers: ONE_SERVER, backend: NO_QUEUE },
    async scenario(edge) {
      const streaming = edge.start({ target: "/stream?chunks=100&interval=50&size=8" });
      await streaming.firstChunk();
      expect((await edge.scope("server:app/a")).in_use).toBe(1);
      const t0 = Date.now();
      streaming.abort();
      await until(async () => (await edge.scope("server:app/a")).in_use === 0, 2000, "the slot released after the client left");
      expect(Date.now() - t0).toBeLessThan(2000);
      await until(async () => (await edge.originCurrent()) === 0, 3000, "the origin's request cut");
      expect((await edge.send({ target: "/after" })).status).toBe(200);
    },
  },
  {
    name: "a client that goes away before the response head releases the lease",
    config: { servers: ONE_SERVER, backend: NO_QUEUE },
    async scenario(edge) {
      const waiting = edge.start({ target: "/hang" });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the request at the origin");
      waiting.abort();
      await until(async () => (await edge.scope("server:app/a")).in_use === 0, 2000, "the slot released after the client left");
      expect((await edge.send({ target: "/after" })).status).toBe(200);
    },
  },
  {
    name: "a client that goes away while queued leaves the queue at once and never reaches the origin",
    config: { servers: ONE_SERVER },
    async scenario(edge) {
      const holder = edge.start({ target: "/hang" });
      await until(async () => (await edge.originCurrent()) === 1, 3000, "the holder at the origin");
      const before = await edge.scope("backend:app");
      const queued = edge.start({ target: "/queued" });
      await until(async () => (await edge.scope("backend:app")).queued === 1, 3000, "one ticket");
      queued.abort();
      await until(async () => (await edge.scope("backend:app")).queued === 0, 1000, "the ticket gone");
      expect((await edge.scope("backend:app")).aborted - before.aborted).toBe(1);
      holder.abort();
      expect((await edge.seen()).map((s) => s.url)).toEqual(["/hang"]);
    },
  },
];
