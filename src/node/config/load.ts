/**
 * Reads the edge node's config file: YAML or JSON, told apart by nothing (YAML 1.2 is a superset
 * of JSON, so one strict YAML parser reads both), then validated by {@link validateEdgeConfig}.
 *
 * The parser is locked down, since a config file may come from a less trusted place than the
 * binary: at most {@link MAX_CONFIG_BYTES}, UTF-8 only, one document, the YAML 1.2 core schema
 * whatever a `%YAML` directive says, no custom or YAML 1.1 tags (`!!binary`, `!!timestamp`, `!foo`
 * are errors, not strings), no merge keys (`<<`), string keys only, duplicate keys an error, and
 * at most {@link MAX_ALIAS_COUNT} alias expansions (no "billion laughs").
 *
 * Every failure, from a missing file to a bad value, is one {@link SlotgateConfigError} with code
 * `SLOTGATE_INVALID_CONFIG`; nothing else is thrown. File-level problems have the path `(file)`,
 * syntax problems `line L, column C`.
 */
import { open } from "node:fs/promises";
import {
  Lexer,
  isPair,
  isScalar,
  isSeq,
  parseAllDocuments,
  visit,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type YAMLError,
} from "yaml";
import { join } from "../../core/validate.js";
import type { SlotgateConfigError, ConfigIssue } from "../../core/errors.js";
import { configError, validateEdgeConfig, type EdgeConfig } from "../../edge/config/schema.js";

export const MAX_CONFIG_BYTES = 1024 * 1024;
export const MAX_ALIAS_COUNT = 32;
/**
 * Deepest nesting accepted (an upper bound computed before parsing; the schema needs about 8).
 * The YAML composer recurses per level, and in V8 a stack overflow there can turn into a fatal
 * process crash instead of an exception, so deep input must never reach it.
 */
export const MAX_NESTING = 64;
/** Most lexer tokens (keys, values, punctuation) accepted: bounds parse time (~0.5 s) for any 1 MiB input. */
export const MAX_TOKENS = 200_000;
export const FILE_PATH = "(file)";

const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: "1.2",
  schema: "core",
  customTags: [],
  resolveKnownTags: false,
  merge: false,
  strict: true,
  // Checked by findDuplicateKeys instead: the parser's own check is quadratic in a mapping's size.
  uniqueKeys: false,
  stringKeys: true,
  prettyErrors: false,
  logLevel: "silent",
  intAsBigInt: false,
};

/** Reads and validates a config file. Rejects only with a {@link SlotgateConfigError}. */
export async function loadEdgeConfig(file: string): Promise<EdgeConfig> {
  let bytes: Uint8Array;
  try {
    bytes = await readCapped(file);
  } catch (error) {
    if (isConfigError(error)) throw error;
    const code = (error as { code?: unknown } | null)?.code;
    const why = typeof code === "string" ? code : error instanceof Error ? error.message : "unreadable";
    throw configError([{ path: FILE_PATH, expected: "a readable config file", received: `${file} (${why})` }]);
  }
  return parseEdgeConfig(bytes);
}

