/**
 * The slotgate Worker entry. It exports the `SlotGroup` Durable Object class that
 * `wrangler.toml` binds as `SLOT_GROUP`. Its `fetch` answers only `GET /healthz` for now.
 * The edge proxy and the slot API come later and will route through this handler.
 */
import { SlotGroup } from "../src/cloudflare/index.js";

export { SlotGroup };

export default {
  async fetch(request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      }
      return new Response(request.method === "HEAD" ? null : "ok\n", { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
    }
    return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });
  },
} satisfies ExportedHandler<Env>;
