/**
 * The slotgate Worker entry (wrangler.toml `main`). It exports the `SlotGroup` Durable Object class
 * that wrangler.toml binds as `SLOT_GROUP`, and a `fetch` that:
 * - guards requests to origins exactly as the Node edge node does, from the same config (SPEC §5
 *   minus `bind` and `store`), read as JSON from the variable `SLOTGATE_CONFIG`
 *   (`wrangler dev --var SLOTGATE_CONFIG:'{…}'`);
 * - serves the slot API under `/_slotgate/v1/` when the secret `SLOTGATE_API_TOKEN` (or
 *   `SLOTGATE_API_TOKENS`, per permission and group) is set, so
 *   Node edge nodes (`store: { type: durable-object, url, token }`) share the Workers' limits;
 * - answers `GET /_slotgate/healthz`.
 * See workers/handler.ts for the routes and docs/cloudflare.md for the how-to.
 */
import { SlotGroup } from "../src/cloudflare/index.js";
import { createSlotgateHandler, type SlotgateEnv } from "./handler.js";

export { SlotGroup };

export default createSlotgateHandler() satisfies ExportedHandler<SlotgateEnv>;