async function readCapped(file: string): Promise<Uint8Array> {
  const handle = await open(file, "r");
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw configError([{ path: FILE_PATH, expected: "a regular file", received: file }]);
    if (stat.size > MAX_CONFIG_BYTES) throw tooBig(stat.size);
    // The file may grow between stat and read: never read more than the cap plus one byte.
    const buffer = new Uint8Array(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CONFIG_BYTES) throw tooBig(length);
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

function tooBig(size: number): SlotgateConfigError {
  return configError([{ path: FILE_PATH, expected: `a file of at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`, received: size }]);
}

function isConfigError(error: unknown): error is SlotgateConfigError {
  return typeof error === "object" && error !== null && "issues" in error && (error as { code?: unknown }).code === "SLOTGATE_INVALID_CONFIG";
}

/** Parses and validates config text or bytes (YAML or JSON). Throws only a {@link SlotgateConfigError}. */
export function parseEdgeConfig(input: string | Uint8Array): EdgeConfig {
  return validateEdgeConfig(parseConfigText(input));
}

/** The parsed value of config text or bytes, before validation. Throws only a {@link SlotgateConfigError}. */
export function parseConfigText(input: string | Uint8Array): unknown {
  let text: string;
  if (typeof input === "string") {
    if (input.length > MAX_CONFIG_BYTES) throw tooBig(new TextEncoder().encode(input).length);
    text = input.startsWith("\uFEFF") ? input.slice(1) : input;
  } else if (input instanceof Uint8Array) {
    if (input.length > MAX_CONFIG_BYTES) throw tooBig(input.length);
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(input);
    } catch {
      throw configError([{ path: FILE_PATH, expected: "UTF-8 text", received: "bytes that are not UTF-8" }]);
    }
  } else {
    throw configError([{ path: FILE_PATH, expected: "config text (a string or bytes)", received: input }]);
  }
  if (new TextEncoder().encode(text).length > MAX_CONFIG_BYTES) throw tooBig(new TextEncoder().encode(text).length);
  const at = controlCharAt(text);
  if (at !== -1) {
    throw configError([
      { path: position(text, at), expected: "text without control characters", received: `U+${text.charCodeAt(at).toString(16).padStart(4, "0")}` },
    ]);
  }

  try {
    const shape = scanShape(text);
    if (shape.tokens > MAX_TOKENS) {
      throw configError([{ path: FILE_PATH, expected: `at most ${MAX_TOKENS} YAML tokens (keys, values and punctuation)`, received: "more" }]);
    }
    if (shape.depth > MAX_NESTING) {
      throw configError([{ path: FILE_PATH, expected: `mappings and lists nested at most ${MAX_NESTING} deep`, received: "deeper nesting" }]);
    }
    const docs = parseAllDocuments(text, YAML_OPTIONS);
    if (!Array.isArray(docs)) return null; // an empty stream: validation reports the missing mapping
    const issues: ConfigIssue[] = [];
    if (docs.length > 1) {
      const second = docs[1]!;
      issues.push({ path: position(text, second.range[0]), expected: "a single document (no ---)", received: "another document" });
    }
    const doc = docs[0];
    if (!doc) return null;
    for (const e of [...doc.errors, ...doc.warnings]) issues.push(yamlIssue(text, e));
    issues.push(...findDuplicateKeys(text, doc));
    if (issues.length > 0) throw configError(issues);
    try {
      return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      const message = error instanceof Error ? error.message : "";
      if (/alias count/i.test(message)) {
        throw configError([{ path: FILE_PATH, expected: `at most ${MAX_ALIAS_COUNT} alias expansions`, received: "more (an alias bomb?)" }]);
      }
      throw configError([{ path: FILE_PATH, expected: "every alias (*name) after its anchor (&name)", received: message.slice(0, 120) }]);
    }
  } catch (error) {
    if (isConfigError(error)) throw error;
    // Anything else from the parser (e.g. a stack overflow on absurd nesting) is still bad input.
    const message = error instanceof Error ? `${error.name}: ${error.message}` : "parser failure";
    throw configError([{ path: FILE_PATH, expected: "a YAML or JSON document the parser can read", received: message.slice(0, 120) }]);
  }
}

/** Index of the first C0 control character other than tab, LF and CR (or DEL), or -1. */
function controlCharAt(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return i;
  }
  return -1;
}

function yamlIssue(text: string, e: YAMLError): ConfigIssue {
  const at = position(text, e.pos[0]);
  const rest = text.slice(e.pos[0]).split("\n")[0] ?? "";
  const snippet = rest === "" ? (e.pos[0] >= text.length ? "end of input" : "end of line") : rest.slice(0, 40);
  const detail = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
  switch (e.code) {
    case "TAG_RESOLVE_FAILED":
      return { path: at, expected: "no tags (!name, !!binary, …): plain YAML or JSON values only", received: rest.split(/\s/)[0] ?? "" };
    case "NON_STRING_KEY":
      return { path: at, expected: "a plain string key", received: snippet };
    default:
      return { path: at, expected: `valid YAML or JSON (${detail})`, received: snippet };
  }
}

