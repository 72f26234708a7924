/**
 * Who may do what on the slot API: the tokens (`SLOTGATE_API_TOKEN`, `SLOTGATE_API_TOKENS`),
 * their permissions and group patterns, the constant-time token check, and the per-lease secrets.
 *
 * - `SLOTGATE_API_TOKEN` (one token) grants every permission on every group, as it always did.
 * - `SLOTGATE_API_TOKENS` is a JSON array (text, or an array when the runtime hands over a JSON
 *   var) of `{ token, permissions: ["lease" | "admin", …], groups: [pattern, …], name? }`.
 *   `lease` covers acquire, cancel, release, renew and stats; `admin` covers configure,
 *   server-state and stats. A pattern is an exact group name or a glob whose only wildcard is `*`.
 * - Both are validated strictly. Any problem closes the API (500, generic body) and is logged
 *   with the path of the problem, never a token.
 *
 * Nothing here builds a regular expression from input: patterns are matched by plain string
 * search, in time linear in pattern × name at worst (both at most 128 characters).
 */
import { NAME_PATTERN, isPlainObject } from "../core/validate.js";
import type { SlotApiOp } from "../stores/durable-object/slot-api-protocol.js";

export type SlotApiPermission = "lease" | "admin";

/** One entry of `SLOTGATE_API_TOKENS`. */
export interface SlotApiTokenEntry {
  /** The bearer token: 16–4096 printable ASCII characters without spaces. */
  token: string;
  permissions: SlotApiPermission[];
  /** Exact group names or `*` globs (`shop`, `tenant-*`, `*`). */
  groups: string[];
  /** A label for logs (the token itself is never logged). @default the entry's index */
  name?: string;
}

/** Tokens shorter than this are refused: the API stays closed rather than guessable. */
export const MIN_API_TOKEN_LENGTH = 16;
export const MAX_API_TOKEN_LENGTH = 4096;
/** At most this many entries in `SLOTGATE_API_TOKENS`: every request is checked against all of them. */
export const MAX_API_TOKENS = 64;
const MAX_PATTERNS = 64;
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;
const GROUP_GLOB = /^[A-Za-z0-9_.~:@*-]{1,128}$/;
const PERMISSIONS: readonly SlotApiPermission[] = ["lease", "admin"];
const ENTRY_KEYS = ["token", "permissions", "groups", "name"];

/** The permissions that allow each route (any one of them suffices). */
const ROUTE_PERMISSIONS: Readonly<Record<SlotApiOp, readonly SlotApiPermission[]>> = {
  acquire: ["lease"],
  cancel: ["lease"],
  release: ["lease"],
  renew: ["lease"],
  stats: ["lease", "admin"],
  configure: ["admin"],
  "server-state": ["admin"],
  // A batch needs some access to the group; each of its ops is then checked as if sent alone.
  batch: ["lease", "admin"],
  wait: ["lease"],
};

/** A validated token, ready to be compared. */
export interface Credential {
  /** For logs: the entry's `name`, `#<index>`, or `SLOTGATE_API_TOKEN`. */
  readonly name: string;
  /**
   * Names the token to the object, which binds a queued ticket to it (only the same token may
   * cancel it). A prefix of the token's SHA-256: stable across isolates, useless to an attacker.
   */
  readonly owner: string;
  readonly permissions: ReadonlySet<SlotApiPermission>;
  readonly groups: readonly string[];
  readonly digest: Uint8Array;
}

export type TokenSetup = { kind: "disabled" } | { kind: "invalid"; problems: string[] } | { kind: "ready"; credentials: Credential[] };

interface Entry {
  name: string;
  token: string;
  permissions: SlotApiPermission[];
  groups: string[];
}

let cache: { key: string; setup: Promise<TokenSetup> } | undefined;

/**
 * The token setup of the variables as the runtime hands them over. Parsed once per isolate (and
 * again only when a variable changes); an invalid one is logged once, naming every problem.
 */
export function tokenSetup(token: unknown, tokens: unknown): Promise<TokenSetup> {
  const key = cacheKey(token, tokens);
  if (cache?.key === key) return cache.setup;
  const setup = buildSetup(token, tokens);
  cache = { key, setup };
  return setup;
}

