/**
 * Request matching for the edge node's config: the `if` conditions of priority rules, the values
 * of keyed limits, and the IP/CIDR and regular-expression helpers both need. Pure functions, no
 * I/O, no `node:` imports, so the Worker can use the very same code (re2js is pure JavaScript).
 *
 * Semantics (documented in schema.ts too):
 * - the kinds of one `if` must all match (AND); the values listed for one kind are alternatives
 *   (OR); `header: {a: x, b: y}` needs both headers, each with one of its listed values;
 * - `path_beg` / `path_reg` look at the path only (no query string), raw as received (not
 *   percent-decoded), like HAProxy's `path` fetch; `path_reg` is RE2 syntax, matched in linear
 *   time (see {@link compilePathRegex}), and never matches a path longer than
 *   {@link MAX_REGEX_INPUT} characters (with the program size cap, this bounds its work per request);
 * - `method` compares with the upper-cased names of the config, case-sensitively (HTTP methods are);
 * - `host` compares case-insensitively with the Host header (or `facts.host`); a configured host
 *   without a port ignores the request's port;
 * - `header` values compare exactly (case-sensitive, as HAProxy's `hdr(name) -m str`); with a
 *   repeated header, any of its values may match;
 * - `src` matches the client address against CIDRs; IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
 *   what a dual-stack socket reports) count as IPv4.
 */
import { RE2JS, RE2JSSyntaxException } from "re2js";

/** Normalised conditions of a priority rule (see schema.ts for the file's spelling). */
export interface Conditions {
  /** Path prefixes; any may match. */
  pathBeg?: readonly string[];
  /** An RE2 regular expression source, tested (unanchored) against the path. */
  pathReg?: string;
  /** Upper-case method names; any may match. */
  method?: readonly string[];
  /** Lower-case host names, optionally with `:port`; any may match. */
  host?: readonly string[];
  /** Lower-case header names to the values they may have; every named header must match. */
  header?: Readonly<Record<string, readonly string[]>>;
  /** Normalised CIDRs (`10.0.0.0/8`, `2001:db8::/32`); any may match. */
  src?: readonly string[];
}

/** Where a keyed limit takes its key from. */
export type LimitKey =
  | { kind: "header"; name: string }
  | { kind: "src"; ipv4Prefix: number; ipv6Prefix: number }
  | { kind: "path" }
  | { kind: "query"; name: string };

export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>> | { get(name: string): string | null };

/** What the edge node knows about a request (HTTP) or a connection (TCP: `src` only). */
export interface RequestFacts {
  method?: string;
  /** The request-target as received (`/a/b?x=1`, or absolute-form `http://h/a/b?x=1`), or just the path. */
  path?: string;
  /** The Host header; defaults to `headers.host`. */
  host?: string;
  /** Node's `req.headers` (lower-case names) or a Web `Headers`. */
  headers?: HeaderBag;
  /** The client address, as `socket.remoteAddress` reports it. */
  src?: string;
}

/** `path_reg` patterns are never tested against paths longer than this (they then do not match). */
export const MAX_REGEX_INPUT = 4096;
/** Longest `path_reg` source accepted. */
export const MAX_REGEX_SOURCE = 256;
/** Largest compiled `path_reg` program accepted, in RE2 instructions (see {@link compilePathRegex}). */
export const MAX_REGEX_PROGRAM = 128;

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDRs

