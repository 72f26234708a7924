// Bindings the test config adds on top of wrangler.toml (see vitest.config.ts).
import type { SlotGroup } from "../../src/cloudflare/index.js";

declare global {
  namespace Cloudflare {
    interface Env {
      /** SlotGroup from the deployable bundle, run as an auxiliary worker: no test-pool wrapper. */
      SLOT_GROUP_BUNDLE: DurableObjectNamespace<SlotGroup>;
      /** A hono app guarded by slotgate/hono (fixtures/hono-app). */
      HONO_APP: Fetcher;
      /** The fake origin (fixtures/origin-worker.mjs). */
      ORIGIN: Fetcher;
      /** Edge workers: the deployable bundle with a config of edge-fixtures.ts each. */
      EDGE_LIMIT_1: Fetcher;
      EDGE_LIMIT_2: Fetcher;
      EDGE_PRIORITY: Fetcher;
      EDGE_DENY: Fetcher;
      EDGE_FAIR: Fetcher;
      /** The slot API alone, under the token setups of edge-fixtures.ts SLOT_API_WORKERS. */
      API_SCOPED: Fetcher;
      API_BOTH: Fetcher;
      API_BAD_TOKENS: Fetcher;
      API_BAD_JSON: Fetcher;
    }
  }
}
