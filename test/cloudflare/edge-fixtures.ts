/**
 * The Worker end-to-end setup, shared by vitest.config.ts (which starts one auxiliary worker per
 * entry of {@link EDGE_WORKERS}, each running the deployable bundle with its config) and the
 * tests (which call them through the service bindings named here). Plain data: no imports, so both
 * the Node-side config and the workerd-side tests can load it.
 *
 * Every edge worker's `fetch` goes to the fake origin (test/cloudflare/fixtures/origin-worker.mjs),
 * so server addresses are plain host names. The `SlotGroup` objects are those of the
 * `slotgate-bundle` worker (SLOT_GROUP_BUNDLE in the tests): two edge workers with the same config
 * are two isolates of one fleet.
 */

/** The slot API token of the edge workers that have one. */
export const API_TOKEN = "e2e-slot-api-token-0123456789";
export const ORIGIN_WORKER = "slotgate-origin";

export const EDGE_CONFIGS = {
  /** 200 requests through two isolates: the backend admits 5 at once, each server 3. */
  limit: {
    group: "e2e-limit",
    frontends: { web: { maxconn: 1000, default_backend: "app" } },
    backends: {
      app: {
        balance: "leastconn",
        maxconn: 5,
        timeout: { queue: "30s" },
        servers: {
          s1: { address: "s1.origin.test:80", maxconn: 3 },
          s2: { address: "http://s2.origin.test", maxconn: 3 },
        },
      },
    },
  },
  /** One slot; lower priority classes go first. */
  priority: {
    group: "e2e-priority",
    frontends: {
      web: {
        default_backend: "app",
        priority: [
          { if: { path_beg: "/checkout/" }, class: 1 },
          // RE2 (re2js) inside workerd: a pattern a backtracking engine takes polynomial time on.
          { if: { path_reg: "^/api/.*/.*/.*/.*/x$" }, class: 1 },
          { if: { header: { "x-tier": "gold" } }, class: 2, offset: "-10s" },
          { class: 2 },
        ],
      },
    },
    backends: { app: { timeout: { queue: "20s" }, servers: { s1: { address: "s1.origin.test:80", maxconn: 1 } } } },
  },
  /** Rejections: 429, a keyed limit with a queue of 1, a short queue timeout, node.maxconn 4; leases of 1 s. */
  deny: {
    group: "e2e-deny",
    node: { maxconn: 4 },
    frontends: {
      web: {
        default_backend: "app",
        deny_status: 429,
        limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 1, maxqueue: 1 }],
      },
    },
    backends: { app: { timeout: { queue: "400ms" }, lease_ttl: "1s", servers: { s3: { address: "https://s3.origin.test", maxconn: 10 } } } },
  },
} as const;

export type EdgeConfigName = keyof typeof EDGE_CONFIGS;

export const EDGE_WORKERS = [
  { name: "slotgate-edge-limit-1", binding: "EDGE_LIMIT_1", config: "limit", token: true },
  { name: "slotgate-edge-limit-2", binding: "EDGE_LIMIT_2", config: "limit", token: true },
  { name: "slotgate-edge-priority", binding: "EDGE_PRIORITY", config: "priority", token: false },
  { name: "slotgate-edge-deny", binding: "EDGE_DENY", config: "deny", token: true },
] as const;
