/** Shared bits of the workerd tests: fresh groups, stubs, a spec builder, and an RPC counter. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { buildGroupSpec, type BackendsOption, type LimitsOption } from "../../src/core/spec.js";
import type { ChainRequest, GroupSpec, Guard } from "../../src/index.js";
import type { SlotGroup, SlotGroupNamespace, SlotGroupRpc } from "../../src/cloudflare/index.js";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 10 ms until it holds; fails after `timeoutMs`. */
export async function until(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Storage is isolated per test file, not per test: every test takes a group of its own. */
export const freshGroup = (label: string) => `${label}-${crypto.randomUUID()}`;

export const stubFor = (group: string) => env.SLOT_GROUP.get(env.SLOT_GROUP.idFromName(group));

export const spec = (limits?: LimitsOption, backends?: BackendsOption): GroupSpec => buildGroupSpec(limits, backends);

export const request = (scopes: string[], more: Partial<ChainRequest> = {}): ChainRequest => ({
  scopes,
  priorityClass: 0,
  priorityOffsetMs: 0,
  queueTimeoutMs: 0,
  leaseTtlMs: 30_000,
  ...more,
});

/** Restarts the object: `state.abort()` from inside it. The abort rejects the helper's call, which is expected. */
export async function restart(group: string): Promise<void> {
  const error = await runInDurableObject(stubFor(group), (_instance: SlotGroup, state) => state.abort("test restart")).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(error instanceof Error)) throw new Error("expected the abort to reject the call");
}

/** Reads the object's tables without calling into its state machine (so nothing ticks it). */
export function inspect(group: string): Promise<{ leases: number; fence: number; alarm: number | null; instance: SlotGroup }> {
  return runInDurableObject(stubFor(group), async (instance: SlotGroup, state) => ({
    leases: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM slotgate_leases").one().n,
    fence: state.storage.sql.exec<{ fence: number }>("SELECT fence FROM slotgate_group WHERE id = 1").one().fence,
    alarm: await state.storage.getAlarm(),
    instance,
  }));
}

/**
 * A namespace that counts every RPC made through the stubs it hands out, and every stub it
 * builds. It wraps the deployable bundle's SLOT_GROUP_BUNDLE.
 */
export function countingNamespace(): { namespace: SlotGroupNamespace; calls: string[]; stubs: () => number } {
  const calls: string[] = [];
  let stubs = 0;
  const ns = env.SLOT_GROUP_BUNDLE;
  const namespace: SlotGroupNamespace = {
    idFromName: (name) => ns.idFromName(name),
    get: (id) => {
      stubs++;
      const stub: SlotGroupRpc = ns.get(id as DurableObjectId);
      const counted: SlotGroupRpc = {
        acquire: (r, w) => (calls.push("acquire"), stub.acquire(r, w)),
        cancel: (w) => (calls.push("cancel"), stub.cancel(w)),
        release: (l) => (calls.push("release"), stub.release(l)),
        renew: (l, t) => (calls.push("renew"), stub.renew(l, t)),
        configure: (s) => (calls.push("configure"), stub.configure(s)),
        setServerState: (b, s, u) => (calls.push("setServerState"), stub.setServerState(b, s, u)),
        stats: () => (calls.push("stats"), stub.stats()),
      };
      return counted;
    },
  };
  return { namespace, calls, stubs: () => stubs };
}

/**
 * A burst of 16 acquires made in one turn, their releases in one turn, then one lone acquire and
 * release: the calls a batching store client makes are then 1 + a batch of 15, twice, and 2 alone.
 */
export async function burstThenLone(guard: Guard): Promise<void> {
  const granted = await Promise.all(Array.from({ length: 16 }, () => guard.acquire({ scopes: ["global"], autoRenew: false })));
  await Promise.all(granted.map((r) => (r.ok ? r.lease.release() : Promise.reject(new Error("expected a grant")))));
  const lone = await guard.acquire({ scopes: ["global"], autoRenew: false });
  if (!lone.ok) throw new Error("expected a grant");
  await lone.lease.release();
}
