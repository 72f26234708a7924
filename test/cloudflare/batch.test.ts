/**
 * Batches on the SlotGroup object of the deployable bundle (SLOT_GROUP_BUNDLE), and the RPC store
 * client that sends them: ops apply in arrival order in one step, each answers at its own index as
 * it would alone (errors included), an acquire that queues answers `queued` and `wait` brings its
 * outcome, hostile batches answer a status reply, and the calls of one turn leave as one RPC.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createDurableObjectStore, type SlotGroupBatchRpc, type SlotGroupNamespace } from "../../src/cloudflare/index.js";
import { StoreStatus } from "../../src/core/errors.js";
import { createGuard } from "../../src/index.js";
import { MAX_BATCH_OPS, type BatchOp } from "../../src/stores/durable-object/batch-protocol.js";
import { burstThenLone, freshGroup, request, spec } from "./helpers.js";

type Stub = ReturnType<typeof env.SLOT_GROUP_BUNDLE.get>;

async function configured(label: string, limit: number): Promise<Stub> {
  const stub = env.SLOT_GROUP_BUNDLE.get(env.SLOT_GROUP_BUNDLE.idFromName(freshGroup(label)));
  expect((await stub.configure(spec({ global: limit }))).status).toBe(0);
  return stub;
}

async function batch(stub: Stub, ops: unknown): Promise<{ status: number; value: { status: number; value?: unknown; detail?: string }[] }> {
  return (await stub.batch(ops as BatchOp[])) as never;
}

const acquireOp = (waiterId: string, queueTimeoutMs = 0): BatchOp => ({ op: "acquire", request: request(["global"], { queueTimeoutMs }), waiterId });

async function leaseOf(stub: Stub, waiterId: string): Promise<string> {
  const r = await stub.acquire(request(["global"]), waiterId);
  if (r.status !== 0 || !r.value.ok) throw new Error(`expected a grant: ${JSON.stringify(r)}`);
  return r.value.lease.id;
}

describe("SlotGroup batches", () => {
  it("apply in arrival order: a release then an acquire takes the freed slot; the other way round it is full", async () => {
    const stub = await configured("batch-order", 1);
    const held = await leaseOf(stub, "first");
    const freed = await batch(stub, [{ op: "release", leaseId: held }, acquireOp("second")]);
    expect(freed.status).toBe(0);
    expect(freed.value[0]).toEqual({ status: 0, value: true });
    expect(freed.value[1]).toMatchObject({ status: 0, value: { ok: true } });
    const second = (freed.value[1]!.value as { lease: { id: string } }).lease.id;

    const reversed = await batch(stub, [acquireOp("third"), { op: "release", leaseId: second }, { op: "stats" }]);
    expect(reversed.value[0]).toEqual({ status: 0, value: { ok: false, reason: "full" } });
    expect(reversed.value[1]).toEqual({ status: 0, value: true });
    expect(reversed.value[2]).toMatchObject({ status: 0, value: { scopes: { global: { in_use: 0, granted: 2, rejected_full: 1, released: 2 } } } });
  });

  it("an acquire then a cancel of the same ticket in one batch: queued, then cancelled; wait brings `aborted`", async () => {
    const stub = await configured("batch-cancel", 1);
    await leaseOf(stub, "holder");
    const r = await batch(stub, [acquireOp("w", 10_000), { op: "cancel", waiterId: "w" }]);
    expect(r.value).toEqual([
      { status: 0, value: { queued: true } },
      { status: 0, value: true },
    ]);
    expect(await stub.wait("w")).toEqual({ status: 0, value: { ok: false, reason: "aborted" } });
    // Collected: a second wait finds nothing.
    expect(await stub.wait("w")).toMatchObject({ status: StoreStatus.TicketGone });
  });

  it("a queued acquire of a batch is granted by a later release; `wait` before or after the grant gets it", async () => {
    const stub = await configured("batch-wait", 1);
    const held = await leaseOf(stub, "holder");
    const queued = await batch(stub, [acquireOp("early", 10_000), acquireOp("late", 10_000)]);
    expect(queued.value).toEqual([
      { status: 0, value: { queued: true } },
      { status: 0, value: { queued: true } },
    ]);
    // `early` is waited for before its grant, `late` after it.
    const early = stub.wait("early");
    await stub.release(held);
    const granted = await early;
    expect(granted).toMatchObject({ status: 0, value: { ok: true } });
    if (granted.status !== 0 || !granted.value.ok) throw new Error("expected a grant");
    await stub.release(granted.value.lease.id);
    expect(await stub.wait("late")).toMatchObject({ status: 0, value: { ok: true } });
    expect(await stub.wait("nobody")).toMatchObject({ status: StoreStatus.TicketGone });
  });

  it("one op's error leaves the others alone, each answered as it would be alone", async () => {
    const stub = await configured("batch-errors", 2);
    const r = await batch(stub, [
      { op: "release", leaseId: "" },
      { op: "acquire", request: request(["nope"]), waiterId: "a" },
      acquireOp("b"),
      { op: "renew", leaseId: "gone", ttlMs: -5 },
      { op: "teleport" },
      42,
      null,
      { op: "acquire", request: "not a request", waiterId: "c" },
      acquireOp("b"),
      { op: "release", leaseId: "never-granted" },
    ]);
    expect(r.status).toBe(0);
    expect(r.value.map((x) => x.status)).toEqual([
      StoreStatus.BadRequest,
      StoreStatus.UnknownScope,
      0,
      StoreStatus.BadRequest,
      StoreStatus.BadRequest,
      StoreStatus.BadRequest,
      StoreStatus.BadRequest,
      StoreStatus.BadRequest,
      0,
      0,
    ]);
    expect(r.value[2]).toMatchObject({ value: { ok: true } });
    // The same waiter id again: granted tickets are not queued, so it is another acquire.
    expect(r.value[8]).toMatchObject({ value: { ok: true } });
    expect(r.value[9]).toEqual({ status: 0, value: false });
    expect((await stub.stats()).status === 0 && (await stub.stats())).toMatchObject({ value: { scopes: { global: { in_use: 2 } } } });
  });

  it("answers an empty, oversize or malformed batch with BadRequest and changes nothing", async () => {
    const stub = await configured("batch-hostile", 1);
    const tooMany = Array.from({ length: MAX_BATCH_OPS + 1 }, (_, i) => acquireOp(`w${i}`));
    for (const ops of [[], tooMany, "ops", { 0: acquireOp("x") }, null]) {
      expect(await batch(stub, ops)).toMatchObject({ status: StoreStatus.BadRequest });
    }
    const full = Array.from({ length: MAX_BATCH_OPS }, (_, i) => acquireOp(`w${i}`));
    const r = await batch(stub, full);
    expect(r.value.filter((x) => (x.value as { ok?: boolean }).ok === true)).toHaveLength(1);
    const stats = await stub.stats();
    expect(stats).toMatchObject({ status: 0, value: { scopes: { global: { in_use: 1, granted: 1, rejected_full: MAX_BATCH_OPS - 1 } } } });
  });
});

/** The bundle's namespace, counting the calls its stubs make (batches and waits included). */
function countingBatches(): { namespace: SlotGroupNamespace; calls: string[] } {
  const calls: string[] = [];
  const ns = env.SLOT_GROUP_BUNDLE;
  const namespace: SlotGroupNamespace = {
    idFromName: (name) => ns.idFromName(name),
    get: (id) => {
      const stub = ns.get(id as DurableObjectId);
      const counted: SlotGroupBatchRpc = {
        acquire: (r, w) => (calls.push("acquire"), stub.acquire(r, w)),
        cancel: (w) => (calls.push("cancel"), stub.cancel(w)),
        release: (l) => (calls.push("release"), stub.release(l)),
        renew: (l, t) => (calls.push("renew"), stub.renew(l, t)),
        configure: (s, v) => (calls.push("configure"), stub.configure(s, v)),
        setServerState: (b, s, u) => (calls.push("setServerState"), stub.setServerState(b, s, u)),
        stats: () => (calls.push("stats"), stub.stats()),
        batch: (ops) => (calls.push(`batch:${ops.map((o) => o.op).join(",")}`), stub.batch(ops)),
        wait: (w) => (calls.push("wait"), stub.wait(w)),
      };
      return counted;
    },
  };
  return { namespace, calls };
}