function cacheKey(token: unknown, tokens: unknown): string {
  const part = (v: unknown) => {
    if (typeof v === "string") return `s${v}`;
    try {
      return `j${JSON.stringify(v) ?? "undefined"}`;
    } catch {
      return "x";
    }
  };
  return `${part(token)}\u0000${part(tokens)}`;
}

async function buildSetup(token: unknown, tokens: unknown): Promise<TokenSetup> {
  const parsed = parseTokenVariables(token, tokens);
  if (parsed.kind !== "entries") {
    if (parsed.kind === "invalid") {
      console.error({ level: "error", msg: "the slot API is closed: its tokens are misconfigured (every request answers 500)", problems: parsed.problems });
    }
    return parsed;
  }
  const credentials = await Promise.all(
    parsed.entries.map(async (e): Promise<Credential> => {
      const digest = await sha256(e.token);
      return { name: e.name, owner: `t:${hex(digest.subarray(0, 16))}`, permissions: new Set(e.permissions), groups: e.groups, digest };
    }),
  );
  return { kind: "ready", credentials };
}

/**
 * Validates `SLOTGATE_API_TOKEN` and `SLOTGATE_API_TOKENS`. Problems name their path
 * (`SLOTGATE_API_TOKENS[1].permissions[0]`) and never show a token, only its length.
 */
export function parseTokenVariables(
  token: unknown,
  tokens: unknown,
): { kind: "disabled" } | { kind: "invalid"; problems: string[] } | { kind: "entries"; entries: Entry[] } {
  const problems: string[] = [];
  const entries: Entry[] = [];
  const tokenText = `${MIN_API_TOKEN_LENGTH} to ${MAX_API_TOKEN_LENGTH} printable ASCII characters without spaces`;
  const unset = (v: unknown) => v === undefined || v === null || v === "";

  if (!unset(token)) {
    if (typeof token !== "string" || !validToken(token)) {
      problems.push(`SLOTGATE_API_TOKEN: expected ${tokenText}, got ${hiddenToken(token)}`);
    } else {
      entries.push({ name: "SLOTGATE_API_TOKEN", token, permissions: [...PERMISSIONS], groups: ["*"] });
    }
  }

  if (!unset(tokens)) {
    let list: unknown = tokens;
    if (typeof tokens === "string") {
      try {
        list = JSON.parse(tokens);
      } catch {
        // The text is not shown: it holds tokens.
        problems.push(`SLOTGATE_API_TOKENS: expected a JSON array of { token, permissions, groups }, got ${tokens.length} characters that do not parse`);
        list = [];
      }
    }
    if (!Array.isArray(list)) {
      problems.push("SLOTGATE_API_TOKENS: expected a JSON array of { token, permissions, groups }, got no array");
    } else if (list.length === 0 && problems.length === 0) {
      problems.push("SLOTGATE_API_TOKENS: expected at least one entry, got an empty array (unset the variable to disable the slot API)");
    } else if (list.length > MAX_API_TOKENS) {
      problems.push(`SLOTGATE_API_TOKENS: expected at most ${MAX_API_TOKENS} entries, got ${list.length}`);
    } else {
      list.forEach((raw: unknown, i: number) => {
        const entry = parseEntry(raw, `SLOTGATE_API_TOKENS[${i}]`, `#${i}`, problems);
        if (entry) entries.push(entry);
      });
    }
  }

  // Two entries with one token would make its permissions ambiguous.
  const seen = new Map<string, string>();
  for (const e of entries) {
    const first = seen.get(e.token);
    if (first !== undefined) problems.push(`${e.name}: expected a token of its own, got the same token as ${first}`);
    else seen.set(e.token, e.name);
  }
  if (problems.length > 0) return { kind: "invalid", problems };
  return entries.length === 0 ? { kind: "disabled" } : { kind: "entries", entries };
}

