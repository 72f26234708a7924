/**
 * slotgate/hono in a Worker, inside workerd: a user's hono app (fixtures/hono-app) with the
 * Durable Object store, called through a service binding (each call an invocation of its own).
 * The app counts its running handlers; the slots are read from the group's object.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { freshGroup, until } from "./helpers.js";

const LIMIT = 5;

interface AppStats {
  current: number;
  max: number;
  global: { in_use: number; queued: number; granted: number; released: number; peak_in_use: number } | undefined;
}

const call = (group: string, path: string) => env.HONO_APP.fetch(`https://app.example${path}`, { headers: { "x-test-group": group } });
const stats = async (group: string) => (await call(group, "/stats")).json<AppStats>();
const idle = (group: string) => until(async () => (await stats(group)).global?.in_use === 0);

describe("slotgate/hono in a Worker, with the Durable Object store", () => {
  it("40 concurrent requests on a limit of 5: never more than 5 handlers running, all answered", async () => {
    const group = freshGroup("hono-burst");
    const replies = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const res = await call(group, "/api/work?delay=30");
        return { status: res.status, body: await res.text() };
      }),
    );
    expect(replies.filter((r) => r.status !== 200)).toEqual([]);
    const s = await stats(group);
    expect(s.max).toBeLessThanOrEqual(LIMIT);
    expect(s.max).toBe(LIMIT);
    await idle(group);
    const after = (await stats(group)).global!;
    expect(after.granted).toBe(40);
    expect(after.released).toBe(40);
    expect(after.peak_in_use).toBe(LIMIT);
  });

  it("the handler sees its lease", async () => {
    const group = freshGroup("hono-lease");
    const lease = await (await call(group, "/api/lease")).json<{ fence: number; held: boolean }>();
    expect(lease.held).toBe(true);
    expect(lease.fence).toBeGreaterThan(0);
    await idle(group);
  });

  it("a streamed response holds its slot until the stream ends", async () => {
    const group = freshGroup("hono-stream");
    const t0 = Date.now();
    const res = await call(group, "/api/stream?chunks=6&interval=100");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let body = decoder.decode((await reader.read()).value);
    expect(body).toContain("chunk 0");
    expect((await stats(group)).global!.in_use).toBe(1);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += decoder.decode(value);
      // Still streaming: the slot is still held.
      if (!body.includes("chunk 5")) expect((await stats(group)).global!.in_use).toBe(1);
    }
    expect(body).toContain("chunk 5");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    await idle(group);
    expect((await stats(group)).global!.released).toBe(1);
  });

  it("a handler that throws gives its slot back", async () => {
    const group = freshGroup("hono-throw");
    const statuses = await Promise.all(Array.from({ length: 8 }, async () => (await call(group, "/api/throw")).status));
    expect(statuses).toEqual(Array(8).fill(500));
    await idle(group);
    const after = (await stats(group)).global!;
    expect(after.granted).toBe(8);
    expect(after.released).toBe(8);
  });

  it("a reader that cancels mid-stream frees its slot", async () => {
    const group = freshGroup("hono-cancel");
    const res = await call(group, "/api/stream?chunks=200&interval=100");
    const reader = res.body!.getReader();
    await reader.read();
    expect((await stats(group)).global!.in_use).toBe(1);
    const t0 = Date.now();
    await reader.cancel();
    await idle(group);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});
