/**
 * The Worker of the Durable Object benchmark's `rpc-client` rows: `callers` loops of acquire →
 * release through ONE guard on the RPC store (createDurableObjectStore over the SLOT_GROUP
 * binding), in one request, so the store client batches what the callers do in the same turn.
 * Bundled by scripts/bench/durable-object.ts (esbuild), once against this tree and once against
 * the baseline's. GET /loop?group&limit&callers&ms → { ops, elapsedMs, p50Ms, p99Ms, meanMs, rpcs }.
 */
import { createGuard } from "../../src/index.js";
import { createDurableObjectStore, type SlotGroupNamespace } from "../../src/cloudflare/index.js";

interface Env {
  SLOT_GROUP: SlotGroupNamespace;
}

const pct = (sorted: number[], q: number) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]);

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const p = new URL(request.url).searchParams;
    const limit = Number(p.get("limit"));
    const callers = Number(p.get("callers"));
    const ms = Number(p.get("ms"));
    let rpcs = 0;
    // Counts the RPCs the client sends (any method of the stub), without changing what it sends.
    const namespace: SlotGroupNamespace = {
      idFromName: (name) => env.SLOT_GROUP.idFromName(name),
      get: (id) => {
        const stub = env.SLOT_GROUP.get(id) as unknown as Record<string, (...args: unknown[]) => unknown>;
        return new Proxy(stub, {
          get: (target, key) => {
            const method = target[key as string];
            return typeof method === "function" ? (...args: unknown[]) => (rpcs++, Reflect.apply(method, target, args)) : method;
          },
        }) as never;
      },
    };
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: p.get("group")!, limits: { global: limit } });
    await guard.open();
    rpcs = 0;
    const lat: number[] = [];
    const started = Date.now();
    const deadline = started + ms;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (Date.now() < deadline) {
          const t = Date.now();
          const r = await guard.acquire({ scopes: ["global"], queueTimeoutMs: 60_000, autoRenew: false });
          if (!r.ok) throw new Error(`not granted: ${r.reason}`);
          await r.lease.release();
          lat.push(Date.now() - t);
        }
      }),
    );
    const elapsedMs = Date.now() - started;
    await guard.close();
    lat.sort((a, b) => a - b);
    return Response.json({
      ops: lat.length,
      elapsedMs,
      p50Ms: pct(lat, 0.5),
      p99Ms: pct(lat, 0.99),
      meanMs: lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length),
      rpcs,
    });
  },
};
