/**
 * @module
 * slotgate/node: the Node edge node (HTTP and TCP proxy, stats listener, CLI). Only Node-specific
 * code lives under src/node.
 */
export {};
