#!/usr/bin/env node
// Builds the Worker as `wrangler deploy` would, as a dry run (nothing is uploaded and no account
// is needed), into a temporary directory. Then it checks the bundle:
//   - no "ioredis" anywhere: slotgate/redis must never leak into a Worker;
//   - no Node built-in imports ("node:*" or bare names like "crypto"): wrangler.toml does not
//     enable nodejs_compat, and the Worker must not need it;
//   - the gzipped size stays under a budget (SLOTGATE_WORKER_MAX_GZIP_KIB, default 112).
// It prints the sizes. It exits 1 on any failure. Usage: node scripts/check-worker-bundle.mjs
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import console from "node:console";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
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

try {
  const wrangler = join(root, "node_modules", ".bin", process.platform === "win32" ? "wrangler.cmd" : "wrangler");
  const build = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", outdir], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
  if (build.status !== 0) {
    console.error(build.stdout, build.stderr);
    fail(`wrangler deploy --dry-run failed (exit ${build.status})`);
  } else {
    const bundle = [...files(outdir)].filter((f) => /\.(m?js|cjs)$/.test(f));
    if (bundle.length === 0) fail(`no JavaScript in ${outdir}`);
    let raw = 0;
    let gzip = 0;
    for (const file of bundle) {
      const text = readFileSync(file, "utf8");
      const name = relative(outdir, file);
      raw += Buffer.byteLength(text);
      gzip += gzipSync(text).length;
      if (text.includes("ioredis")) fail(`${name} contains "ioredis"`);
      for (const [, , specifier] of text.matchAll(SPECIFIER)) {
        if (specifier.startsWith("node:") || builtins.has(specifier) || builtins.has(specifier.split("/")[0])) {
          fail(`${name} imports the Node built-in "${specifier}"`);
        }
      }
    }
    const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(`worker bundle: ${bundle.map((f) => relative(outdir, f)).join(", ")}: ${kib(raw)} raw, ${kib(gzip)} gzip (budget ${budgetKiB} KiB gzip)`);
    if (gzip > budgetKiB * 1024) fail(`bundle is ${kib(gzip)} gzip, over the budget of ${budgetKiB} KiB`);
  }
} finally {
  rmSync(outdir, { recursive: true, force: true });
}

if (failed) process.exit(1);
console.log("✓ no ioredis, no Node built-in imports, within budget");
