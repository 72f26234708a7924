/** The configs the proxy benchmark gives slotgate (JSON, which the YAML loader reads) and HAProxy. */

export interface ProxyLimits {
  /** Server maxconn (HAProxy's `server … maxconn`, slotgate's `servers.<s>.maxconn`). */
  serverMaxconn: number;
  /** `timeout queue`, in ms. */
  queueMs: number;
}

export const CONNECT_MS = 5_000;
export const SERVER_MS = 60_000;

/**
 * One HTTP frontend on 127.0.0.1:`port` (0: any free port; the node logs the real one) in front of
 * one server. The frontend has no maxconn of its own (slotgate still counts it as a scope).
 */
export function slotgateConfig(
  o: ProxyLimits & { port: number; origin: string; store: { type: "memory" } | { type: "redis"; url: string }; group: string },
): object {
  return {
    store: o.store,
    group: o.group,
    on_store_error: "fail-closed",
    frontends: {
      web: { bind: `127.0.0.1:${o.port}`, mode: "http", default_backend: "app" },
    },
    backends: {
      app: {
        balance: "roundrobin",
        timeout: { queue: o.queueMs, connect: CONNECT_MS, server: SERVER_MS },
        servers: { s1: { address: o.origin, maxconn: o.serverMaxconn } },
      },
    },
  };
}

/**
 * The same for HAProxy: `mode http`, one thread (Node runs one event loop: a like-for-like
 * comparison per process), keep-alive both ways (HAProxy's default `http-reuse safe`), no logging,
 * and the forwarding headers slotgate sets.
 */
export function haproxyConfig(o: ProxyLimits & { port: number; origin: string }): string {
  return `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  option forwardfor
  timeout connect ${CONNECT_MS}ms
  timeout client 30s
  timeout server ${SERVER_MS}ms
  timeout queue ${o.queueMs}ms
  timeout http-keep-alive 5s
  timeout http-request 20s

frontend web
  bind 127.0.0.1:${o.port}
  maxconn 4096
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }
  default_backend app

backend app
  balance roundrobin
  server s1 ${o.origin} maxconn ${o.serverMaxconn}
`;
}