/** Every repeated key of every mapping, named by its config path, in linear time. */
function findDuplicateKeys(text: string, doc: Document): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  visit(doc, {
    Map(_, map, ancestors) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        if (!seen.has(key)) {
          seen.add(key);
          continue;
        }
        const at = pair.key.range ? ` (again at ${position(text, pair.key.range[0])})` : "";
        issues.push({ path: configPath([...ancestors, map, pair]), expected: `each key once per mapping${at}`, received: key });
      }
      return undefined;
    },
  });
  return issues;
}

/** The config path of a node from its ancestry, e.g. `frontends.web.priority[0].class`. */
function configPath(chain: readonly unknown[]): string {
  let path = "";
  chain.forEach((node, i) => {
    if (isPair(node)) path = join(path, isScalar(node.key) ? String(node.key.value) : "?");
    else if (isSeq(node)) path = join(path, node.items.indexOf(chain[i + 1] as never));
  });
  return path;
}

/**
 * The token count and an upper bound of the nesting depth of a YAML text, from the tokens of
 * yaml's lexer (a state machine, safe on any input): open flow collections, plus for block
 * structure the stack of indentation columns of the enclosing lines, each weighted by the block
 * indicators (`-`, `?`, `:`) of its line, which may open further collections on that same line
 * ("- - - x"). Stops counting once a limit is passed.
 */
export function scanShape(text: string): { depth: number; tokens: number } {
  let tokens = 0;
  const stack: Array<{ col: number; weight: number }> = [];
  let stackSum = 0;
  let flow = 0;
  let max = 0;
  let atLineStart = true;
  let indent = 0;
  let indicators = 0;
  let content = false;
  let lineFlow = 0;
  const endLine = () => {
    if (content) {
      const weight = 1 + indicators;
      while (stack.length > 0 && stack[stack.length - 1]!.col > indent) stackSum -= stack.pop()!.weight;
      const top = stack[stack.length - 1];
      if (top && top.col === indent) {
        const merged = Math.max(top.weight, 1 + weight);
        stackSum += merged - top.weight;
        top.weight = merged;
      } else {
        stack.push({ col: indent, weight });
        stackSum += weight;
      }
      max = Math.max(max, stackSum + lineFlow);
    }
    atLineStart = true;
    indent = 0;
    indicators = 0;
    content = false;
    lineFlow = flow;
  };
  for (const token of new Lexer().lex(text)) {
    if (++tokens > MAX_TOKENS) return { depth: max, tokens };
    if (token === "\n" || token === "\r\n") {
      endLine();
      if (max > MAX_NESTING) return { depth: max, tokens };
      continue;
    }
    if (atLineStart) {
      atLineStart = false;
      if (/^ +$/.test(token)) {
        indent = token.length;
        continue;
      }
    }
    if (token.length === 1 && token.charCodeAt(0) < 0x20) continue; // lexer control tokens
    if (token.startsWith("#") || /^[ \t]+$/.test(token)) continue;
    content = true;
    if (token === "[" || token === "{") {
      flow++;
      lineFlow = Math.max(lineFlow, flow);
      if (flow > MAX_NESTING) return { depth: flow, tokens };
    } else if (token === "]" || token === "}") {
      flow = Math.max(0, flow - 1);
    } else if (flow === 0 && (token === "-" || token === "?" || token === ":")) {
      indicators++;
    }
  }
  endLine();
  return { depth: max, tokens };
}

/** `line L, column C` (1-based) of an offset in `text`. */
function position(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = text.indexOf("\n"); i !== -1 && i < end; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${end - lineStart + 1}`;
}
