// The README's library example, runnable as is: `npm run build && node examples/quickstart.mjs`.
import { createGuard, createMemoryStore } from "slotgate";

const guard = createGuard({
  store: createMemoryStore(),
  group: "shop",
  limits: { global: 100, "frontend:web": 60, tenant: { perKey: 5 } },
  backends: { api: { balance: "leastconn", max: 40, servers: { a: { max: 20 }, b: { max: 20 } } } },
});
const result = await guard.acquire({
  scopes: ["global", "frontend:web", "tenant:acme"],
  backend: "api",
  priority: { class: 1, offsetMs: 0 },
  queueTimeoutMs: 5_000,
  leaseTtlMs: 30_000,
});
if (!result.ok) console.log("rejected:", result.reason, "retry in", result.retryAfterMs, "ms");
else {
  const { lease } = result;
  try {
    console.log(`granted on server ${lease.server} with fence ${lease.fence}`);
  } finally {
    await lease.release();
  }
}
const answer = await guard.run({ scopes: ["global"] }, async (lease) => `work done under fence ${lease.fence}`);
console.log(answer);
console.log("global:", (await guard.stats()).scopes.global);
await guard.close();
