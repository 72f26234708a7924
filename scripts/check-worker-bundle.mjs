#!/usr/bin/env node
// Builds the Worker as `wrangler deploy` would, as a dry run (nothing is uploaded and no account
// is needed), into a temporary directory, and likewise a hono app in a Worker with and without
// slotgate/hono. Then it checks each bundle:
//   - no "ioredis" anywhere: slotgate/redis must never leak into a Worker;
//   - no Node built-in imports ("node:*" or bare names like "crypto"): wrangler.toml does not
//     enable nodejs_compat, and the Worker must not need it;
//   - the Worker's gzipped size stays under a budget (SLOTGATE_WORKER_MAX_GZIP_KIB, default 112),
//     and what slotgate/hono adds to a hono app under another (SLOTGATE_HONO_MAX_GZIP_KIB, default 24).
// It prints the sizes. It exits 1 on any failure. Usage: node scripts/check-worker-bundle.mjs
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import console from "node:console";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import process from "node:process";
import { URL, fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = fileURLToPath(new URL("..", import.meta.url));
// The budget was 64 KiB until path_reg moved to RE2 (re2js, shared with the Node edge node so both
// match alike and in linear time). re2js alone adds about 63 KiB gzip, mostly the Unicode tables
// RE2 needs for \p{…} classes and case folding, which cannot be left out: the bundle went from
// 41.8 to 104.8 KiB gzip. 112 keeps the old headroom small on purpose, so that any other growth
// still trips the check. Cloudflare's own limit is megabytes; the budget guards against accidents.
// Since then wrangler.toml minifies the bundle (83.8 KiB gzip when the budget was last checked).
const budgetKiB = Number(process.env.SLOTGATE_WORKER_MAX_GZIP_KIB ?? 112);
// What slotgate/hono (with the guard and the memory store) may add to a user's hono Worker.
const honoBudgetKiB = Number(process.env.SLOTGATE_HONO_MAX_GZIP_KIB ?? 24);
const outdir = mkdtempSync(join(tmpdir(), "slotgate-worker-bundle-"));

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

// Module specifiers in import/export/require forms, whatever the quotes.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s*|\brequire\s*\(\s*)(["'`])([^"'`]+)\1/g;
const builtins = new Set(builtinModules.filter((m) => !m.startsWith("_")));

let failed = false;
const fail = (message) => {
  failed = true;
  console.error(`✗ ${message}`);
};

const wrangler = join(root, "node_modules", ".bin", process.platform === "win32" ? "wrangler.cmd" : "wrangler");
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** Builds with `wrangler deploy --dry-run` into `outdir`, checks the bundle, returns its sizes. */
function checkBuild(label, outdir, args) {
  const build = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", outdir, ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  if (build.status !== 0) {
    console.error(build.stdout, build.stderr);
    fail(`${label}: wrangler deploy --dry-run failed (exit ${build.status})`);
    return undefined;
  }
  const bundle = [...files(outdir)].filter((f) => /\.(m?js|cjs)$/.test(f));
  if (bundle.length === 0) fail(`${label}: no JavaScript in ${outdir}`);
  let raw = 0;
  let gzip = 0;
  for (const file of bundle) {
    const text = readFileSync(file, "utf8");
    const name = relative(outdir, file);
    raw += Buffer.byteLength(text);
    gzip += gzipSync(text).length;
    if (text.includes("ioredis")) fail(`${label}: ${name} contains "ioredis"`);
    for (const [, , specifier] of text.matchAll(SPECIFIER)) {
      if (specifier.startsWith("node:") || builtins.has(specifier) || builtins.has(specifier.split("/")[0])) {
        fail(`${label}: ${name} imports the Node built-in "${specifier}"`);
      }
    }
  }
  return { raw, gzip };
}

/**
 * A hono app in a Worker, with and without slotgate/hono on the memory store: the middleware must
 * bundle for Workers as the Worker does, and its share of a user's bundle is the difference.
 * The entries live under .wrangler/ (ignored) so that "hono" resolves from the repository.
 */
function honoApp(dir, withMiddleware) {
  mkdirSync(dir, { recursive: true });
  const src = (path) => JSON.stringify(join(root, path).split(sep).join("/"));
  const entry = withMiddleware
    ? [
        'import { Hono } from "hono";',
        `import { createGuard } from ${src("src/index.ts")};`,
        `import { slotgate } from ${src("src/middleware/hono.ts")};`,
        "const guard = createGuard({ limits: { global: 10 } });",
        "const app = new Hono();",
        'app.use("/api/*", slotgate({ guard, scopes: ["global"], queueTimeoutMs: 1000 }));',
        'app.get("/api/x", (c) => c.text(String(c.get("slotgate").fence)));',
        "export default app;",
      ]
    : ['import { Hono } from "hono";', "const app = new Hono();", 'app.get("/api/x", (c) => c.text("x"));', "export default app;"];
  writeFileSync(join(dir, "index.js"), `${entry.join("\n")}\n`);
  const compatibility = readFileSync(join(root, "wrangler.toml"), "utf8").match(/^compatibility_date\s*=.*$/m)[0];
  writeFileSync(join(dir, "wrangler.toml"), `name = "hono-check"\nmain = "index.js"\n${compatibility}\nminify = true\n`);
  return ["--config", join(dir, "wrangler.toml")];
}

const scratch = join(root, ".wrangler", "check-hono");
try {
  const worker = checkBuild("worker", join(outdir, "worker"), []);
  if (worker) {
    console.log(`worker bundle: ${kib(worker.raw)} raw, ${kib(worker.gzip)} gzip (budget ${budgetKiB} KiB gzip)`);
    if (worker.gzip > budgetKiB * 1024) fail(`worker bundle is ${kib(worker.gzip)} gzip, over the budget of ${budgetKiB} KiB`);
  }
  const bare = checkBuild("hono app", join(outdir, "hono-bare"), honoApp(join(scratch, "bare"), false));
  const guarded = checkBuild("hono app + slotgate/hono", join(outdir, "hono-guarded"), honoApp(join(scratch, "guarded"), true));
  if (bare && guarded) {
    console.log(
      `slotgate/hono in a hono Worker (memory store): ${kib(guarded.raw)} raw, ${kib(guarded.gzip)} gzip; ` +
        `the middleware and guard add ${kib(guarded.raw - bare.raw)} raw, ${kib(guarded.gzip - bare.gzip)} gzip (budget ${honoBudgetKiB} KiB gzip added)`,
    );
    if (guarded.gzip - bare.gzip > honoBudgetKiB * 1024)
      fail(`slotgate/hono adds ${kib(guarded.gzip - bare.gzip)} gzip, over the budget of ${honoBudgetKiB} KiB`);
  }
} finally {
  rmSync(outdir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
}

if (failed) process.exit(1);
console.log("✓ no ioredis, no Node built-in imports, within budgets (the Worker, and slotgate/hono in a hono Worker)");
