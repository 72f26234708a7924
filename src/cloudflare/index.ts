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
 * processes outside Cloudflare. The store client and both wire contracts (RPC and the slot API)
 * live in `src/stores/durable-object/`, which imports nothing from here.
 *
 * This entry imports `cloudflare:workers` and so runs only in workerd. `src/core` never does.
 */
export { SlotGroup } from "./slot-group.js";
export { createDurableObjectStore } from "../stores/durable-object/rpc-store.js";
export type { DurableObjectStoreOptions } from "../stores/durable-object/rpc-store.js";
export type { SlotGroupNamespace, DurableObjectIdLike } from "../stores/durable-object/rpc-transport.js";
export type { LeaseOwner, Reply, SlotGroupBatchRpc, SlotGroupRpc } from "../stores/durable-object/protocol.js";
export { handleSlotApiRequest, isSlotApiRequest } from "./slot-api.js";
export type { SlotApiOptions } from "./slot-api.js";
export type { SlotApiPermission, SlotApiTokenEntry } from "./slot-api-auth.js";
export { SLOT_API_PREFIX, HEALTH_PATH } from "../stores/durable-object/slot-api-protocol.js";
export type { AcquireReply, SlotApiOp, SlotApiFault } from "../stores/durable-object/slot-api-protocol.js";
