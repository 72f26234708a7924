import { describe, expect, it } from "vitest";
import { Batcher, type BatchSender, type Pending } from "../../src/core/batcher.js";
import { mulberry32, replayHint, testSeeds } from "../support/random.js";

/** A hand-cranked end of turn: the test decides when the turn ends. */
function manualTurn() {
  const due: (() => void)[] = [];
  return {
    endOfTurn: (run: () => void) => void due.push(run),
    end: () => due.splice(0).forEach((run) => run()),
    get scheduled() {
      return due.length;
    },
  };
}

/** A sender that records each call it sends and leaves it for the test to answer. */
function recorder() {
  const sent: { kind: "one" | "many"; ops: number[]; answer: (results?: unknown[]) => void; fail: (error: unknown) => void }[] = [];
  const sender: BatchSender<number> = {
    one(op) {
      return new Promise((resolve, reject) => sent.push({ kind: "one", ops: [op], answer: (r) => resolve(r?.[0] ?? op * 10), fail: reject }));
    },
    many(run: readonly Pending<number>[]) {
      return new Promise<void>((resolve, reject) =>
        sent.push({
          kind: "many",
          ops: run.map((p) => p.op),
          answer: (r) => {
            run.forEach((p, i) => p.resolve(r?.[i] ?? p.op * 10));
            resolve();
          },
          fail: reject,
        }),
      );
    },
  };
  return { sender, sent };
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe("Batcher: the batching rule shared by the stores", () => {
  it("a lone call goes at once, alone, without waiting for the end of the turn", async () => {
    const turn = manualTurn();
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 4, endOfTurn: turn.endOfTurn });
    const r = b.add<number>(1);
    expect(sent.map((s) => [s.kind, s.ops])).toEqual([["one", [1]]]);
    expect(turn.scheduled).toBe(0);
    sent[0]!.answer();
    await expect(r).resolves.toBe(10);
    expect(b.open).toBe(0);
    // Nothing open again: the next call goes alone too.
    void b.add(2);
    expect(sent.map((s) => s.kind)).toEqual(["one", "one"]);
  });

  it("calls made while one is open wait for the end of the turn and go as one run, in order, each with its own result", async () => {
    const turn = manualTurn();
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn });
    const first = b.add<number>(1);
    const rest = [2, 3, 4].map((op) => b.add<number>(op));
    expect(sent).toHaveLength(1);
    expect(turn.scheduled).toBe(1);
    turn.end();
    expect(sent.map((s) => [s.kind, s.ops])).toEqual([
      ["one", [1]],
      ["many", [2, 3, 4]],
    ]);
    sent[1]!.answer(["b", "c", "d"]);
    sent[0]!.answer(["a"]);
    await expect(Promise.all([first, ...rest])).resolves.toEqual(["a", "b", "c", "d"]);
    expect(b.open).toBe(0);
  });

  it("a run of one waiting call goes as itself, not as a batch", async () => {
    const turn = manualTurn();
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn });
    void b.add(1);
    void b.add(2);
    turn.end();
    expect(sent.map((s) => [s.kind, s.ops])).toEqual([
      ["one", [1]],
      ["one", [2]],
    ]);
  });

  it("no run carries more than max calls: a run reaching max goes at once", () => {
    const turn = manualTurn();
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 3, endOfTurn: turn.endOfTurn });
    for (let op = 1; op <= 8; op++) void b.add(op);
    // 1 alone; 2..4 and 5..7 as soon as each run is full; 8 at the end of the turn.
    expect(sent.map((s) => s.ops)).toEqual([[1], [2, 3, 4], [5, 6, 7]]);
    turn.end();
    expect(sent.map((s) => s.ops)).toEqual([[1], [2, 3, 4], [5, 6, 7], [8]]);
  });

  it("flush sends what waits now, so a call that cannot join a batch keeps its place in the order", () => {
    const turn = manualTurn();
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn });
    void b.add(1);
    void b.add(2);
    void b.add(3);
    b.flush();
    expect(sent.map((s) => s.ops)).toEqual([[1], [2, 3]]);
    // The end of the turn then finds nothing more to send.
    turn.end();
    expect(sent).toHaveLength(2);
    b.flush();
    expect(sent).toHaveLength(2);
  });

  it("a fault of the whole run fails each op it left unsettled, through the fault mapping", async () => {
    const turn = manualTurn();
    const sender: BatchSender<string> = {
      one: () => new Promise(() => undefined),
      many: (run) => {
        run[0]!.resolve("settled first");
        return Promise.reject(new Error("connection lost"));
      },
    };
    const b = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn, fault: (op, error) => new Error(`${op}: ${(error as Error).message}`) });
    void b.add("lone");
    const run = ["a", "b", "c"].map((op) => b.add(op));
    turn.end();
    const settled = await Promise.allSettled(run);
    expect(settled).toEqual([
      { status: "fulfilled", value: "settled first" },
      { status: "rejected", reason: new Error("b: connection lost") },
      { status: "rejected", reason: new Error("c: connection lost") },
    ]);
  });

  it("a sender that throws fails its calls rather than the caller", async () => {
    const turn = manualTurn();
    const sender: BatchSender<number> = {
      one: () => {
        throw new Error("no connection");
      },
      many: () => {
        throw new Error("no connection either");
      },
    };
    const b = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn });
    const lone = b.add(1);
    const run = [b.add(2), b.add(3)];
    turn.end();
    await expect(lone).rejects.toThrow("no connection");
    for (const r of run) await expect(r).rejects.toThrow("no connection either");
    expect(b.open).toBe(0);
  });

  it("an op settled early (its own abort) no longer counts as open", async () => {
    const turn = manualTurn();
    const held: Pending<number>[] = [];
    // Kept open by a lone call that never answers, the next two share a run that the test settles.
    const sender: BatchSender<number> = { one: () => new Promise(() => undefined), many: (run) => void held.push(...run) };
    const b2 = new Batcher(sender, { max: 8, endOfTurn: turn.endOfTurn });
    const open = [b2.add(1), b2.add(2), b2.add(3)];
    turn.end();
    expect(held.map((p) => p.op)).toEqual([2, 3]);
    held[0]!.reject(new Error("aborted"));
    held[0]!.resolve("too late");
    await expect(open[1]).rejects.toThrow("aborted");
    expect(b2.open).toBe(2);
    held[1]!.resolve("three");
    await expect(open[2]).resolves.toBe("three");
    expect(b2.open).toBe(1);
  });

  it("by default the turn ends on the runtime's own scheduler", async () => {
    const { sender, sent } = recorder();
    const b = new Batcher(sender, { max: 8 });
    void b.add(1);
    void b.add(2);
    void b.add(3);
    expect(sent).toHaveLength(1);
    await tick();
    expect(sent.map((s) => s.ops)).toEqual([[1], [2, 3]]);
  });

  it("rejects a max that is not a positive integer", () => {
    const { sender } = recorder();
    for (const max of [0, -1, 1.5, Number.NaN]) expect(() => new Batcher(sender, { max })).toThrow(RangeError);
  });

  it.each(testSeeds([0xba7c, 0x0128]))(
    "random interleavings (seed %i): every call is sent exactly once, in order, in runs of at most max, and gets its own result",
    async (seed) => {
      try {
        const random = mulberry32(seed);
        for (let round = 0; round < 50; round++) {
          const turn = manualTurn();
          const { sender, sent } = recorder();
          const max = 1 + Math.floor(random() * 6);
          const b = new Batcher(sender, { max, endOfTurn: turn.endOfTurn });
          const results: Promise<unknown>[] = [];
          let next = 0;
          let answered = 0;
          for (let step = 0; step < 60; step++) {
            const r = random();
            if (r < 0.5) results.push(b.add(next++));
            else if (r < 0.65) turn.end();
            else if (r < 0.75) b.flush();
            else if (answered < sent.length) sent[answered++]!.answer();
            if (r >= 0.75) await Promise.resolve();
          }
          turn.end();
          while (answered < sent.length) sent[answered++]!.answer();
          expect(await Promise.all(results)).toEqual(results.map((_, i) => i * 10));
          expect(sent.flatMap((s) => s.ops)).toEqual([...Array(next).keys()]);
          for (const s of sent) {
            expect(s.ops.length).toBeLessThanOrEqual(max);
            expect(s.kind).toBe(s.ops.length === 1 ? "one" : "many");
          }
          expect(b.open).toBe(0);
        }
      } catch (error) {
        console.error(`seed ${seed}; ${replayHint(seed, "test/core/batcher.test.ts")}`);
        throw error;
      }
    },
  );
});
