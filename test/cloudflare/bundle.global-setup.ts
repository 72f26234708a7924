/**
 * Vitest global setup of the workers project (runs in Node, before workerd starts): builds the
 * Worker exactly as `wrangler deploy` would (a dry run) into .wrangler/test-bundle. The
 * conformance suite runs against the SlotGroup of that bundle (binding SLOT_GROUP_BUNDLE),
 * loaded as an auxiliary worker. That way it tests the artifact that ships, called the way
 * production calls it. The pool's own SLOT_GROUP wraps the class in a test proxy, and the proxy
 * does an extra I/O hop per call, so calls on one stub can overtake each other there. That
 * breaks the E-order the store relies on (a release sent before an acquire arrives first).
 *
 * It also builds the hono app of fixtures/hono-app (a user's Worker guarded by slotgate/hono) into
 * .wrangler/test-hono-app, run as the auxiliary worker `slotgate-hono-app`.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** vitest.config.ts points the auxiliary workers at index.js in these. */
const BUNDLE_DIR = join(root, ".wrangler", "test-bundle");
const HONO_APP_DIR = join(root, ".wrangler", "test-hono-app");

export default function setup(): void {
  build(BUNDLE_DIR, []);
  build(HONO_APP_DIR, ["--config", join(root, "test", "cloudflare", "fixtures", "hono-app", "wrangler.toml")]);
}

function build(outdir: string, args: string[]): void {
  const wrangler = join(root, "node_modules", ".bin", process.platform === "win32" ? "wrangler.cmd" : "wrangler");
  const run = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", outdir, ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (run.status !== 0 || !existsSync(join(outdir, "index.js"))) {
    throw new Error(`building ${outdir} failed (exit ${run.status}):\n${run.stdout}\n${run.stderr}`);
  }
}
