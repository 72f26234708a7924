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
import { DURABLE_OBJECT_SKIPS } from "./conformance-skips.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

runConformance({
  name: "durable-object",
  createStore: () => createDurableObjectStore({ namespace: env.SLOT_GROUP_BUNDLE }),
  advance: (ms) => sleep(ms),
  settle: () => sleep(50),
  unitMs: 50,
  skip: DURABLE_OBJECT_SKIPS,
});
