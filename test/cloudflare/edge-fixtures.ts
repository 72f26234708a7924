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
  /** One slot; waiting requests served fairly across tenants (fair_by), gold weighing 3. */
  fair: {
    group: "e2e-fair",
    queue: { discipline: "fifo", flow_weights: { gold: 3 } },
    frontends: { web: { default_backend: "app", fair_by: { header: "x-tenant" }, queue_timeout_early: true } },
    backends: { app: { timeout: { queue: "20s" }, servers: { s1: { address: "s1.origin.test:80", maxconn: 1 } } } },
  },
} as const;

export type EdgeConfigName = keyof typeof EDGE_CONFIGS;

export const EDGE_WORKERS = [
  { name: "slotgate-edge-limit-1", binding: "EDGE_LIMIT_1", config: "limit", token: true },
  { name: "slotgate-edge-limit-2", binding: "EDGE_LIMIT_2", config: "limit", token: true },
  { name: "slotgate-edge-priority", binding: "EDGE_PRIORITY", config: "priority", token: false },
  { name: "slotgate-edge-deny", binding: "EDGE_DENY", config: "deny", token: true },
  { name: "slotgate-edge-fair", binding: "EDGE_FAIR", config: "fair", token: false },
] as const;

/**
 * Tokens of the scoped slot API worker (SLOTGATE_API_TOKENS). Groups `scoped-a-*` and `scoped-b-*`
 * are globs; `exact-shop` is one name.
 */
export const SCOPED_TOKENS = {
  leaseA: "scoped-lease-a-0123456789abcdef",
  leaseA2: "scoped-lease-a2-0123456789abcdef",
  adminA: "scoped-admin-a-0123456789abcdef",
  adminB: "scoped-admin-b-0123456789abcdef",
} as const;

/** A token that appears only in a config that does not validate: it must never be echoed. */
export const BAD_CONFIG_TOKEN = "bad-config-secret-0123456789";

/**
 * Workers that run the bundle with slot API variables only (no SLOTGATE_CONFIG): the scoped
 * tokens, a legacy token next to a tokens array (the form a JSON var takes), and two configs that
 * must close the API.
 */
type TokenVar = { token: string; permissions: string[]; groups: string[] };
export const SLOT_API_WORKERS: { name: string; binding: string; vars: Record<string, string | TokenVar[]> }[] = [
  {
    name: "slotgate-api-scoped",
    binding: "API_SCOPED",
    vars: {
      SLOTGATE_API_TOKENS: JSON.stringify([
        { name: "lease-a", token: SCOPED_TOKENS.leaseA, permissions: ["lease"], groups: ["scoped-a-*", "exact-shop"] },
        { name: "lease-a2", token: SCOPED_TOKENS.leaseA2, permissions: ["lease"], groups: ["scoped-a-*"] },
        { name: "admin-a", token: SCOPED_TOKENS.adminA, permissions: ["admin"], groups: ["scoped-a-*", "exact-shop"] },
        { name: "admin-b", token: SCOPED_TOKENS.adminB, permissions: ["admin", "lease"], groups: ["scoped-b-*"] },
      ]),
    },
  },
  {
    name: "slotgate-api-both",
    binding: "API_BOTH",
    vars: {
      SLOTGATE_API_TOKEN: API_TOKEN,
      SLOTGATE_API_TOKENS: [{ token: SCOPED_TOKENS.leaseA, permissions: ["lease"], groups: ["scoped-a-*"] }],
    },
  },
  {
    name: "slotgate-api-bad-tokens",
    binding: "API_BAD_TOKENS",
    vars: {
      SLOTGATE_API_TOKENS: JSON.stringify([
        { token: BAD_CONFIG_TOKEN, permissions: ["lease", "write"], groups: ["*"] },
        { token: "short", permissions: ["admin"], groups: ["a(b|c)+"] },
      ]),
    },
  },
  {
    name: "slotgate-api-bad-json",
    binding: "API_BAD_JSON",
    vars: { SLOTGATE_API_TOKENS: `[{"token": "${BAD_CONFIG_TOKEN}", "permissions": ["lease"]` },
  },
];
