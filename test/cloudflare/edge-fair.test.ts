/**
 * The Worker reads the edge node's words for fair queuing (issue 13) from the same config: a
 * frontend's `fair_by` header becomes each request's flow in the SlotGroup object, weighted by the
 * top-level `queue.flow_weights`. Inside workerd, through the deployable bundle (edge-fixtures.ts).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { edge, freshBucket, groupStats, originStats } from "./edge-helpers.js";
import { until } from "./helpers.js";

const statusOf = async (response: Promise<Response>) => {
  const res = await response;
  await res.arrayBuffer();
  return res.status;
};

describe("the Worker: fair_by and flow_weights", () => {
  it("serves a light tenant's waiting requests between a heavy tenant's, and a weighted tenant more often", async () => {
    const bucket = freshBucket("fair");
    const send = (id: string, tenant: string, delay = 10) =>
      edge(env.EDGE_FAIR, `/f/${id}?delay=${delay}`, bucket, { headers: { "x-test-id": id, "x-tenant": tenant } });
    const replies = [send("holder", "holder", 400)];
    await until(async () => (await originStats(bucket)).current === 1);
    const plan = [
      ...Array.from({ length: 6 }, (_, i) => [`heavy${i}`, "heavy"] as const),
      ["light0", "light"] as const,
      ["light1", "light"] as const,
      ...Array.from({ length: 4 }, (_, i) => [`gold${i}`, "gold"] as const),
    ];
    for (const [i, [id, tenant]] of plan.entries()) {
      replies.push(send(id, tenant));
      let seen = -1;
      await until(async () => (seen = (await groupStats("fair")).tickets) === i + 1).catch(() => {
        throw new Error(`expected ${i + 1} tickets, saw ${seen}`);
      });
    }
    expect((await Promise.all(replies.map(statusOf))).every((s) => s === 200)).toBe(true);
    // Start tags: heavy k and light k at k·1e6 (arrival breaks ties), gold k at k·333333.
    expect((await originStats(bucket)).arrivals).toEqual([
      "holder",
      "heavy0",
      "light0",
      "gold0",
      "gold1",
      "gold2",
      "gold3",
      "heavy1",
      "light1",
      "heavy2",
      "heavy3",
      "heavy4",
      "heavy5",
    ]);
  });
});
