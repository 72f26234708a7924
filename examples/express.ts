// The README's express section: `npx tsx examples/express.ts`, then `curl -i 127.0.0.1:3000/api/hello`.
import express from "express";
import { createGuard } from "slotgate";
import { slotgate } from "slotgate/express";

const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } }); // add store: createRedisStore(…) to share it
const app = express();
app.use("/api", slotgate({ guard, scopes: (req) => ["global", `tenant:${req.get("x-tenant") ?? "anon"}`], queueTimeoutMs: 5_000 }));
app.get("/api/hello", (req, res) => void res.send(`hello, slot ${req.slotgate!.fence}\n`));
app.listen(3000, "127.0.0.1");
