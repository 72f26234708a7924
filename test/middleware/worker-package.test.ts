// `slotgate/worker` as a user gets it: the package built and packed (`npm pack`) as it would be
// published, installed from the tarball into a Worker project of its own outside the repository
// (one entry line and the wrangler.toml of docs/cloudflare.md), built with
// `wrangler deploy --dry-run`, and run with `wrangler dev` (local, on 127.0.0.1) in front of a real
// origin, where it must hold the backend's limit. wrangler is the repository's own. Slow (a build,
// an install from npm's cache, workerd's start-up); every step is bounded in time.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/cli.js";
import { httpRequest, until } from "../support/fleet.js";
import { startOrigin, type Origin } from "../support/origin.js";

const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
const MAXCONN = 2;
const QUIET = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_UPDATE_NOTIFIER: "1" };

/** The wrangler.toml of a user's Worker project, as docs/cloudflare.md shows it. */
const WRANGLER_TOML = readFileSync(join(ROOT, "docs", "cloudflare.md"), "utf8").match(/<!-- user-wrangler-toml -->\s*```toml\n([\s\S]*?)```/)?.[1];

let dir = "";
let project = "";
let origin: Origin;
let dev: ChildProcess | undefined;
let devOutput = "";

function run(command: string, args: string[], cwd: string, timeoutMs: number): string {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", env: QUIET, timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${[command, ...args].join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  expect(WRANGLER_TOML, "docs/cloudflare.md shows the user project's wrangler.toml").toBeDefined();
  dir = mkdtempSync(join(tmpdir(), "slotgate-worker-package-"));
  origin = await startOrigin({ delayMs: 100 });

  // The package as published: package.json, README, docs, bin and a fresh build of dist/ (built
  // here, not in place: other suites may be running the repository's dist/ meanwhile).
  const staged = join(dir, "staged");
  mkdirSync(staged);
  for (const entry of ["package.json", "README.md", "bin", "docs"]) cpSync(join(ROOT, entry), join(staged, entry), { recursive: true });
  run(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(staged, "dist")],
    ROOT,
    180_000,
  );
  cpSync(join(ROOT, "src", "stores", "redis", "lua"), join(staged, "dist", "stores", "redis", "lua"), { recursive: true });
  run("npm", ["pack", staged, "--ignore-scripts", "--pack-destination", dir], dir, 60_000);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  expect(tarball).toBeDefined();

  // The user's project: one entry line and a wrangler.toml; slotgate installed from the tarball.
  project = join(dir, "my-edge");
  mkdirSync(join(project, "src"), { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "my-edge", private: true, type: "module" }, null, 2));
  writeFileSync(join(project, "src", "index.ts"), 'export { default, SlotGroup } from "slotgate/worker";\n');
  writeFileSync(join(project, "wrangler.toml"), WRANGLER_TOML!);
  run("npm", ["install", join(dir, tarball!), "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], project, 180_000);
}, 420_000);

afterAll(async () => {
  if (dev?.pid !== undefined && dev.exitCode === null) {
    // wrangler dev runs workerd as its child: end the process group we started.
    process.kill(-dev.pid, "SIGTERM");
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (dev?.exitCode === null) process.kill(-dev.pid!, "SIGKILL");
        resolve(undefined);
      }, 5_000);
      dev!.once("exit", () => (clearTimeout(timer), resolve(undefined)));
    });
  }
  await origin?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("slotgate/worker from the packed tarball, in a Worker project of its own", () => {
  it("builds with wrangler deploy --dry-run, with no Node built-ins and no ioredis", () => {
    const out = join(project, "out");
    run(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", out], project, 120_000);
    const bundle = readFileSync(join(out, "index.js"), "utf8");
    expect(bundle).toContain("SlotGroup");
    expect(bundle).not.toContain("ioredis");
    expect(bundle).not.toMatch(/from\s*["']node:/);
  }, 150_000);

  it("guards requests under wrangler dev: the origin never sees more than the server's maxconn", async () => {
    const [port, inspector] = [await freePort(), await freePort()];
    const config = {
      group: "package-test",
      frontends: { web: { default_backend: "app" } },
      backends: { app: { timeout: { queue: "20s" }, servers: { o: { address: origin.address, maxconn: MAXCONN } } } },
    };
    dev = spawn(
      process.execPath,
      [
        WRANGLER,
        "dev",
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--inspector-port",
        String(inspector),
        "--var",
        `SLOTGATE_CONFIG:${JSON.stringify(config)}`,
      ],
      { cwd: project, env: QUIET, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    const keep = (chunk: Buffer) => (devOutput = (devOutput + chunk.toString("utf8")).slice(-16_384));
    dev.stdout!.on("data", keep);
    dev.stderr!.on("data", keep);
    const base = `http://127.0.0.1:${port}`;
    await until(
      async () => (await httpRequest(`${base}/_slotgate/healthz`, { timeoutMs: 2_000 }).catch(() => undefined))?.status === 200,
      90_000,
      250,
      `wrangler dev up\n${devOutput}`,
    );
    origin.resetCounters();
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => httpRequest(`${base}/r/${i}`, { timeoutMs: 30_000 })));
    expect(replies.map((r) => r.status)).toEqual(Array(12).fill(200));
    expect(origin.max).toBeLessThanOrEqual(MAXCONN);
    expect(origin.max).toBe(MAXCONN);
    expect(existsSync(join(project, "node_modules", "slotgate", "dist", "worker", "index.js"))).toBe(true);
  }, 150_000);
});
