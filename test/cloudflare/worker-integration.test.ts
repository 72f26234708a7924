/**
 * The Worker entry end to end (`exports.default.fetch`), with the bindings of wrangler.toml only:
 * no SLOTGATE_CONFIG and no SLOTGATE_API_TOKEN, so it answers its health check and 404 otherwise.
 * The proxy and the slot API are tested on the deployable bundle: edge.test.ts, slot-api.test.ts.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("Worker entry", () => {
  it("answers GET and HEAD /_slotgate/healthz, 405 for other methods", async () => {
    const res = await exports.default.fetch("https://slotgate.example/_slotgate/healthz");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok\n");
    const head = await exports.default.fetch("https://slotgate.example/_slotgate/healthz", { method: "HEAD" });
    expect(head.status).toBe(200);
    const post = await exports.default.fetch("https://slotgate.example/_slotgate/healthz", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    await post.body?.cancel();
  });

  it("without a config proxies nothing, and without a token has no slot API (404)", async () => {
    for (const path of ["/", "/slots", "/_slotgate/v1/ping", "/_slotgate/v1/groups/g/stats", "/_slotgate/other"]) {
      const res = await exports.default.fetch(`https://slotgate.example${path}`, { headers: { authorization: "Bearer 0123456789abcdef0123" } });
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
  });
});
