// The README's hono section: `npx tsx examples/hono-node.ts`, then `curl -i 127.0.0.1:3000/api/hello`.
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createGuard } from "slotgate";
import { slotgate, type SlotgateVariables } from "slotgate/hono";

const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } }); // add store: createRedisStore(…) to share it
const app = new Hono<{ Variables: SlotgateVariables }>();
app.use("/api/*", slotgate({ guard, scopes: (c) => ["global", `tenant:${c.req.header("x-tenant") ?? "anon"}`], queueTimeoutMs: 5_000 }));
app.get("/api/hello", (c) => c.text(`hello, slot ${c.get("slotgate").fence}\n`));
serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 3000 });
