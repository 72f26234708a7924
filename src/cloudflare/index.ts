/**
 * @module
 * slotgate/cloudflare: the SlotGroup Durable Object and its store client. Not built yet; this
 * entry exists so the exports map is complete and a Worker bundle can already resolve it.
 */
export {};
