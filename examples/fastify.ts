// The README's fastify section: `npx tsx examples/fastify.ts`, then `curl -i 127.0.0.1:3000/api/hello`.
import Fastify from "fastify";
import { createGuard } from "slotgate";
import slotgate from "slotgate/fastify";

const guard = createGuard({ limits: { global: 100, tenant: { perKey: 5 } } }); // add store: createRedisStore(…) to share it
const app = Fastify();
await app.register(slotgate, { guard, scopes: (request) => ["global", `tenant:${request.headers["x-tenant"] ?? "anon"}`], queueTimeoutMs: 5_000 });
app.get("/api/hello", async (request) => `hello, slot ${request.slotgate!.fence}\n`);
await app.listen({ host: "127.0.0.1", port: 3000 });
