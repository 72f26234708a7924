/**
 * The Redis Functions library (Redis ≥ 7: FUNCTION LOAD, FCALL) built from the same Lua files as
 * the scripts, so that a call no longer makes the ~75 local functions of the includes anew.
 *
 * How a script becomes a library function, without touching the Lua files:
 *  - Every include appears once, at library level. Its `local function`s are made there, once,
 *    when the library loads. Its other top-level statements are its per-call state: a
 *    `local a, b = …` is declared at library level and assigned in the include's init function;
 *    any other statement (`do … end`, `READ[#READ + 1] = …`) runs in that init function too.
 *  - Each script becomes `redis.register_function(<name>, function(KEYS, ARGV) … end)`: its own
 *    code, with each `--- @include` line replaced by calls to the init functions of the includes
 *    it brings in for the first time in that script, in the order `assemble` would have put their
 *    text. So every call runs exactly the top-level statements its script ran, in the same order,
 *    and every module-level table and variable an include declares is made fresh by each call that
 *    includes it: nothing one call leaves behind is seen by the next (a path that skips an include,
 *    as the acquire fast path skips `flush`, cannot name its variables, as in the script).
 *
 * Names carry a digest of the library's text: the library is `slotgate_<hex>` and its functions
 * `slotgate_<hex>_<op>`, so two slotgate versions on one Redis each load and call their own, and
 * neither ever replaces the other's (FUNCTION LOAD without REPLACE; "already exists" means it is
 * there). What an operator sees and how to remove old versions: docs/redis.md.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { splitTopLevel } from "./lua-chunks.js";

export interface FunctionLibrary {
  /** `slotgate_<hex>`: what FUNCTION LIST shows. */
  readonly name: string;
  /** The FUNCTION LOAD payload, starting with `#!lua name=<name>`. */
  readonly code: string;
  /** Function name per script, in the order given. */
  readonly functions: Readonly<Record<string, string>>;
}

const INCLUDE = /^[ \t]*--- @include "([^"]+)"[ \t]*$/gm;
/** Placeholder for the library name while the digest is computed over the text. */
const LIB = "\0LIB\0";
/** The library-level table of init functions (one per include that has per-call statements). */
const INIT = "SLOTGATE_INIT";

interface Include {
  readonly index: number | undefined;
  readonly deps: readonly URL[];
}

/** Builds the library from `scripts`: function suffix → Lua file (a script as `assemble` reads it). */
export function buildLibrary(scripts: Readonly<Record<string, URL>>): FunctionLibrary {
  const parts: string[] = [`local ${INIT} = {}`];
  const includes = new Map<string, Include>();
  let inits = 0;

  const includeOf = (file: URL): Include => {
    const known = includes.get(file.href);
    if (known) return known;
    const raw = readFileSync(file, "utf8");
    const deps = [...raw.matchAll(INCLUDE)].map((m) => new URL(`${m[1]}.lua`, file));
    for (const dep of deps) includeOf(dep);
    const { head, statements } = splitTopLevel(raw.replace(INCLUDE, ""), file.pathname);
    const out = [`-- ${file.pathname.slice(file.pathname.lastIndexOf("/lua/") + 5)}`, head.trimEnd()];
    const init: string[] = [];
    const declared = new Set<string>();
    for (const s of statements) {
      if (s.fn !== undefined) out.push(s.text.trimEnd());
      else if (s.locals) {
        for (const name of s.locals) {
          // Two declarations of one name would leave the init of the first assigning the second.
          if (declared.has(name)) throw new Error(`${file.pathname}: '${name}' is declared twice at top level`);
          declared.add(name);
        }
        out.push(`local ${s.locals.join(", ")}`);
        init.push(`${s.locals.join(", ")} =${s.init ?? " nil\n"}`.trimEnd());
      } else init.push(s.text.trimEnd());
    }
    let index: number | undefined;
    if (init.length > 0) {
      index = ++inits;
      out.push(`${INIT}[${index}] = function(KEYS, ARGV)\n${init.join("\n")}\nend`);
    }
    parts.push(out.filter((p) => p !== "").join("\n"));
    const inc = { index, deps };
    includes.set(file.href, inc);
    return inc;
  };

  /** The init calls for `file` and what it includes, each the first time this script meets it. */
  const initCalls = (file: URL, seen: Set<string>): string[] => {
    if (seen.has(file.href)) return [];
    seen.add(file.href);
    const inc = includeOf(file);
    const calls = inc.deps.flatMap((dep) => initCalls(dep, seen));
    if (inc.index !== undefined) calls.push(`${INIT}[${inc.index}](KEYS, ARGV)`);
    return calls;
  };

  const registrations: string[] = [];
  const functions: Record<string, string> = {};
  for (const [suffix, file] of Object.entries(scripts)) {
    if (!/^[A-Za-z0-9_]+$/.test(suffix)) throw new Error(`redis function name suffix ${suffix}: letters, digits and _ only`);
    const seen = new Set<string>();
    const body = readFileSync(file, "utf8").replace(INCLUDE, (_line, name: string) => initCalls(new URL(`${name}.lua`, file), seen).join(" "));
    functions[suffix] = `${LIB}_${suffix}`;
    registrations.push(`redis.register_function('${LIB}_${suffix}', function(KEYS, ARGV)\n${body.trimEnd()}\nend)`);
  }
  const template = [...parts, ...registrations].join("\n\n") + "\n";
  const name = `slotgate_${createHash("sha256").update(template).digest("hex").slice(0, 16)}`;
  const named = (text: string) => text.split(LIB).join(name);
  return {
    name,
    code: `#!lua name=${name}\n${named(template)}`,
    functions: Object.fromEntries(Object.entries(functions).map(([k, v]) => [k, named(v)])),
  };
}
