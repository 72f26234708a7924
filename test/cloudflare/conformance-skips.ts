/**
 * What the shared store conformance suite skips for the Durable Object store, over either
 * transport (test/cloudflare/conformance.test.ts: RPC in workerd; test/node/durable-object-store.test.ts:
 * the slot API from Node). Plain data: no imports, so both runtimes load it.
 */
export const DURABLE_OBJECT_SKIPS = [
  {
    reason: "a Durable Object's state is durable SQLite storage: it restarts with its leases and fence, and loses them only to a storage wipe",
    tests: ["after the store lost the group's state, the holder re-registers and nothing new is granted for one lease TTL"],
  },
];
