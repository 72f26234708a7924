/**
 * How a script is assembled: its contract header, the shared library, its body. The result is a
 * constant string, fixed at module load.
 */
import { NUMBER_OF_KEYS } from "../keys.js";
import { KEYS_DOC, LIB } from "./lib.js";

export interface ScriptDef<C extends string = string> {
  /** The ioredis command name it is registered under with `defineCommand`. */
  readonly command: C;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** `summary`, `argv` and `output` form the header, with the keys (the same for every script) from `KEY_LAYOUT`. */
export function defineScript<C extends string>(command: C, summary: string, argv: string, output: string, body: string): ScriptDef<C> {
  const header = `--[[
  ${command}: ${summary}
  Input:
${KEYS_DOC}
${argv}
  Output:
${output}
]]`;
  return { command, numberOfKeys: NUMBER_OF_KEYS, lua: `${header}\n${LIB}\n${body.trim()}\n` };
}