describe("the RPC store client batches the calls of one turn", () => {
  it("16 acquires made in one turn: the first leaves at once, the other 15 as one RPC; so do their releases; a lone call goes as itself", async () => {
    const { namespace, calls } = countingBatches();
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: freshGroup("rpc-batch"), limits: { global: 100 } });
    await guard.open();
    await burstThenLone(guard);
    expect(calls).toEqual([
      "configure",
      "acquire",
      `batch:${Array(15).fill("acquire").join(",")}`,
      "release",
      `batch:${Array(15).fill("release").join(",")}`,
      "acquire",
      "release",
    ]);
    expect((await guard.stats()).scopes.global).toMatchObject({ in_use: 0, granted: 17, released: 17 });
    await guard.close();
  });

  it("acquires a batch queued are granted in order as slots free up, each through its wait", async () => {
    const { namespace, calls } = countingBatches();
    const guard = createGuard({ store: createDurableObjectStore({ namespace }), group: freshGroup("rpc-queue"), limits: { global: 1 } });
    const holder = await guard.acquire({ scopes: ["global"], autoRenew: false });
    if (!holder.ok) throw new Error("expected a grant");
    const order: number[] = [];
    const waiting = Array.from({ length: 4 }, (_, i) =>
      guard.acquire({ scopes: ["global"], queueTimeoutMs: 10_000, autoRenew: false }).then(async (r) => {
        if (!r.ok) throw new Error(`expected a grant, got ${r.reason}`);
        order.push(i);
        await r.lease.release();
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    await holder.lease.release();
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2, 3]);
    // The first leaves at once as its own (pending) acquire, the next three as one batch: E-order keeps them in order.
    expect(calls.filter((c) => c === "wait")).toHaveLength(3);
    expect(calls.filter((c) => c === "batch:acquire,acquire,acquire")).toHaveLength(1);
    await guard.close();
  });
});
