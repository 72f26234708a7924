// Renders the stats page of a demo edge node under some load in headless Chromium and writes
// docs/stats-page.png (the README's picture of /stats).
//
//   apt-get install -y chromium          # Debian's chromium, once
//   npx tsx scripts/screenshot-stats.mjs [out.png]
//
// Runs from the TypeScript sources (tsx), so no build is needed. CHROMIUM=/path overrides the
// browser binary.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createGuard, createMemoryStore } from "../src/index.js";
import { validateEdgeConfig } from "../src/edge/config/schema.js";
import { toGuardOptions } from "../src/edge/config/to-guard.js";
import { createStatsListener } from "../src/node/stats/index.js";
import { CHROMIUM_TIMEOUT_MS, headlessChromiumArgs } from "./chromium.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "docs", "stats-page.png"));
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(chromium)) {
  process.stderr.write(`${chromium} not found: apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)\n`);
  process.exit(1);
}

const config = validateEdgeConfig({
  group: "shop",
  global: { maxconn: 60 },
  node: { maxconn: 200 },
  frontends: {
    web: {
      bind: "127.0.0.1:0",
      maxconn: 40,
      default_backend: "web_servers",
      limits: [{ name: "apikey", key: { header: "x-api-key" }, maxconn: 4, maxqueue: 3 }],
    },
    echo: { bind: "127.0.0.1:0", mode: "tcp", maxconn: 2, default_backend: "echo_servers" },
  },
  backends: {
    web_servers: {
      balance: "leastconn",
      maxconn: 30,
      maxqueue: 50,
      timeout: { queue: "2s" },
      servers: {
        web1: { address: "127.0.0.1:9001", maxconn: 10 },
        web2: { address: "127.0.0.1:9002", maxconn: 12, weight: 2 },
        web3: { address: "127.0.0.1:9003", maxconn: 10, down: true },
      },
    },
    echo_servers: { servers: { echo1: { address: "127.0.0.1:9100", maxconn: 2 } } },
  },
  stats: { bind: "127.0.0.1:0" },
});

const guard = createGuard({ ...toGuardOptions(config), store: createMemoryStore() });
const held = [];
const pending = [];
const web = (key, queueTimeoutMs = 0) => ({
  scopes: ["global", "frontend:web", `frontend:web:apikey:${key}`],
  backend: "web_servers",
  queueTimeoutMs,
});

// Some traffic: finished requests, held slots (one key at its limit, with a queue and a
// queue-full rejection), a request that waited, a hostile key value, a full tcp frontend.
for (let i = 0; i < 40; i++) {
  const r = await guard.acquire(web(`tenant-${(i % 6) + 1}`));
  if (r.ok) await r.lease.release();
}
const keys = ["acme", "acme", "acme", "acme", "globex", "globex", "globex", "initech", "initech", "<script>alert(1)</script>", "<script>alert(1)</script>"];
for (let i = 1; i <= 6; i++) keys.push(`tenant-${i}`);
for (const key of keys) {
  const r = await guard.acquire(web(key));
  if (r.ok) held.push(r.lease);
}
for (let i = 0; i < 3; i++) pending.push(guard.acquire(web("acme", 60_000)));
await guard.acquire(web("acme", 60_000)); // queue-full: acme's maxqueue is 3
await guard.acquire(web("acme")); // full: no queueing allowed
const onWeb1 = held.find((l) => l.server === "web1");
const waited = guard.acquire({ scopes: ["global", "frontend:web", "frontend:web:apikey:globex"], backend: "web_servers", queueTimeoutMs: 800 });
await guard.acquire({ scopes: ["global", "frontend:web", "frontend:web:apikey:globex"], backend: "web_servers", queueTimeoutMs: 30 }); // queue timeout
await sleep(150);
const freed = held.findIndex((l) => l === onWeb1);
if (freed >= 0) await held.splice(freed, 1)[0].release(); // lets a queued request through after a wait
await waited.then((r) => r.ok && held.push(r.lease));
for (let i = 0; i < 2; i++) await guard.acquire({ scopes: ["global", "frontend:echo"], backend: "echo_servers" }).then((r) => r.ok && held.push(r.lease));
await guard.acquire({ scopes: ["global", "frontend:echo"], backend: "echo_servers" }); // full

const listener = createStatsListener({
  bind: config.stats.bind,
  token: null,
  guard,
  config,
  node: () => ({
    nodeMaxconn: 200,
    nodeInUse: held.length,
    frontends: {
      web: { active: held.length - 2, queued: 3, requests: 1432, rejected: { full: 12, "queue-full": 4, "queue-timeout": 1 } },
      echo: { active: 2, queued: 0, requests: 57, rejected: { full: 3 } },
    },
  }),
});
await listener.start();
const { port } = listener.address();
const dir = await mkdtemp(join(tmpdir(), "slotgate-shot-"));
try {
  await promisify(execFile)(
    chromium,
    [...headlessChromiumArgs(join(dir, "profile")), `--screenshot=${out}`, "--window-size=1400,1160", `http://127.0.0.1:${port}/stats?refresh=0`],
    { timeout: CHROMIUM_TIMEOUT_MS },
  );
  process.stdout.write(`wrote ${out} (${(await stat(out)).size} bytes)\n`);
} finally {
  await listener.stop();
  await guard.close().catch(() => undefined);
  await Promise.allSettled(pending);
  await rm(dir, { recursive: true, force: true });
}
