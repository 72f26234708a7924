/**
 * @module
 * slotgate/cloudflare: the `SlotGroup` Durable Object class and its store client, for Workers.
 *
 * ```ts
 * // the Worker entry: export the class that wrangler.toml binds as SLOT_GROUP
 * export { SlotGroup } from "slotgate/cloudflare";
 *
 * // anywhere in the Worker
 * import { createGuard } from "slotgate";
 * import { createDurableObjectStore } from "slotgate/cloudflare";
 * const guard = createGuard({ store: createDurableObjectStore({ namespace: env.SLOT_GROUP }), group: "shop", limits: { global: 100 } });
 * ```
 *
 * The slot API (`handleSlotApiRequest`) serves the same objects over authenticated HTTPS, for
 * processes outside Cloudflare; its wire contract is in `slot-api-protocol.ts`.
 *
 * This entry imports `cloudflare:workers` and so runs only in workerd. `src/core` never does.
 */
export { SlotGroup } from "./slot-group.js";
export { createDurableObjectStore } from "./store.js";
export type { DurableObjectStoreOptions, SlotGroupNamespace, DurableObjectIdLike } from "./store.js";
export type { LeaseOwner, Reply, SlotGroupRpc } from "./protocol.js";
export { handleSlotApiRequest, isSlotApiRequest } from "./slot-api.js";
export type { SlotApiOptions } from "./slot-api.js";
export type { SlotApiPermission, SlotApiTokenEntry } from "./slot-api-auth.js";
export { SLOT_API_PREFIX, HEALTH_PATH } from "./slot-api-protocol.js";
export type { AcquireReply, SlotApiOp, SlotApiFault } from "./slot-api-protocol.js";
