// The README's hono-in-a-Worker section: the entry of a Worker project whose wrangler.toml binds
// SLOT_GROUP to the SlotGroup class (docs/cloudflare.md shows one). `npx wrangler dev`.
import { Hono } from "hono";
import { createGuard, type SlotStore } from "slotgate";
import { createDurableObjectStore, type SlotGroupNamespace } from "slotgate/cloudflare";
import { slotgate, type SlotgateVariables } from "slotgate/hono";
export { SlotGroup } from "slotgate/cloudflare";

type AppEnv = { Bindings: { SLOT_GROUP: SlotGroupNamespace }; Variables: SlotgateVariables };
let store: SlotStore | undefined; // one per isolate; a guard per request, as a Durable Object stub lives for one
const app = new Hono<AppEnv>();
app.use(
  "/api/*",
  slotgate<AppEnv>({
    guard: (c) => createGuard({ store: (store ??= createDurableObjectStore({ namespace: c.env.SLOT_GROUP, configureOnce: true })), limits: { global: 100 } }),
    scopes: ["global"],
    queueTimeoutMs: 5_000,
  }),
);
app.get("/api/hello", (c) => c.text(`hello, slot ${c.get("slotgate").fence}\n`));
export default app;
