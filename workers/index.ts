/**
 * The slotgate Worker entry of this repository (wrangler.toml `main`): the same module a Worker
 * project of your own deploys as `export { default, SlotGroup } from "slotgate/worker"`
 * (src/worker/). It exports the `SlotGroup` Durable Object class that wrangler.toml binds as
 * `SLOT_GROUP`, and a `fetch` that:
 * - guards requests to origins exactly as the Node edge node does, from the same config (SPEC §5
 *   minus `bind` and `store`), read as JSON from the variable `SLOTGATE_CONFIG`
 *   (`wrangler dev --var SLOTGATE_CONFIG:'{…}'`);
 * - serves the slot API under `/_slotgate/v1/` when the secret `SLOTGATE_API_TOKEN` (or
 *   `SLOTGATE_API_TOKENS`, per permission and group) is set, so
 *   Node edge nodes (`store: { type: durable-object, url, token }`) share the Workers' limits;
 * - answers `GET /_slotgate/healthz`.
 * See src/worker/handler.ts for the routes and docs/cloudflare.md for the how-to.
 */
import worker, { SlotGroup, type SlotgateEnv } from "../src/worker/index.js";

export { SlotGroup };

export default worker satisfies ExportedHandler<SlotgateEnv>;
