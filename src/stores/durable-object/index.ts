/**
 * @module
 * The Durable Object store over the slotgate Worker's slot API (HTTPS), for processes outside
 * Cloudflare. Runtime-neutral: it needs only `fetch`. Inside a Worker, use
 * `createDurableObjectStore` from `slotgate/cloudflare` instead (RPC, no HTTP).
 *
 * ```ts
 * import { createGuard } from "slotgate";
 * const guard = createGuard({
 *   store: createDurableObjectHttpStore({ url: "https://<your worker>.workers.dev", token: process.env.SLOTGATE_API_TOKEN! }),
 *   group: "shop",
 *   limits: { global: 100 },
 * });
 * ```
 */
export { createDurableObjectHttpStore, ABORT_GRACE_MS } from "./http-store.js";
export type { DurableObjectHttpStore, DurableObjectHttpStoreOptions, FetchLike } from "./http-store.js";
