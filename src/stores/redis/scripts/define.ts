/**
 * How a script is assembled: its contract header, the keys and the clock, the part of the shared
 * library its body uses, its body. The result is a constant string, fixed at module load.
 */
import { NUMBER_OF_KEYS } from "../keys.js";
import { KEY_LOCALS, KEYS_DOC, libraryFor, libraryUses, PRELUDE } from "./lib.js";

export interface ScriptDef<C extends string = string> {
  /** The ioredis command name it is registered under with `defineCommand`. */
  readonly command: C;
  readonly numberOfKeys: number;
  readonly lua: string;
}

export interface ScriptOptions {
  /** Scope counters, beyond in_use, queued and the peaks, that the script reads up front because it usually moves them (the others move by HINCRBY). */
  readonly read?: readonly string[];
  /**
   * A fast path for the common case, run before the general code: Lua that uses only the keys,
   * `NOW` and ARGV, and calls `return general()` (the library and the body, defined only then)
   * for anything it does not handle, before it has written anything. What it does write must be
   * exactly what the general path would.
   */
  readonly fast?: string;
}

const STAT_NAME = /^[a-z_]+$/;

/** `summary`, `argv` and `output` form the header, with the keys (the same for every script) from `KEY_LAYOUT`. */
export function defineScript<C extends string>(command: C, summary: string, argv: string, output: string, body: string, options: ScriptOptions = {}): ScriptDef<C> {
  for (const field of options.read ?? []) if (!STAT_NAME.test(field)) throw new Error(`${command}: bad counter name ${field}`);
  const header = `--[[
  ${command}: ${summary}
  Input:
${KEYS_DOC}
${argv}
  Output:
${output}
]]`;
  const text = body.trim();
  const general = `${libraryFor(text, options.read)}\n${text}`;
  if (options.fast === undefined) return { command, numberOfKeys: NUMBER_OF_KEYS, lua: `${header}\n${PRELUDE.trim()}\n${general}\n` };
  const fast = options.fast.trim();
  const used = libraryUses(fast);
  if (used.length > 0) throw new Error(`${command}: the fast path uses the library (${used.join(", ")})`);
  if (!/return general\(\)\s*$/.test(fast)) throw new Error(`${command}: the fast path must end with return general()`);
  // general() names the keys itself, so that making it (every call) captures only NOW.
  const indented = `${KEY_LOCALS}\n${general}`.replace(/^(?=.)/gm, "  ");
  return { command, numberOfKeys: NUMBER_OF_KEYS, lua: `${header}\n${PRELUDE.trim()}\n-- The general path: everything the fast path below does not handle.\nlocal function general()\n${indented}\nend\n${fast}\n` };
}
