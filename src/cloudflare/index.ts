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
 * This entry imports `cloudflare:workers` and so runs only in workerd. `src/core` never does.
 */
export { SlotGroup } from "./slot-group.js";
export { createDurableObjectStore } from "./store.js";
export type { DurableObjectStoreOptions, SlotGroupNamespace, DurableObjectIdLike } from "./store.js";
export type { Reply, SlotGroupRpc } from "./protocol.js";
