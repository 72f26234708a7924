// The Worker's log lines (Workers Logs, `wrangler tail`) carry error details from the guard and the
// upstream: a keyed-limit value (an API key) or URL credentials must not reach them.

import { afterEach, describe, expect, it, vi } from "vitest";
import { log } from "../../src/worker/log.js";

afterEach(() => vi.restoreAllMocks());

describe("Worker log lines", () => {
  it("scrub keyed-limit values and URL credentials out of every string field", () => {
    const lines: unknown[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => void lines.push(line));
    log("warn", "upstream error", {
      detail: 'unknown scope "frontend:web:apikey:sk_live_SECRET123"',
      target: "https://admin:hunter2@origin.example/path",
      status: 502,
    });
    const text = JSON.stringify(lines);
    expect(text).not.toContain("sk_live_SECRET123");
    expect(text).not.toContain("hunter2");
    expect(text).toContain("frontend:web:apikey:[key value not logged]");
    expect(lines[0]).toMatchObject({ level: "warn", msg: "upstream error", status: 502 });
  });
});
