/** The Worker entry end to end (`exports.default.fetch`): for now only `GET /healthz` answers. */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("Worker entry", () => {
  it("answers GET /healthz", async () => {
    const res = await exports.default.fetch("https://slotgate.example/healthz");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok\n");
  });

  it("answers 404 for everything else and 405 for other methods on /healthz", async () => {
    const notFound = await exports.default.fetch("https://slotgate.example/slots");
    expect(notFound.status).toBe(404);
    await notFound.body?.cancel();
    const post = await exports.default.fetch("https://slotgate.example/healthz", { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    await post.body?.cancel();
  });
});
