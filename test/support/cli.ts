// The `slotgate` command as a user runs it, for tests: `node bin/slotgate.js …` in a child process,
// against the built package (dist/, rebuilt when a source file is newer than it). Call
// `ensureBuilt()` in a `beforeAll`, and `killChildren()` in an `afterEach`.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll } from "vitest";
import { stringify as toYaml } from "yaml";
import { collectJsonLines } from "./json-lines.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(ROOT, "bin", "slotgate.js");
const CLI = join(ROOT, "dist", "node", "cli.js");

/** The newest modification time of a .ts file below `dir`. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than src/. */
export function ensureBuilt(): void {
  if (!existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(join(ROOT, "src"))) {
    // tsc emits even when another part of the tree does not type-check; only dist matters here.
    spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "ignore" });
  }
  if (!existsSync(CLI)) throw new Error("dist/node/cli.js is missing after the build");
}

const children = new Set<ChildProcess>();

/** Kills every child still running (SIGKILL). */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
}

function spawnCli(args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  return child;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
export function run(args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawnCli(args);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface CliServer {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Starts a long-running command (serve, demo --no-load) and parses its JSON log lines. */
export function start(args: readonly string[]): CliServer {
  const child = spawnCli(args);
  const lines = collectJsonLines(child.stdout!);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async waitFor(msg, timeoutMs = 10_000) {
      const t0 = Date.now();
      for (;;) {
        const found = lines.find((l) => l.msg === msg);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before "${msg}": ${stderr}`);
        if (Date.now() - t0 > timeoutMs) throw new Error(`no "${msg}" within ${timeoutMs}ms`);
        await sleep(10);
      }
    },
  };
}

/**
 * A temporary folder for config files, made before the calling test file's tests and removed after
 * them (registers the hooks: call it at the top level). Returns a writer: name, config → path.
 */
export function useConfigDir(): (name: string, config: unknown) => Promise<string> {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "slotgate-cli-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return async (name, config) => {
    const file = join(dir, name);
    await writeFile(file, toYaml(config));
    return file;
  };
}

/**
 * The hooks of a test file that runs the CLI (call it at the top level): builds dist/ first, kills
 * every child and runs the registered cleanups (last first) after each test, and keeps a config
 * folder for the file's tests.
 */
export function useCliTests(): { writeConfig: (name: string, config: unknown) => Promise<string>; cleanups: Array<() => Promise<unknown>> } {
  beforeAll(ensureBuilt, 120_000);
  const writeConfig = useConfigDir();
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    killChildren();
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
  });
  return { writeConfig, cleanups };
}