export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseWords(parts: readonly string[], ipv4Last: boolean): number[] | undefined {
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (ipv4Last && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (!v4) return undefined;
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
      words.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return words;
}

export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const gap = text.indexOf("::");
  let words: number[] | undefined;
  if (gap === -1) {
    words = parseWords(text.split(":"), true);
    if (!words || words.length !== 8) return undefined;
  } else {
    if (text.indexOf("::", gap + 1) !== -1) return undefined;
    const left = text.slice(0, gap);
    const right = text.slice(gap + 2);
    const lw = left === "" ? [] : parseWords(left.split(":"), false);
    const rw = right === "" ? [] : parseWords(right.split(":"), true);
    if (!lw || !rw || lw.length + rw.length > 7) return undefined;
    words = [...lw, ...new Array<number>(8 - lw.length - rw.length).fill(0), ...rw];
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/**
 * Parses an IP address: IPv4, IPv6, `[IPv6]`, with an IPv6 zone (`%eth0`) ignored. IPv4-mapped
 * IPv6 addresses come back as 4 bytes, so they compare as the IPv4 address they carry.
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (typeof text !== "string" || text.length > 64) return undefined;
  let t = text;
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone !== -1 && t.includes(":")) t = t.slice(0, zone);
  if (!t.includes(":")) return parseIPv4(t);
  const v6 = parseIPv6(t);
  return v6 && isV4Mapped(v6) ? v6.slice(12) : v6;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

export function isLoopback(addr: Uint8Array): boolean {
  if (addr.length === 4) return addr[0] === 127;
  for (let i = 0; i < 15; i++) if (addr[i] !== 0) return false;
  return addr[15] === 1;
}

export function isUnspecified(addr: Uint8Array): boolean {
  return addr.every((b) => b === 0);
}

/** Canonical text: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(addr: Uint8Array): string {
  if (addr.length === 4) return Array.from(addr).join(".");
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((addr[2 * i]! << 8) | addr[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best === -1) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export interface Cidr {
  /** 4 bytes (IPv4) or 16 (IPv6), host bits zero. */
  network: Uint8Array;
  prefix: number;
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; problem: string };

/** Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). Host bits must be zero. */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  if (addrText.includes("%") || addrText.startsWith("[")) return { ok: false, problem: "a CIDR such as 10.0.0.0/8 or 2001:db8::/32" };
  const network = parseIp(addrText);
  // A mapped address written in the config is ambiguous about its prefix: ask for the IPv4 form.
  if (!network || (addrText.includes(":") && network.length === 4)) {
    return { ok: false, problem: "a CIDR such as 10.0.0.0/8 or 2001:db8::/32" };
  }
  const bits = network.length * 8;
  let prefix = bits;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > bits) {
      return { ok: false, problem: `a CIDR prefix length from 0 to ${bits}` };
    }
    prefix = Number(p);
  }
  const masked = maskAddress(network, prefix);
  if (!masked.every((b, i) => b === network[i])) {
    return { ok: false, problem: `a network address with its host bits zero, such as ${formatIp(masked)}/${prefix}` };
  }
  return { ok: true, cidr: { network, prefix } };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.network)}/${cidr.prefix}`;
}

export function maskAddress(addr: Uint8Array, prefix: number): Uint8Array {
  const out = addr.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = out[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

export function cidrContains(cidr: Cidr, addr: Uint8Array): boolean {
  if (addr.length !== cidr.network.length) return false;
  const masked = maskAddress(addr, cidr.prefix);
  return masked.every((b, i) => b === cidr.network[i]);
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

/**
 * Compiles a `path_reg` source with RE2 (the re2js port: pure JavaScript, so the Worker runs the
 * same engine). RE2 matches in time linear in the path, whatever the pattern: `^(a+)+$`, or
 * `^/api/` followed by four `.*` segments, cost one pass, where a backtracking engine (JavaScript's
 * RegExp) takes exponential or polynomial time on a hostile path and freezes the event loop, lease
 * renewals included. RE2 gets there by refusing what needs backtracking (backreferences, lookaround,
 * possessive quantifiers, atomic groups): {@link describeRe2Error} names the construct.
 *
 * Linear is not free: the cost per character grows with the size of the compiled program (a
 * counted repetition such as `[a-z]{500}` is 500 instructions), so the program is capped at
 * {@link MAX_REGEX_PROGRAM} instructions, as RE2 itself caps its memory. With the input capped at
 * {@link MAX_REGEX_INPUT}, one test is then bounded to a few tens of milliseconds in the worst
 * case, and to microseconds for ordinary path patterns.
 */
export function compilePathRegex(source: string): PathRegexResult {
  if (source.length === 0 || source.length > MAX_REGEX_SOURCE) {
    return { ok: false, expected: `a regular expression of 1 to ${MAX_REGEX_SOURCE} characters` };
  }
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(source);
  } catch (error) {
    return describeRe2Error(error);
  }
  const size = regex.programSize();
  if (size > MAX_REGEX_PROGRAM) {
    return {
      ok: false,
      expected: `a smaller regular expression (it compiles to ${size} RE2 instructions, at most ${MAX_REGEX_PROGRAM}; large counted repetitions such as {200} cost one instruction per repeat)`,
    };
  }
  return { ok: true, regex };
}

/**
 * A compiled `path_reg`, or why not: `expected` says what the file should hold, and `unsupported`
 * (when set) names, as a whole sentence, a construct RE2 refuses.
 */
export type PathRegexResult = { ok: true; regex: RE2JS } | { ok: false; expected: string; unsupported?: string };

/** RE2's refusals that name a construct of other regex dialects, by the text RE2 stopped at. */
const UNSUPPORTED: ReadonlyArray<{ error: string; at: RegExp; construct: string }> = [
  { error: "invalid escape sequence", at: /^\\[1-9]/, construct: "backreferences \\1" },
  { error: "invalid escape sequence", at: /^\\k/, construct: "named backreferences \\k<name>" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?=/, construct: "lookahead (?=…)" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?!/, construct: "negative lookahead (?!…)" },
  { error: "invalid named capture", at: /^\(\?<=/, construct: "lookbehind (?<=…)" },
  { error: "invalid named capture", at: /^\(\?<!/, construct: "negative lookbehind (?<!…)" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?>/, construct: "atomic groups (?>…)" },
  { error: "invalid nested repetition operator", at: /^([*+?]|\{\d*(,\d*)?\})\+/, construct: "possessive quantifiers such as a++ or a*+" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?#/, construct: "comments (?#…)" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?\|/, construct: "branch reset groups (?|…)" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?P$/, construct: "(?P=name) backreferences or (?P>name) calls" },
  { error: "invalid or unsupported Perl syntax", at: /^\(\?(R|[+-]?[0-9]|&)/, construct: "recursion and subroutine calls such as (?R)" },
];

/** Turns an exception of `RE2JS.compile` into what `slotgate check` prints. */
function describeRe2Error(error: unknown): { ok: false; expected: string; unsupported?: string } {
  const expected = "a regular expression in RE2 syntax";
  if (!(error instanceof RE2JSSyntaxException)) return { ok: false, expected };
  const at = (error.input ?? "").slice(0, 40);
  const known = UNSUPPORTED.find((u) => u.error === error.error && u.at.test(at));
  if (known) return { ok: false, expected, unsupported: `RE2 does not support ${known.construct}` };
  if (error.error === "invalid escape sequence") {
    return { ok: false, expected, unsupported: `RE2 does not support the escape ${at}${at === "\\u" ? " (write \\x{41} for a code point)" : ""}` };
  }
  if (error.error === "invalid repeat count") {
    return { ok: false, expected: `${expected}: a repeat count of at most 1000, nested repeats included (RE2 refuses ${at})` };
  }
  return { ok: false, expected: `${expected} (${error.error}${at ? `: ${at}` : ""})` };
}

// ---------------------------------------------------------------------------------------------
// Facts

/** Splits a request-target into its path and query (without `?`), dropping an absolute-form origin. */
export function splitTarget(target: string): { path: string; query: string } {
  const t = /^https?:\/\//i.test(target) ? target.replace(/^https?:\/\/[^/?#]*/i, "") || "/" : target;
  const q = t.indexOf("?");
  return q === -1 ? { path: t, query: "" } : { path: t.slice(0, q), query: t.slice(q + 1) };
}

/** Every value of a header (empty when absent). */
export function headerValues(headers: HeaderBag | undefined, name: string): string[] {
  if (headers === undefined || headers === null || typeof headers !== "object") return [];
  if (typeof (headers as { get?: unknown }).get === "function") {
    const v = (headers as { get(name: string): string | null }).get(name);
    return typeof v === "string" ? [v] : [];
  }
  const record = headers as Readonly<Record<string, unknown>>;
  if (!Object.hasOwn(record, name)) return [];
  const v = record[name];
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return [];
}

function requestHost(facts: RequestFacts): string | undefined {
  const host = facts.host ?? headerValues(facts.headers, "host")[0];
  return typeof host === "string" ? host.trim().toLowerCase() : undefined;
}

function stripPort(host: string): string {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(":");
  return colon !== -1 && colon === host.lastIndexOf(":") ? host.slice(0, colon) : host;
}

// ---------------------------------------------------------------------------------------------
// Conditions and keys

export type Matcher = (facts: RequestFacts) => boolean;

/** Compiles conditions once; the result tests a request. Throws only on conditions the schema would reject. */
export function compileConditions(conditions: Conditions): Matcher {
  const tests: Matcher[] = [];
  const { pathBeg, pathReg, method, host, header, src } = conditions;
  if (pathBeg !== undefined) {
    tests.push((f) => {
      const path = splitTarget(f.path ?? "").path;
      return pathBeg.some((p) => path.startsWith(p));
    });
  }
  if (pathReg !== undefined) {
    const compiled = compilePathRegex(pathReg);
    if (!compiled.ok) throw new TypeError(`path_reg: ${compiled.unsupported ?? `expected ${compiled.expected}`}`);
    const { regex } = compiled;
    tests.push((f) => {
      const path = splitTarget(f.path ?? "").path;
      return path.length <= MAX_REGEX_INPUT && regex.test(path);
    });
  }
  if (method !== undefined) tests.push((f) => f.method !== undefined && method.includes(f.method));
  if (host !== undefined) {
    tests.push((f) => {
      const h = requestHost(f);
      if (h === undefined) return false;
      const bare = stripPort(h);
      return host.some((want) => want === h || want === bare);
    });
  }
  if (header !== undefined) {
    const wanted = Object.entries(header);
    tests.push((f) => wanted.every(([name, values]) => headerValues(f.headers, name).some((v) => values.includes(v))));
  }
  if (src !== undefined) {
    const cidrs = src.map((text) => {
      const r = parseCidr(text);
      if (!r.ok) throw new TypeError(`src: expected ${r.problem}`);
      return r.cidr;
    });
    tests.push((f) => {
      const addr = f.src === undefined ? undefined : parseIp(f.src);
      return addr !== undefined && cidrs.some((c) => cidrContains(c, addr));
    });
  }
  return (facts) => tests.every((t) => t(facts));
}

/**
 * The value of a keyed limit's key for this request, or undefined when the request has none
 * (absent or empty header / query parameter, unparsable client address). Not length-checked:
 * the caller decides what an over-long value means.
 */
export function keyValue(key: LimitKey, facts: RequestFacts): string | undefined {
  let value: string | undefined;
  switch (key.kind) {
    case "header":
      value = headerValues(facts.headers, key.name)[0];
      break;
    case "path":
      value = facts.path === undefined ? undefined : splitTarget(facts.path).path;
      break;
    case "query": {
      if (facts.path === undefined) return undefined;
      const { query } = splitTarget(facts.path);
      value = query === "" ? undefined : (new URLSearchParams(query).get(key.name) ?? undefined);
      break;
    }
    case "src": {
      const addr = facts.src === undefined ? undefined : parseIp(facts.src);
      if (addr === undefined) return undefined;
      return formatIp(maskAddress(addr, addr.length === 4 ? key.ipv4Prefix : key.ipv6Prefix));
    }
  }
  return value === undefined || value === "" ? undefined : value;
}
