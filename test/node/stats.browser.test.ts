// The stats page in a real browser: Debian's headless Chromium, driven from the command line
// (--dump-dom for the rendered DOM, --screenshot for a PNG), so no browser-automation package is
// needed. Without /usr/bin/chromium the test is skipped, saying so; CI installs it with
//   apt-get install -y chromium
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuard, createMemoryStore, type Guard } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { createStatsListener } from "../../src/node/stats/index.js";
import { CHROMIUM_TIMEOUT_MS, headlessChromiumArgs } from "../../scripts/chromium.js";

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = existsSync(CHROMIUM);
const SKIP_REASON = `SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium)`;
const TOKEN = "browser-test-token-0123456789";
const HOSTILE = "<script>document.title='pwned'</script>";

const config = validateEdgeConfig({
  group: "shop",
  global: { maxconn: 20 },
  node: { maxconn: 100 },
  frontends: {
    web: { bind: "127.0.0.1:0", maxconn: 10, default_backend: "api", limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 2 }] },
  },
  backends: {
    api: {
      balance: "first",
      servers: { a1: { address: "127.0.0.1:9001", maxconn: 2 }, a2: { address: "127.0.0.1:9002", maxconn: 4 }, a3: { address: "127.0.0.1:9003", down: true } },
    },
  },
  // Raw key values on the page (digests are the default): this test is about a hostile value
  // reaching the browser as text, never as markup.
  stats: { bind: "127.0.0.1:0", token: TOKEN, show_keys: true },
});

let guard: Guard;
let newer: Guard;
let listener: ReturnType<typeof createStatsListener>;
let dir: string;
let url: string;

beforeAll(async () => {
  if (!HAS_CHROMIUM) return;
  // This node runs version 3 of the limits; another node already pushed version 4 (same limits
  // here), so the page's spec panel shows this node superseded.
  const store = createMemoryStore();
  newer = createGuard({ ...toGuardOptions(config), version: 4, store });
  await newer.open();
  guard = createGuard({ ...toGuardOptions(config), version: 3, store });
  await guard.open(); // as the edge node does at start
  for (const key of ["acme", "acme", "globex", HOSTILE]) {
    const r = await guard.acquire({ scopes: ["global", "frontend:web", `frontend:web:apikey:${key}`], backend: "api" });
    if (!r.ok) throw new Error(`not granted: ${r.reason}`);
  }
  listener = createStatsListener({
    bind: config.stats!.bind,
    token: TOKEN,
    guard,
    config,
    node: () => ({ nodeMaxconn: 100, nodeInUse: 4, frontends: { web: { active: 4, queued: 0, requests: 9, rejected: { full: 1 } } } }),
  });
  await listener.start();
  url = `http://127.0.0.1:${listener.address()!.port}/stats?token=${TOKEN}`;
  dir = await mkdtemp(join(tmpdir(), "slotgate-chromium-"));
});

afterAll(async () => {
  if (!HAS_CHROMIUM) return;
  await listener?.stop();
  await guard?.close();
  await newer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function chromium(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(CHROMIUM, [...headlessChromiumArgs(join(dir, `profile-${Math.random().toString(36).slice(2)}`)), ...args], {
    timeout: CHROMIUM_TIMEOUT_MS,
    maxBuffer: 32 * 1024 * 1024,
  });
  return stdout;
}

describe("stats page in headless Chromium", () => {
  it.skipIf(!HAS_CHROMIUM)(
    HAS_CHROMIUM ? "renders the rows, the refresh meta and no injected script (--dump-dom)" : `renders the page — ${SKIP_REASON}`,
    async () => {
      const dom = await chromium(["--dump-dom", url]);
      expect(dom).toContain('<meta http-equiv="refresh" content="5">');
      expect(dom).toContain("<title>slotgate stats — shop</title>"); // an injected script would have changed it
      for (const scope of [
        "node",
        "global",
        "frontend:web",
        "frontend:web:apikey",
        "frontend:web:apikey:acme",
        "frontend:web:apikey:globex",
        "backend:api",
        "server:api/a1",
        "server:api/a2",
        "server:api/a3",
      ]) {
        expect(dom, scope).toContain(`data-scope="${scope}"`);
      }
      expect(dom).toMatch(/<tr class="server up full" data-scope="server:api\/a1">.*?<td class="status">UP<\/td><\/tr>/);
      expect(dom).toMatch(/<tr class="server down" data-scope="server:api\/a3">.*?<td class="status">DOWN<\/td><\/tr>/);
      expect(dom).toMatch(/<tr class="key full" data-scope="frontend:web:apikey:acme">/);
      // The hostile key value is text in the DOM, not an element.
      expect(dom).toContain("<span class=\"key\">&lt;script&gt;document.title='pwned'&lt;/script&gt;</span>");
      expect(dom).not.toContain("<script");
      // The spec and state-loss panel: version, superseded (warning), state loss absent on memory.
      expect(dom).toContain('<section class="panel" id="spec-state">');
      expect(dom).toMatch(/<table class="kv" id="spec">.*?<th>version<\/th><td>3<\/td><th>unavailable<\/th><td>0<\/td>/s);
      expect(dom).toMatch(/<tr class="warn" id="spec-superseded"><th>superseded<\/th><td colspan="3">yes: this node runs an older version/);
      expect(dom).toMatch(/<table class="kv" id="state-loss">.*?<th>re-registered<\/th><td>—<\/td><th>lost<\/th><td>—<\/td>/s);
      expect(dom).toMatch(/<tr id="learning"><th>learning until<\/th><td colspan="3">—<\/td><\/tr>/);
    },
    90_000,
  );

  it.skipIf(!HAS_CHROMIUM)(
    HAS_CHROMIUM ? "takes a screenshot: a non-trivial PNG (--screenshot)" : `takes a screenshot — ${SKIP_REASON}`,
    async () => {
      const file = join(dir, "stats.png");
      await chromium([`--screenshot=${file}`, "--window-size=1400,900", url]);
      const png = await readFile(file);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1400, 900]);
      expect(png.length).toBeGreaterThan(10 * 1024);
    },
    90_000,
  );
});
