/**
 * The shared store conformance suite (SPEC §2, §3, §7), unchanged, against the Durable Object
 * store inside workerd. The object is the SlotGroup of the deployable bundle (SLOT_GROUP_BUNDLE,
 * see bundle.global-setup.ts). The clock is real: `advance` sleeps, and `settle` waits briefly for
 * grants in flight. Skipped: rule 12 (state loss), which a Durable Object cannot suffer short of an
 * operator wiping its storage (see docs/cloudflare.md).
 */
import { env } from "cloudflare:workers";
import { createDurableObjectStore } from "../../src/cloudflare/index.js";
import { runConformance } from "../conformance/store.case.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

runConformance({
  name: "durable-object",
  createStore: () => createDurableObjectStore({ namespace: env.SLOT_GROUP_BUNDLE }),
  advance: (ms) => sleep(ms),
  settle: () => sleep(50),
  unitMs: 50,
  skip: [
    {
      reason: "a Durable Object's state is durable SQLite storage: it restarts with its leases and fence, and loses them only to a storage wipe",
      tests: ["after the store lost the group's state, the holder re-registers and nothing new is granted for one lease TTL"],
    },
  ],
});
