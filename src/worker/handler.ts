/**
 * The Worker's `fetch`: routes a request to the health check, the slot API, or the proxy, and
 * keeps what may outlive a request in the isolate.
 *
 * Routes:
 * - `GET /_slotgate/healthz`: `ok` (no auth, touches nothing);
 * - `/_slotgate/v1/…`: the slot API (`SLOTGATE_API_TOKEN`, `SLOTGATE_API_TOKENS`; 404 when both are unset);
 * - any other `/_slotgate/…`: 404, reserved;
 * - everything else: proxied by the frontend of `SLOTGATE_CONFIG`, or 404 when there is none.
 *
 * Per isolate: the parsed config (re-parsed only when the variable changes), the store (which
 * pushes the group's spec to the object once, see `configureOnce`), the `node.maxconn` counter,
 * the round-robin cursor for fail-open leases, and the `local` fallback's limits. Per request: the
 * guard, because a Durable Object stub, and so a guard's handle on its object, cannot be used
 * by any request but the one that made it.
 */
import { HEALTH_PATH, createDurableObjectStore, handleSlotApiRequest, isSlotApiRequest } from "../cloudflare/index.js";
import type { SlotGroupNamespace } from "../cloudflare/index.js";
import { guardFactory, type Guard, type GuardOptions } from "../core/guard.js";
import { LocalFallback } from "../core/local-fallback.js";
import type { SlotStore } from "../core/store.js";
import { buildGroupSpec } from "../core/spec.js";
import { createMemoryStore } from "../stores/memory/memory-store.js";
import { NodeLimit } from "../edge/node-limit.js";
import type { ServerConfig } from "../edge/config/schema.js";
import { parseWorkerConfig, type WorkerConfig } from "./config.js";
import { log } from "./log.js";
import { proxy } from "./proxy.js";

/** The bindings and variables the Worker reads. */
export interface SlotgateEnv {
  /** The `SlotGroup` namespace (wrangler.toml). */
  SLOT_GROUP: SlotGroupNamespace;
  /** The edge config as JSON (a string), or a `[vars]` table. Unset: the Worker proxies nothing. */
  SLOTGATE_CONFIG?: unknown;
  /** Which http frontend of the config this Worker serves; needed when there are several. */
  SLOTGATE_FRONTEND?: string;
  /** A slot API token with every permission on every group (a secret). */
  SLOTGATE_API_TOKEN?: string;
  /**
   * Slot API tokens with permissions and group patterns (a secret): JSON text, or an array when
   * set as a JSON var. With SLOTGATE_API_TOKEN unset too, the slot API answers 404.
   */
  SLOTGATE_API_TOKENS?: unknown;
}

export interface ExecutionContextLike {
  waitUntil(promise: Promise<unknown>): void;
}

