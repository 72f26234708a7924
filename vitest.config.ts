import { readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { API_TOKEN, EDGE_CONFIGS, EDGE_WORKERS, ORIGIN_WORKER, SLOT_API_WORKERS } from "./test/cloudflare/edge-fixtures.js";

// The auxiliary workers below run the bundle that test/cloudflare/bundle.global-setup.ts builds,
// with the compatibility date and flags of wrangler.toml.
const wranglerToml = readFileSync("wrangler.toml", "utf8");
const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(wranglerToml)?.[1];
const compatibilityFlags = [...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(wranglerToml)?.[1]?.matchAll(/"([^"]+)"/g) ?? [])].map((m) => m[1]!);
// The Worker end to end: each edge worker is the bundle with one config of edge-fixtures.ts, its
// fetch going to the fake origin, its SlotGroup objects those of slotgate-bundle.
const edgeWorkers = EDGE_WORKERS.map((w) => ({
  name: w.name,
  modules: true,
  scriptPath: ".wrangler/test-bundle/index.js",
  compatibilityDate,
  compatibilityFlags,
  bindings: { SLOTGATE_CONFIG: JSON.stringify(EDGE_CONFIGS[w.config]), ...(w.token ? { SLOTGATE_API_TOKEN: API_TOKEN } : {}) },
  durableObjects: { SLOT_GROUP: { className: "SlotGroup", scriptName: "slotgate-bundle", useSQLite: true } },
  outboundService: ORIGIN_WORKER,
}));
// The slot API alone, under the token setups of edge-fixtures.ts (SLOTGATE_API_TOKENS).
const slotApiWorkers = SLOT_API_WORKERS.map((w) => ({
  name: w.name,
  modules: true,
  scriptPath: ".wrangler/test-bundle/index.js",
  compatibilityDate,
  compatibilityFlags,
  bindings: { ...w.vars },
  durableObjects: { SLOT_GROUP: { className: "SlotGroup", scriptName: "slotgate-bundle", useSQLite: true } },
}));

export default defineConfig({
  test: {
    // Unhandled rejections fail the run (vitest's default); keep it that way on purpose.
    dangerouslyIgnoreUnhandledErrors: false,
    // The default output, then one plain `N passed, N failed, N skipped` line for CI.
    reporters: ["default", "./test/support/summary-reporter.ts"],
    projects: [
      {
        // `npm run test:unit`: the inner loop, without redis-server, workerd, wrangler, chromium or
        // slowhttptest (the files below start one of them). `npm test` runs node + workers instead.
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: [
            "**/*.case.ts",
            "node_modules/**",
            "dist/**",
            "test/cloudflare/**",
            "test/redis/**",
            "test/differential/**",
            "test/harness/**",
            "test/node/cli.test.ts",
            "test/node/durable-object-store.test.ts",
            "test/node/fleet.test.ts",
            "test/node/fleet-versions.test.ts",
            "test/node/stats.browser.test.ts",
            "test/attacks/stats-secrets.test.ts",
            "test/attacks/slowhttptest.test.ts",
            "test/attacks/path-reg.test.ts",
            "test/middleware/frameworks.test.ts",
            "test/middleware/worker-package.test.ts",
          ],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          // test/cloudflare runs inside workerd, in the project below.
          exclude: ["**/*.case.ts", "node_modules/**", "dist/**", "test/cloudflare/**"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The Durable Object and the Worker, tested inside workerd with the bindings of wrangler.toml
        // (SLOT_GROUP, the pool's wrapped class: white-box tests) plus SLOT_GROUP_BUNDLE (the class
        // from the deployable bundle, unwrapped: black-box tests, see bundle.global-setup.ts).
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              workers: [
                {
                  name: "slotgate-bundle",
                  modules: true,
                  scriptPath: ".wrangler/test-bundle/index.js",
                  compatibilityDate,
                  compatibilityFlags,
                  durableObjects: { SLOT_GROUP: { className: "SlotGroup", useSQLite: true } },
                },
                { name: ORIGIN_WORKER, modules: true, scriptPath: "test/cloudflare/fixtures/origin-worker.mjs", compatibilityDate },
                // A user's hono app guarded by slotgate/hono (test/cloudflare/fixtures/hono-app), with its own SlotGroup objects.
                {
                  name: "slotgate-hono-app",
                  modules: true,
                  scriptPath: ".wrangler/test-hono-app/index.js",
                  compatibilityDate,
                  compatibilityFlags,
                  durableObjects: { SLOT_GROUP: { className: "SlotGroup", useSQLite: true } },
                },
                ...edgeWorkers,
                ...slotApiWorkers,
              ],
              durableObjects: { SLOT_GROUP_BUNDLE: { className: "SlotGroup", scriptName: "slotgate-bundle", useSQLite: true } },
              serviceBindings: {
                ORIGIN: ORIGIN_WORKER,
                HONO_APP: "slotgate-hono-app",
                ...Object.fromEntries([...EDGE_WORKERS, ...SLOT_API_WORKERS].map((w) => [w.binding, w.name])),
              },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/cloudflare/**/*.test.ts"],
          globalSetup: ["test/cloudflare/bundle.global-setup.ts", "test/cloudflare/proxy-origins.global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
