/**
 * @module
 * slotgate/worker: the slotgate Worker, ready to deploy from a Worker project of your own. Its
 * entry module is one line, and its wrangler.toml binds the `SlotGroup` class as `SLOT_GROUP`
 * (docs/cloudflare.md shows the whole file):
 *
 * ```ts
 * export { default, SlotGroup } from "slotgate/worker";
 * ```
 *
 * The default export's `fetch` guards requests to origins from the edge config in the variable
 * `SLOTGATE_CONFIG`, serves the slot API when a token is set, and answers `/_slotgate/healthz`
 * (see handler.ts). This entry imports `cloudflare:workers` and so runs only in workerd.
 */
import { createSlotgateHandler } from "./handler.js";

export { SlotGroup } from "../cloudflare/index.js";
export { createSlotgateHandler } from "./handler.js";
export type { SlotgateEnv, SlotgateHandlerOptions, ExecutionContextLike } from "./handler.js";

/** The Worker's `fetch` handler, with the global `fetch` reaching the servers. */
const worker = createSlotgateHandler();
export default worker;