export interface SlotgateHandlerOptions {
  /** The `fetch` that reaches the servers. @default globalThis.fetch */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

interface Loaded {
  source: unknown;
  frontendName: string | undefined;
  result:
    | {
        ok: true;
        worker: WorkerConfig;
        nodeLimit: NodeLimit;
        nextServer: () => ServerConfig | undefined;
        /** Makes each request's guard; with `local`, they share the isolate's fallback limits. */
        createGuard: (options: GuardOptions) => Guard;
      }
    | { ok: false };
}

export function createSlotgateHandler(options: SlotgateHandlerOptions = {}) {
  const upstreamFetch = options.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  let loaded: Loaded | undefined;
  const stores = new WeakMap<object, SlotStore>();

  const load = (env: SlotgateEnv): Loaded["result"] => {
    const source = env.SLOTGATE_CONFIG;
    const frontendName = env.SLOTGATE_FRONTEND;
    if (loaded && loaded.source === source && loaded.frontendName === frontendName) return loaded.result;
    let result: Loaded["result"];
    try {
      const worker = parseWorkerConfig(source, frontendName);
      const up = worker.backend.servers.filter((s) => !s.down);
      let rr = 0;
      result = {
        ok: true,
        worker,
        nodeLimit: new NodeLimit(worker.config.node.maxconn),
        nextServer: () => (up.length === 0 ? undefined : up[rr++ % up.length]),
        createGuard: guardFactory(createMemoryStore, worker.config.onStoreError === "local" ? { localFallback: isolateFallback(worker) } : {}),
      };
      log("info", "config loaded", {
        group: worker.config.group,
        frontend: worker.frontend.name,
        backend: worker.backend.name,
        onStoreError: worker.config.onStoreError,
      });
    } catch (error) {
      // Logged once per isolate and config; clients see a bare 500, never the config.
      log("error", "SLOTGATE_CONFIG is invalid", { detail: error instanceof Error ? error.message : String(error) });
      result = { ok: false };
    }
    loaded = { source, frontendName, result };
    return result;
  };

  const storeFor = (env: SlotgateEnv): SlotStore => {
    const ns = env.SLOT_GROUP as unknown as object;
    let store = stores.get(ns);
    if (!store) {
      store = createDurableObjectStore({ namespace: env.SLOT_GROUP, configureOnce: true });
      stores.set(ns, store);
    }
    return store;
  };

  return {
    async fetch(request: Request, env: SlotgateEnv, ctx: ExecutionContextLike): Promise<Response> {
      const url = new URL(request.url);
      if (url.pathname === HEALTH_PATH) {
        if (request.method !== "GET" && request.method !== "HEAD") return text(405, "method not allowed\n", { allow: "GET, HEAD" });
        return new Response(request.method === "HEAD" ? null : "ok\n", {
          headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
        });
      }
      if (isSlotApiRequest(request)) {
        return handleSlotApiRequest(request, {
          namespace: env.SLOT_GROUP,
          token: env.SLOTGATE_API_TOKEN,
          tokens: env.SLOTGATE_API_TOKENS,
          waitUntil: (p) => ctx.waitUntil(p),
        });
      }
      if (url.pathname === "/_slotgate" || url.pathname.startsWith("/_slotgate/")) return text(404, "not found\n");
      if (env.SLOTGATE_CONFIG === undefined || env.SLOTGATE_CONFIG === null || env.SLOTGATE_CONFIG === "") {
        return text(404, "not found (this Worker has no SLOTGATE_CONFIG, so it proxies nothing)\n");
      }
      const config = load(env);
      if (!config.ok) return text(500, "slotgate: invalid SLOTGATE_CONFIG (see the Worker's logs)\n", { "x-slotgate-error": "config" });

      const { worker } = config;
      const policy = worker.config.onStoreError;
      const guard = config.createGuard({
        ...worker.guardOptions,
        store: storeFor(env),
        onEvent: (event) => {
          if (event.type === "fallback") log("warn", "store unreachable: outage policy applied", { policy, detail: String(event.error) });
          else if (event.type === "scope-unavailable") logScopeUnavailable(event.scope);
          else if (event.type !== "lease-lost") log("warn", event.type, { lease: event.leaseId, detail: String(event.error) });
        },
      });
      const handled = proxy(request, {
        worker,
        guard,
        nodeLimit: config.nodeLimit,
        nextServer: config.nextServer,
        fetch: upstreamFetch,
        waitUntil: (p) => ctx.waitUntil(p),
      });
      // A client that disconnects cancels this invocation, and with it the I/O it has in flight,
      // unless waitUntil holds it: the queued acquire must live on to be cancelled (or released).
      ctx.waitUntil(handled.catch(() => undefined));
      return handled;
    },
  };
}

/** Scopes already logged as missing from the fleet's spec: once per isolate, not per request (a guard lives for one). */
const reportedScopes = new Set<string>();

function logScopeUnavailable(scope: string): void {
  if (reportedScopes.has(scope) || reportedScopes.size >= 256) return;
  reportedScopes.add(scope);
  log("warn", "scope not in the fleet's spec (a newer version removed or renamed it): requests that need it are answered unavailable", { scope });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { ...headers, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

/**
 * `on_store_error: local` in a Worker: while the object is unreachable, each isolate admits up to
 * `max × local_share` of every limit (at least 1), with no queue: the core's local fallback, one
 * per isolate, shared by the guards of its requests.
 */
function isolateFallback(worker: WorkerConfig): LocalFallback {
  const spec = buildGroupSpec(worker.guardOptions.limits, worker.guardOptions.backends);
  return new LocalFallback(createMemoryStore(), spec, worker.config.localShare ?? 1, { perRequestGuards: true });
}
