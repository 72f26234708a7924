import { readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// The auxiliary worker below runs the bundle that test/cloudflare/bundle.global-setup.ts builds,
// with the compatibility date of wrangler.toml.
const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync("wrangler.toml", "utf8"))?.[1];

export default defineConfig({
  test: {
    // Unhandled rejections fail the run (vitest's default); keep it that way on purpose.
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
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
                  durableObjects: { SLOT_GROUP: { className: "SlotGroup", useSQLite: true } },
                },
              ],
              durableObjects: { SLOT_GROUP_BUNDLE: { className: "SlotGroup", scriptName: "slotgate-bundle", useSQLite: true } },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/cloudflare/**/*.test.ts"],
          globalSetup: ["test/cloudflare/bundle.global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
