/**
 * Vitest global setup of the workers project (runs in Node, before workerd starts): builds the
 * Worker exactly as `wrangler deploy` would (a dry run) into .wrangler/test-bundle. The
 * conformance suite runs against the SlotGroup of that bundle (binding SLOT_GROUP_BUNDLE),
 * loaded as an auxiliary worker. That way it tests the artifact that ships, called the way
 * production calls it. The pool's own SLOT_GROUP wraps the class in a test proxy, and the proxy
 * does an extra I/O hop per call, so calls on one stub can overtake each other there. That
 * breaks the E-order the store relies on (a release sent before an acquire arrives first).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** vitest.config.ts points the auxiliary worker at index.js in here. */
const BUNDLE_DIR = join(root, ".wrangler", "test-bundle");

export default function setup(): void {
  const wrangler = join(root, "node_modules", ".bin", process.platform === "win32" ? "wrangler.cmd" : "wrangler");
  const build = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", BUNDLE_DIR], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (build.status !== 0 || !existsSync(join(BUNDLE_DIR, "index.js"))) {
    throw new Error(`building the Worker bundle failed (exit ${build.status}):\n${build.stdout}\n${build.stderr}`);
  }
}
