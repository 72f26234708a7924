// Bindings the test config adds on top of wrangler.toml (see vitest.config.ts).
import type { SlotGroup } from "../../src/cloudflare/index.js";

declare global {
  namespace Cloudflare {
    interface Env {
      /** SlotGroup from the deployable bundle, run as an auxiliary worker: no test-pool wrapper. */
      SLOT_GROUP_BUNDLE: DurableObjectNamespace<SlotGroup>;
    }
  }
}