function parseEntry(raw: unknown, at: string, fallbackName: string, problems: string[]): Entry | undefined {
  if (!isPlainObject(raw)) {
    problems.push(`${at}: expected an object { token, permissions, groups, name? }`);
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(raw))
    if (!ENTRY_KEYS.includes(key)) problems.push(`${at}: unknown key ${JSON.stringify(key.slice(0, 40))} (expected ${ENTRY_KEYS.join(", ")})`);
  if (typeof raw.token !== "string" || !validToken(raw.token)) {
    problems.push(
      `${at}.token: expected ${MIN_API_TOKEN_LENGTH} to ${MAX_API_TOKEN_LENGTH} printable ASCII characters without spaces, got ${hiddenToken(raw.token)}`,
    );
  }
  const permissions = stringList(raw.permissions, `${at}.permissions`, problems, (p) => (PERMISSIONS as readonly string[]).includes(p), `"lease" or "admin"`);
  const groups = stringList(
    raw.groups,
    `${at}.groups`,
    problems,
    (g) => GROUP_GLOB.test(g),
    "a group name or a glob with * (1–128 characters from [A-Za-z0-9_.~:@-*])",
  );
  let name = fallbackName;
  if (raw.name !== undefined) {
    if (typeof raw.name === "string" && NAME_PATTERN.test(raw.name)) name = raw.name;
    else problems.push(`${at}.name: expected a name of 1–128 characters from [A-Za-z0-9_.~:@-]`);
  }
  if (problems.length > before) return undefined;
  return { name, token: raw.token as string, permissions: permissions as SlotApiPermission[], groups };
}

function stringList(value: unknown, at: string, problems: string[], valid: (s: string) => boolean, expected: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PATTERNS) {
    problems.push(`${at}: expected a non-empty array (at most ${MAX_PATTERNS}) of ${expected}`);
    return [];
  }
  const out: string[] = [];
  value.forEach((v: unknown, i: number) => {
    if (typeof v === "string" && valid(v)) {
      if (out.includes(v)) problems.push(`${at}[${i}]: expected no duplicates, got ${JSON.stringify(v)} twice`);
      else out.push(v);
    } else {
      problems.push(`${at}[${i}]: expected ${expected}, got ${typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : typeof v}`);
    }
  });
  return out;
}

function validToken(token: string): boolean {
  return token.length >= MIN_API_TOKEN_LENGTH && token.length <= MAX_API_TOKEN_LENGTH && TOKEN_PATTERN.test(token);
}

/** How a rejected token is described: its length or type, never its text. */
function hiddenToken(value: unknown): string {
  return typeof value === "string" ? `${value.length} characters (not shown)` : value === undefined ? "nothing" : typeof value;
}

/**
 * The credential of an `Authorization` header, or undefined. The presented token is hashed once
 * and its digest compared with every configured digest in full, with no branch on the bytes, so
 * the time taken says neither which token matched, nor how much of one, nor its length.
 */
export async function authenticate(header: string | null, credentials: readonly Credential[]): Promise<Credential | undefined> {
  const presented = header !== null && /^Bearer [\x21-\x7e]{1,4096}$/i.test(header) ? header.slice(7) : "";
  const digest = await sha256(presented);
  let found = 0;
  for (let i = 0; i < credentials.length; i++) {
    const other = credentials[i]!.digest;
    let diff = 0;
    for (let j = 0; j < digest.length; j++) diff |= digest[j]! ^ other[j]!;
    // 1 when diff is 0 (it is at most 255), else 0; tokens are unique, so at most one matches.
    found |= (((diff - 1) >>> 31) & 1) * (i + 1);
  }
  return presented === "" || found === 0 ? undefined : credentials[found - 1];
}

/** Whether `credential` may run `op` on `group`. */
export function permits(credential: Credential, op: SlotApiOp, group: string): boolean {
  if (!ROUTE_PERMISSIONS[op].some((p) => credential.permissions.has(p))) return false;
  return credential.groups.some((pattern) => globMatch(pattern, group));
}

/**
 * Whether `name` matches `pattern`, where `*` stands for any run of characters (none included)
 * and every other character for itself. The parts between stars are found left to right, each at
 * its first place after the previous one: for `*`-only globs that choice never needs revisiting,
 * so there is no backtracking.
 */
export function globMatch(pattern: string, name: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === name;
  const head = parts[0]!;
  const tail = parts[parts.length - 1]!;
  if (name.length < head.length + tail.length || !name.startsWith(head) || !name.endsWith(tail)) return false;
  let at = head.length;
  const end = name.length - tail.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i]!;
    if (part === "") continue;
    const found = name.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

// ── lease secrets ────────────────────────────────────────────────────────────────────────────

/** A fresh lease secret: 128 bits from the platform's CSPRNG, base64url without padding. */
export function newLeaseSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** What the object stores and compares: the secret's SHA-256, hex. The secret itself is never stored. */
export async function leaseSecretHash(secret: string): Promise<string> {
  return hex(await sha256(secret));
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}
