// Attack: getting fresh slots of a keyed limit on the client address. A client may write any
// x-forwarded-for / forwarded header it likes, and an IPv6 client owns a whole /64 and can send
// each request from another address of it. Neither may give it another key. The edge node runs
// in process on loopback addresses; addresses a loopback socket cannot have (other members of a
// /64, IPv4-mapped forms) are covered by the unit tests of the key derivation in config.test.ts.

import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startOrigin, type Origin } from "../support/origin.js";
import { send, startEdge, until, type Answer, type StartedEdge } from "./edge.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function setUp(bind: string): Promise<{ origin: Origin; edge: StartedEdge }> {
  const origin = await startOrigin();
  cleanups.push(() => origin.close());
  const edge = await startEdge(
    { bind, limits: [{ name: "ip", key: { src: true }, maxconn: 1 }] },
    { a: { address: origin.address } },
    // A second request of one key waits at most this long, then gets 503 queue-timeout.
    { timeout: { queue: "1s", connect: "1s", server: "10s" } },
  );
  cleanups.push(() => edge.stop());
  return { origin, edge };
}

/** The keyed scopes of the limit `ip` that exist now, with what they hold and queue. */
async function keyedScopes(edge: StartedEdge): Promise<Record<string, { in_use: number; queued: number }>> {
  const out: Record<string, { in_use: number; queued: number }> = {};
  for (const [name, row] of Object.entries((await edge.node.guard.stats()).scopes)) {
    if (name.startsWith("frontend:web:ip:") && (row.in_use > 0 || row.queued > 0)) out[name] = { in_use: row.in_use, queued: row.queued };
  }
  return out;
}

/** Whether this machine can listen on ::1 (some containers have no IPv6 at all). */
async function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(0, "::1", () => server.close(() => resolve(true)));
  });
}

describe("attack: fresh slots of a src-keyed limit", () => {
  it("a spoofed x-forwarded-for or forwarded header does not choose the key", async () => {
    const { origin, edge } = await setUp("127.0.0.1:0");
    const holder = send(edge.url, "/hold?delay=400");
    holder.catch(() => undefined); // awaited below; a failed assertion before that must not leave it unhandled
    await until(() => origin.current === 1);
    const spoofed: Array<Promise<Answer>> = [];
    for (let i = 0; i < 3; i++) {
      const answer = send(edge.url, `/spoof/${i}`, {
        "x-forwarded-for": `198.51.100.${i + 1}`,
        "x-real-ip": `198.51.100.${i + 1}`,
        forwarded: `for=198.51.100.${i + 1}`,
      });
      answer.catch(() => undefined);
      spoofed.push(answer);
    }
    // All three wait behind the holder, on the one key of 127.0.0.1.
    await until(async () => (await keyedScopes(edge))["frontend:web:ip:127.0.0.1"]?.queued === 3);
    expect(await keyedScopes(edge)).toEqual({ "frontend:web:ip:127.0.0.1": { in_use: 1, queued: 3 } });
    expect(origin.current).toBe(1);
    const answers = await Promise.all([holder, ...spoofed]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(origin.max).toBe(1); // one at a time: the key held
  });

  it("keys an IPv6 client on its /64 by default", async () => {
    if (!(await hasIpv6Loopback())) {
      console.warn("no IPv6 loopback here: the /64 key is covered by the unit tests only");
      return;
    }
    const { origin, edge } = await setUp("[::1]:0");
    expect(edge.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
    const holder = send(edge.url, "/hold?delay=300");
    holder.catch(() => undefined); // as above
    await until(() => origin.current === 1);
    // ::1 masked to its /64 is ::, so every address of ::/64 shares this key.
    expect(await keyedScopes(edge)).toEqual({ "frontend:web:ip:::": { in_use: 1, queued: 0 } });
    const second = send(edge.url, "/second", { "x-forwarded-for": "2001:db8::1" });
    second.catch(() => undefined);
    await until(async () => (await keyedScopes(edge))["frontend:web:ip:::"]?.queued === 1);
    expect((await Promise.all([holder, second])).map((a) => a.status)).toEqual([200, 200]);
    expect(origin.max).toBe(1);
  });
});
