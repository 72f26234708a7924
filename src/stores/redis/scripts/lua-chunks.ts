/**
 * Splits a Lua file of ours into its top-level statements, so that the function library
 * (./library.ts) can make each `local function` once, when the library loads, and run everything
 * else on every call, as the script did.
 *
 * This is no general Lua parser. It reads the convention the files follow: every top-level
 * statement starts at column 0 on a line of its own, and nothing inside a block or a table starts
 * at column 0 except the line that closes it (`end`, `}`, `until`, …). A tokenizer that knows
 * comments, strings and long brackets tracks block depth (`function`/`if`/`do`/`repeat` and
 * brackets open, `end`/`until` and brackets close), and a token at column 0 at depth 0 starts a
 * statement. A file that breaks the convention fails to split (depth not back to 0) or fails to
 * load into Redis (a library that does not compile is refused whole), never silently.
 */

export interface Statement {
  /** The statement's text, with the comments that follow it up to the next statement. */
  readonly text: string;
  /** `local function NAME`: made once, at library level. */
  readonly fn?: string;
  /** `local a, b [= …]`: the names it declares (the library declares them; each call assigns them). */
  readonly locals?: readonly string[];
  /** For `locals`: the text after `=`, or undefined when it has none (the names start as nil). */
  readonly init?: string;
}

interface Token {
  readonly text: string;
  readonly start: number;
  readonly end: number;
  readonly column0: boolean;
}

const OPEN = new Set(["function", "if", "do", "repeat", "{", "(", "["]);
const CLOSE = new Set(["end", "until", "}", ")", "]"]);
const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /[0-9][0-9A-Za-z_.]*/y;
const LONG_OPEN = /\[(=*)\[/y;

function* tokens(src: string, file: string): Generator<Token> {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${file}: ${what} at offset ${i}`);
  };
  /** The end of a long bracket `[==[ … ]==]` starting at `at`, or -1 when there is none there. */
  const longEnd = (at: number): number => {
    LONG_OPEN.lastIndex = at;
    const m = LONG_OPEN.exec(src);
    if (!m) return -1;
    const close = src.indexOf(`]${m[1]}]`, at + m[0].length);
    if (close < 0) fail("unclosed long bracket");
    return close + m[1]!.length + 2;
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      i++;
      continue;
    }
    const start = i;
    const column0 = i === 0 || src[i - 1] === "\n";
    if (src.startsWith("--", i)) {
      const long = longEnd(i + 2);
      if (long >= 0) i = long;
      else {
        const nl = src.indexOf("\n", i);
        i = nl < 0 ? src.length : nl;
      }
      continue;
    }
    if (c === "'" || c === '"') {
      i++;
      while (i < src.length && src[i] !== c) {
        if (src[i] === "\n") fail("unterminated string");
        i += src[i] === "\\" ? 2 : 1;
      }
      if (i >= src.length) fail("unterminated string");
      i++;
      yield { text: "<string>", start, end: i, column0 };
      continue;
    }
    if (c === "[") {
      const long = longEnd(i);
      if (long >= 0) {
        i = long;
        yield { text: "<string>", start, end: i, column0 };
        continue;
      }
    }
    for (const re of [NAME, NUMBER]) {
      re.lastIndex = i;
      const m = re.exec(src);
      if (m) {
        i += m[0].length;
        yield { text: m[0], start, end: i, column0 };
        break;
      }
    }
    if (i !== start) continue;
    i++;
    yield { text: c, start, end: i, column0 };
  }
}

/** The top-level statements of `src`, in order; `head` is the text before the first one (its header comment). */
export function splitTopLevel(src: string, file: string): { head: string; statements: Statement[] } {
  const starts: Token[][] = [];
  let depth = 0;
  for (const t of tokens(src, file)) {
    if (depth === 0 && t.column0) starts.push([]);
    if (starts.length === 0) throw new Error(`${file}: code before the first top-level statement`);
    const current = starts[starts.length - 1]!;
    // `local a = 1 local b = 2` on one line would hide b's declaration inside a's init.
    if (depth === 0 && t.text === "local" && current.length > 0) throw new Error(`${file}: two top-level statements on one line at offset ${t.start}`);
    current.push(t);
    if (OPEN.has(t.text)) depth++;
    else if (CLOSE.has(t.text)) depth--;
    if (depth < 0) throw new Error(`${file}: unbalanced '${t.text}' at offset ${t.start}`);
  }
  if (depth !== 0) throw new Error(`${file}: a block or bracket is not closed`);
  const head = starts.length > 0 ? src.slice(0, starts[0]![0]!.start) : src;
  const statements = starts.map((toks, k): Statement => {
    const next = starts[k + 1];
    const text = src.slice(toks[0]!.start, next ? next[0]!.start : src.length);
    if (toks[0]!.text !== "local") return { text };
    if (toks[1]?.text === "function") return { text, fn: toks[2]!.text };
    const locals: string[] = [];
    let j = 1;
    for (;;) {
      const name = toks[j]?.text ?? "";
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`${file}: cannot read the names of '${text.split("\n")[0]}'`);
      locals.push(name);
      if (toks[j + 1]?.text !== ",") break;
      j += 2;
    }
    const eq = toks[j + 1];
    if (eq === undefined) return { text, locals };
    if (eq.text !== "=") throw new Error(`${file}: unexpected '${eq.text}' in '${text.split("\n")[0]}'`);
    return { text, locals, init: src.slice(eq.end, next ? next[0]!.start : src.length) };
  });
  return { head, statements };
}
