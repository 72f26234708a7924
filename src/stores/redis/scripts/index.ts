/**
 * Every script of the Redis store, registered on a client with ioredis `defineCommand`.
 *
 * The scripts are Lua files, one per operation, in `../lua/`; each opens with a header comment
 * listing its KEYS, ARGV and replies. Shared code lives in `../lua/includes/` and is pulled in by
 * a line `--- @include "<path>"` (relative to the including file, without `.lua`). `assemble`
 * replaces each such line with that file's text (its own includes first), the first time the
 * file is met, and with nothing after that. That is all there is to it: no script is ever built
 * from user input, and the text is fixed once this module is loaded.
 *
 * The files are read from disk at load time, next to this module (the build copies them to
 * `dist/`): the Redis store runs on Node only.
 */
import { readFileSync } from "node:fs";
import { WAIT_BUCKETS_MS } from "../../../core/stats.js";
import { KEY_LAYOUT, NUMBER_OF_KEYS } from "../keys.js";
import { buildLibrary } from "./library.js";
import { REPLY } from "./replies.js";

export interface ScriptDef<C extends string = string> {
  /** The ioredis command name it is registered under with `defineCommand`. */
  readonly command: C;
  readonly numberOfKeys: number;
  readonly lua: string;
  /** Its Lua file, which the function library (./library.ts) is built from as well. */
  readonly file: URL;
}

const LUA_DIR = new URL("../lua/", import.meta.url);

const INCLUDE = /^[ \t]*--- @include "([^"]+)"[ \t]*$/gm;

/** The text of a Lua file with its includes in place: each included file once, before the code that uses it. */
export function assemble(file: URL, seen = new Set<string>()): string {
  const text = readFileSync(file, "utf8");
  return text.replace(INCLUDE, (_line, name: string) => {
    const included = new URL(`${name}.lua`, file);
    if (seen.has(included.href)) return "";
    seen.add(included.href);
    return assemble(included, seen).trimEnd();
  });
}

/** Reads `<file>.lua` and checks that its header names the command and lists the keys of `KEY_LAYOUT` in order. */
function load<C extends string>(file: string, command: C): ScriptDef<C> {
  const url = new URL(`${file}.lua`, LUA_DIR);
  const lua = assemble(url);
  const header = lua.slice(0, lua.indexOf("]]"));
  const problem = (what: string) => new Error(`redis script ${file}.lua: ${what}`);
  if (!lua.startsWith(`--[[\n  ${command}:`)) throw problem(`the header must start with "${command}:"`);
  KEY_LAYOUT.forEach(([suffix], i) => {
    if (!new RegExp(`KEYS\\[${i + 1}\\] +${suffix}\\b`).test(header)) throw problem(`the header must list KEYS[${i + 1}] ${suffix}`);
  });
  return { command, numberOfKeys: NUMBER_OF_KEYS, lua, file: url };
}

export const SCRIPTS = {
  acquire: load("acquire", "slotgateAcquire"),
  release: load("release", "slotgateRelease"),
  renew: load("renew", "slotgateRenew"),
  cancel: load("cancel", "slotgateCancel"),
  batch: load("batch", "slotgateBatch"),
  claim: load("claim", "slotgateClaim"),
  sweep: load("sweep", "slotgateSweep"),
  configure: load("configure", "slotgateConfigure"),
  serverState: load("server-state", "slotgateServerState"),
  stats: load("stats", "slotgateStats"),
} as const satisfies Record<string, ScriptDef>;
export type ScriptName = keyof typeof SCRIPTS;

/** The same scripts as one Redis Functions library, a function per script named after its key in SCRIPTS. */
export const LIBRARY = buildLibrary(Object.fromEntries(Object.entries(SCRIPTS).map(([name, def]) => [name, def.file])));

export { REPLY, replyError, type ReplyCode } from "./replies.js";

// What TypeScript relies on in the Lua files is checked against it once, here: the reply codes of
// includes/replies.lua are REPLY's, and BOUNDS in includes/bounds.lua is WAIT_BUCKETS_MS.
{
  const mismatch = (what: string) => new Error(`redis scripts: ${what}`);
  const codes = new Map<string, number>();
  for (const m of assemble(new URL("includes/replies.lua", LUA_DIR)).matchAll(/^local ([A-Z_]+) = (-?\d+)$/gm)) codes.set(m[1]!, Number(m[2]));
  const expected = Object.entries(REPLY);
  if (codes.size !== expected.length || expected.some(([name, code]) => codes.get(name) !== code))
    throw mismatch("includes/replies.lua differs from REPLY in replies.ts");
  const bounds = /^local BOUNDS = \{([^}]*)\}/m
    .exec(assemble(new URL("includes/bounds.lua", LUA_DIR)))?.[1]
    ?.split(",")
    .map(Number);
  if (bounds?.join() !== WAIT_BUCKETS_MS.join()) throw mismatch("BOUNDS in includes/bounds.lua differs from WAIT_BUCKETS_MS");
}
