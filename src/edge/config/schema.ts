/**
 * The edge node's config file (SPEC §5): validation of the parsed YAML/JSON value into a typed,
 * normalised {@link EdgeConfig}. Validation is eager and complete: every problem of the file is
 * collected (up to {@link MAX_REPORTED_ISSUES}) and thrown at once as one
 * {@link SlotgateConfigError} (code `SLOTGATE_INVALID_CONFIG`), each issue naming its path the
 * way `slotgate check` prints it: `backends.web_servers.servers.web1.maxconn: expected a positive
 * integer, got -1`. Unknown keys are errors everywhere (typo protection: `maxcon` must not silently
 * mean "unlimited").
 *
 * Decisions (where SPEC §5 is silent):
 * - `maxconn` / `maxqueue`: positive integers (≤ 1e9) only. HAProxy's `maxconn 0` means
 *   "unlimited", which reads like "nothing gets through"; here one omits the key for unlimited, and
 *   0 is an error.
 * - A frontend without `maxconn` is still a scope (`frontend:<name>` with max 1e9), so that its
 *   traffic is counted and shown in stats. `global` is a scope only when `global.maxconn` is set.
 * - `deny_status`: 429 or 503 only (default 503). Both are the statuses whose `Retry-After` clients
 *   honour; anything else (403, 200…) would hide an overload as a different condition. tcp
 *   frontends have no status: `deny_status` there is an error, as is `delay_before_close` on http.
 * - `bind` takes an IP literal and a port: `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080` (all
 *   interfaces, but written out) or `localhost:8080` (normalised to 127.0.0.1). Host names and
 *   HAProxy's implicit `:8080` are errors. Port 0 (an ephemeral port, for tests) is allowed. Two
 *   listeners (frontends and stats) may not share a non-zero port on overlapping addresses.
 * - Server `address`: `host:port` (host name, IPv4 or `[IPv6]`, plain HTTP / TCP) or a full
 *   `http://` / `https://` URL (optionally with a base path; no credentials, query or fragment).
 *   A tcp frontend's backend must use `host:port` addresses.
 * - Names of frontends, backends, servers and keyed limits: 1–48 characters from
 *   [A-Za-z0-9_.-], starting with a letter or `_` (no `:` — it separates scope parts — and no
 *   integer-like names, which JavaScript objects would reorder, breaking `balance first`).
 *   `__proto__` is refused. The `group` uses the core's name rule.
 * - Durations: see duration.ts. `timeout.queue` defaults to `timeout.connect` as in HAProxy;
 *   `timeout.connect` defaults to 5s, `timeout.server` to 60s, `lease_ttl` to 30s (1s–24h);
 *   `timeout.queue: 0` disables queueing for the backend.
 * - Priority rules: first match wins; a rule needs `class` and/or `offset`; a rule without `if`
 *   matches everything, so a rule after it is an error (it could never apply). `if: {}` is an
 *   error. Kinds of one `if` are ANDed, listed values of one kind ORed (see match.ts).
 *   `offset` is a signed duration within ±524287ms.
 * - tcp frontends know only the client address: their conditions may use only `src`, their keyed
 *   limits only `key: { src }`.
 * - `path_reg`: RE2 syntax (matched in linear time, never backtracking), up to 256 characters and
 *   128 compiled instructions, compiled at load time. Constructs RE2 refuses (backreferences,
 *   lookaround, possessive quantifiers, atomic groups…) are named in the error; see match.ts.
 * - `src`: CIDRs or bare addresses; host bits must be zero (`10.0.0.1/8` is a typo).
 * - Keyed limit keys: `header: <name>`, `query: <param>`, `path: true`, or `src: true` /
 *   `src: { ipv4: <prefix>, ipv6: <prefix> }`: one key per client network, by default the /32 for
 *   IPv4 and the /64 for IPv6 (a client owns a whole /64 and could rotate through it); IPv4-mapped
 *   IPv6 addresses count as IPv4. The address is always the connection's, never a header.
 * - Frontend defences (http only; errors on tcp): `timeout.client` 30s and `timeout.http_request`
 *   10s as HAProxy's `timeout client` / `timeout http-request`; `buffer_request` 64k (a size, or
 *   `false`): that much body is received before the slot is taken; `forwarded_for.trusted`: CIDRs
 *   of proxies whose forwarding headers are kept (none by default: they are replaced).
 * - `stats.token` and `store.token`: 16–4096 printable ASCII characters, never echoed in errors.
 *   `stats.token` is required when `stats.bind` is not a loopback address. `stats.show_keys`
 *   (boolean, default false) shows keyed-limit values raw instead of their digest.
 * - `log: { query }` (boolean, default false): log request paths with their query string.
 * - URL credentials (`https://user:pass@…`) are refused in server addresses and never echoed:
 *   every received value goes through the core's credential redaction before it is shown.
 * - `store`: `memory` (default) takes no other key; `redis` needs `url` (`redis://` or
 *   `rediss://`; a password goes in the URL); `redis-cluster` needs `urls` (or one `url`);
 *   `durable-object` needs `url` (`http(s)://`) and `token`. `prefix` (Redis only) is 1–64
 *   characters from [A-Za-z0-9_.:-] (no braces: the store owns the hash tag).
 * - `local_share` is required with `on_store_error: local` and allowed (ignored) otherwise, so
 *   switching the policy during an incident is a one-line change.
 * - `version` (optional): a positive integer, the version of the limits (SPEC §2 rule 13). Raise
 *   it with every change of limits; see docs/edge-node.md, "Versions and deploys".
 * - Defaults: `store` memory, `group` "default", `on_store_error` fail-closed, `mode` http,
 *   `balance` roundrobin (as HAProxy), server `weight` 1 (1–256), `delay_before_close` 0 (≤ 5m).
 *   `default_server` (maxconn, maxqueue, weight) is applied to every server of its backend here,
 *   so the normalised servers carry their effective values.
 * - YAML is parsed strictly (load.ts): 1 MiB, UTF-8, one document, core schema, no tags, no merge
 *   keys, no duplicate keys, ≤ 32 alias expansions, nesting ≤ 64, ≤ 200000 tokens. `yes`/`no`
 *   are strings (YAML 1.2), so `down: yes` is an error, not a boolean.
 * - Paths: file-level problems are `(file)`, YAML syntax `line L, column C`, a root that is not a
 *   mapping `(root)`; keys that are not plain identifiers are quoted (`frontends["a:b"]`) and
 *   paths longer than 200 characters cut. At most 100 problems are listed, then a count.
 */
import { SlotgateConfigError, type ConfigIssue } from "../../core/errors.js";
import { MAX_TTL_MS } from "../../core/acquire-options.js";
import { redactCredentials } from "../../core/redact.js";
import { STORE_ERROR_POLICIES, type StoreErrorPolicy } from "../../core/guard.js";
import { BALANCES, MAX_LIMIT, MAX_WEIGHT, type Balance } from "../../core/spec.js";
import { MAX_SPEC_VERSION } from "../../core/spec-version.js";
import { PRIORITY_CLASS_MAX, PRIORITY_CLASS_MIN, PRIORITY_OFFSET_MAX_MS, PRIORITY_OFFSET_MIN_MS } from "../../core/state/order.js";
import { Issues, checkInt, checkKnownKeys, checkName, checkNumber, checkObject, checkOneOf, isPlainObject, join } from "../../core/validate.js";
import { checkDuration } from "./duration.js";
import { checkSize } from "./size.js";
import {
  compilePathRegex,
  formatCidr,
  formatIp,
  isLoopback,
  isUnspecified,
  parseCidr,
  parseIPv4,
  parseIPv6,
  parseIp,
  type Conditions,
  type LimitKey,
} from "./match.js";

// ---------------------------------------------------------------------------------------------
// The normalised config

export type StoreType = "memory" | "redis" | "redis-cluster" | "durable-object";
export const STORE_TYPES: readonly StoreType[] = ["memory", "redis", "redis-cluster", "durable-object"];

export type StoreConfig =
  | { type: "memory" }
  | { type: "redis"; url: string; prefix: string | null }
  | { type: "redis-cluster"; urls: string[]; prefix: string | null }
  | { type: "durable-object"; url: string; token: string };

/** A listening address. */
export interface BindAddress {
  /** IP literal without brackets, as `net.Server.listen` takes it. */
  host: string;
  /** 0: any free port. */
  port: number;
  family: 4 | 6;
  loopback: boolean;
  /** `0.0.0.0` or `::`. */
  wildcard: boolean;
  /** Canonical `host:port` / `[host]:port`. */
  text: string;
}

/** Where a server is reached. */
export interface ServerAddress {
  /** `host-port`: written `host:port` (plain HTTP, or TCP); `url`: written as a full URL. */
  form: "host-port" | "url";
  protocol: "http:" | "https:";
  /** Host name or IP literal, lower case, without brackets. */
  host: string;
  port: number;
  /** Base path of a URL address without trailing `/` (`""` when none). */
  path: string;
  /** Canonical `http(s)://host:port` + path. */
  url: string;
}

export type FrontendMode = "http" | "tcp";
export type DenyStatus = 429 | 503;
export const DENY_STATUSES: readonly DenyStatus[] = [429, 503];

export interface PriorityRule {
  /** `null`: always matches. */
  if: Conditions | null;
  class: number;
  offsetMs: number;
}

export interface KeyedLimit {
  name: string;
  key: LimitKey;
  /** Per distinct key value, cluster-wide. */
  maxconn: number;
  maxqueue: number | null;
}

export interface FrontendConfig {
  name: string;
  bind: BindAddress;
  mode: FrontendMode;
  /** Cluster-wide; `null`: unlimited (still counted). */
  maxconn: number | null;
  defaultBackend: string;
  /** `null` for tcp frontends. */
  denyStatus: DenyStatus | null;
  /** First match wins. */
  priority: PriorityRule[];
  limits: KeyedLimit[];
  /** tcp: how long a rejected connection is held before it is closed (0 for http). */
  delayBeforeCloseMs: number;
  /**
   * HAProxy's `timeout client` (inactivity while the node waits on the client: reading its request,
   * or writing to it) and `timeout http-request` (the whole request, head and body, time in the
   * queue aside). http only: both 0 for a tcp frontend.
   */
  timeout: { clientMs: number; httpRequestMs: number };
  /**
   * http: bytes of a request body received before the slot is taken (HAProxy's `option
   * http-buffer-request`); a longer body is streamed once the slot is granted. 0: stream at once.
   */
  bufferRequestBytes: number;
  /**
   * http: CIDRs of peers (proxies in front of the node) whose `x-forwarded-*` and `Forwarded`
   * headers are kept and appended to. From any other peer they are replaced.
   */
  forwardedFor: { trusted: string[] };
}

export interface ServerConfig {
  name: string;
  address: ServerAddress;
  /** `default_server` applied. */
  maxconn: number | null;
  maxqueue: number | null;
  weight: number;
  down: boolean;
}

export interface BackendConfig {
  name: string;
  balance: Balance;
  /** Pool-wide cap. */
  maxconn: number | null;
  maxqueue: number | null;
  timeout: { queueMs: number; connectMs: number; serverMs: number };
  leaseTtlMs: number;
  /** In declared order. */
  servers: ServerConfig[];
}

export interface StatsConfig {
  bind: BindAddress;
  /** Bearer token the stats endpoints require; `null`: none (loopback only). */
  token: string | null;
  /** Show keyed-limit values raw instead of their digest (stats/keys.ts). */
  showKeys: boolean;
}

/** What log lines may carry beyond the defaults. */
export interface LogConfig {
  /** Log the query string of request paths (it may hold API keys and tokens). */
  query: boolean;
}

export interface EdgeConfig {
  store: StoreConfig;
  group: string;
  /** The spec's version (SPEC §2 rule 13); null: unversioned. */
  version: number | null;
  onStoreError: StoreErrorPolicy;
  /** Required (in (0, 1]) when `onStoreError` is `local`. */
  localShare: number | null;
  global: { maxconn: number | null };
  /** Process-local: checked before any store round trip. */
  node: { maxconn: number | null };
  /** Null-prototype records, in declared order. */
  frontends: Record<string, FrontendConfig>;
  backends: Record<string, BackendConfig>;
  stats: StatsConfig | null;
  log: LogConfig;
}

// ---------------------------------------------------------------------------------------------
// Limits and defaults

export const MAX_REPORTED_ISSUES = 100;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_SERVER_TIMEOUT_MS = 60_000;
export const DEFAULT_LEASE_TTL_MS = 30_000;
export const MIN_LEASE_TTL_MS = 1_000;
export const MAX_DELAY_BEFORE_CLOSE_MS = 5 * 60_000;
export const DEFAULT_CLIENT_TIMEOUT_MS = 30_000;
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_BUFFER_REQUEST_BYTES = 64 * 1024;
export const MAX_BUFFER_REQUEST_BYTES = 16 * 1024 * 1024;
export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 4096;
export const ROOT_PATH = "(root)";

// 48 characters: `frontend:<frontend>:<limit>` must stay within the core's 128-character scope names.
const CONFIG_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,47}$/;
const MAX_PATH_SHOWN = 200;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e\t]{0,1022}[\x21-\x7e])?$/;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;
const PATH_PREFIX = /^\/[\x21-\x7e]{0,1023}$/;
const QUERY_PARAM = /^[\x21-\x25\x27-\x3c\x3e\x40-\x7e]{1,128}$/; // printable ASCII without # & = ?
const TOKEN = /^[\x21-\x7e]+$/;
const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;
const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_LIST = 256;

const TOP_KEYS = ["store", "group", "version", "on_store_error", "local_share", "global", "node", "frontends", "backends", "stats", "log"];
const STORE_KEYS = ["type", "url", "urls", "token", "prefix"];
const STORE_KEYS_BY_TYPE: Record<StoreType, readonly string[]> = {
  memory: ["type"],
  redis: ["type", "url", "prefix"],
  "redis-cluster": ["type", "url", "urls", "prefix"],
  "durable-object": ["type", "url", "token"],
};
const FRONTEND_KEYS = [
  "bind",
  "mode",
  "maxconn",
  "default_backend",
  "deny_status",
  "priority",
  "limits",
  "delay_before_close",
  "timeout",
  "buffer_request",
  "forwarded_for",
];
const FRONTEND_TIMEOUT_KEYS = ["client", "http_request"];
const FORWARDED_FOR_KEYS = ["trusted"];
const RULE_KEYS = ["if", "class", "offset"];
const CONDITION_KEYS = ["path_beg", "path_reg", "method", "host", "header", "src"];
const LIMIT_KEYS = ["name", "key", "maxconn", "maxqueue"];
const KEY_KINDS = ["header", "src", "path", "query"];
const BACKEND_KEYS = ["balance", "maxconn", "maxqueue", "timeout", "lease_ttl", "default_server", "servers"];
const TIMEOUT_KEYS = ["queue", "connect", "server"];
const DEFAULT_SERVER_KEYS = ["maxconn", "maxqueue", "weight"];
const SERVER_KEYS = ["address", "maxconn", "maxqueue", "weight", "down"];
const STATS_KEYS = ["bind", "token", "show_keys"];
const LOG_KEYS = ["query"];

// ---------------------------------------------------------------------------------------------
// Entry points

/** Validates a parsed config value. Throws one {@link SlotgateConfigError} listing every problem. */
export function validateEdgeConfig(raw: unknown): EdgeConfig {
  const issues = new Issues();
  const config = collectEdgeConfig(issues, raw);
  if (!issues.empty || config === undefined) throw configError(issues.list);
  return config;
}

/** The error for a list of issues, capped at {@link MAX_REPORTED_ISSUES} (plus one line saying how many more). */
export function configError(list: readonly ConfigIssue[]): SlotgateConfigError {
  // A path can quote a hostile key (join() escapes it, but keeps its length): cut long ones.
  const clip = (issue: ConfigIssue): ConfigIssue =>
    issue.path.length > MAX_PATH_SHOWN ? { ...issue, path: `${issue.path.slice(0, MAX_PATH_SHOWN)}…` } : issue;
  const shown = (list.length > MAX_REPORTED_ISSUES ? list.slice(0, MAX_REPORTED_ISSUES) : list).map(clip);
  if (list.length > MAX_REPORTED_ISSUES) {
    shown.push({ path: ROOT_PATH, expected: `at most ${MAX_REPORTED_ISSUES} problems reported`, received: `${list.length - MAX_REPORTED_ISSUES} more` });
  }
  if (shown.length === 0) shown.push({ path: ROOT_PATH, expected: "a valid config", received: undefined });
  return new SlotgateConfigError(shown, "SLOTGATE_INVALID_CONFIG");
}

/** Validates into `issues`; returns the config when nothing was wrong. */
export function collectEdgeConfig(issues: Issues, raw: unknown): EdgeConfig | undefined {
  if (!isPlainObject(raw)) {
    issues.add(ROOT_PATH, "a mapping of settings (store, group, frontends, backends, …)", raw);
    return undefined;
  }
  checkKnownKeys(issues, "", raw, TOP_KEYS);

  const store = parseStore(issues, raw.store);
  const group = raw.group === undefined ? "default" : checkName(issues, "group", raw.group);
  const version =
    raw.version === undefined ? null : checkInt(issues, "version", raw.version, { min: 1, max: MAX_SPEC_VERSION, expected: "a positive integer" });
  const onStoreError = raw.on_store_error === undefined ? "fail-closed" : checkOneOf(issues, "on_store_error", raw.on_store_error, STORE_ERROR_POLICIES);
  let localShare: number | null = null;
  if (raw.local_share !== undefined) {
    localShare = checkNumber(issues, "local_share", raw.local_share, "a number in (0, 1]", (n) => n > 0 && n <= 1) ?? null;
  } else if (onStoreError === "local") {
    issues.add("local_share", 'a number in (0, 1] when on_store_error is "local" (each node\'s share of every maxconn)', undefined);
  }
  const global = { maxconn: parseMaxconnSection(issues, "global", raw.global) };
  const node = { maxconn: parseMaxconnSection(issues, "node", raw.node) };

  const backends = parseNamed(issues, "backends", raw.backends, "backend", parseBackend);
  const frontends = parseNamed(issues, "frontends", raw.frontends, "frontend", parseFrontend);
  const stats = raw.stats === undefined ? null : parseStats(issues, raw.stats);
  const log = raw.log === undefined ? { query: false } : parseLog(issues, raw.log);

  // Cross-checks run on whatever parsed, so that one bad section does not hide other problems.
  crossCheckBackends(issues, raw.frontends, frontends.items, backends);
  crossCheckBinds(issues, raw.frontends, stats ?? null);

  if (!issues.empty || !store || group === undefined || version === undefined || !onStoreError || !frontends.ok || !backends.ok || stats === undefined || !log)
    return undefined;
  return { store, group, version, onStoreError, localShare, global, node, frontends: frontends.items, backends: backends.items, stats, log };
}

// ---------------------------------------------------------------------------------------------
// Small checkers

function positive(issues: Issues, path: string, value: unknown): number | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) {
    if (value <= MAX_LIMIT) return value;
    issues.add(path, `a positive integer up to ${MAX_LIMIT}`, value);
    return undefined;
  }
  issues.add(path, "a positive integer", value);
  return undefined;
}

function optionalPositive(issues: Issues, path: string, value: unknown): number | null {
  return value === undefined ? null : (positive(issues, path, value) ?? null);
}

function checkString(issues: Issues, path: string, value: unknown, pattern: RegExp, expected: string): string | undefined {
  if (typeof value === "string" && pattern.test(value)) return value;
  issues.add(path, expected, value);
  return undefined;
}

function configName(issues: Issues, path: string, value: unknown, what: string): string | undefined {
  if (typeof value === "string" && CONFIG_NAME.test(value) && value !== "__proto__") return value;
  issues.add(path, `a ${what} name of 1–48 characters from [A-Za-z0-9_.-], starting with a letter or _`, value);
  return undefined;
}

/** What a list item checker returns: the normalised value, or what was expected instead. */
type ItemResult = string | { problem: string } | undefined;

/** A string or a non-empty list of strings, each checked by `each`. */
function stringList(issues: Issues, path: string, value: unknown, expected: string, each: (v: string) => ItemResult): string[] | undefined {
  const items: unknown[] | undefined = typeof value === "string" ? [value] : Array.isArray(value) ? value : undefined;
  if (items === undefined || items.length === 0 || items.length > MAX_LIST) {
    issues.add(path, `${expected}, or a list of 1 to ${MAX_LIST} of them`, value);
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const p = typeof value === "string" ? path : join(path, i);
    const r: ItemResult = typeof item === "string" ? each(item) : undefined;
    if (typeof r === "string") {
      out.push(r);
    } else {
      issues.add(p, r?.problem ?? expected, item);
      ok = false;
    }
  });
  return ok ? out : undefined;
}

/** A CIDR list item, normalised (`10.0.0.0/8`), or why it is not one. */
function cidrItem(text: string): ItemResult {
  const r = parseCidr(text);
  return r.ok ? formatCidr(r.cidr) : { problem: r.problem };
}

/** A URL-valued key's value for an issue, without credentials (the issue objects stay clean too, not only their text). */
function redactUrlValue(value: unknown): unknown {
  return typeof value === "string" ? redactCredentials(value) : value;
}

function redactToken(value: unknown): unknown {
  return typeof value === "string" ? `(${value.length} characters, not shown)` : value;
}

function checkToken(issues: Issues, path: string, value: unknown, why: string): string | undefined {
  if (typeof value === "string" && value.length >= MIN_TOKEN_LENGTH && value.length <= MAX_TOKEN_LENGTH && TOKEN.test(value)) return value;
  issues.add(path, `a token of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} printable ASCII characters without spaces${why}`, redactToken(value));
  return undefined;
}

function nullRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

interface Named<T> {
  /** The sections that parsed. */
  items: Record<string, T>;
  /** Every valid name declared, whether or not its section parsed (for references). */
  names: Set<string>;
  ok: boolean;
}

/** A mapping of named sections (frontends, backends), at least one. */
function parseNamed<T>(
  issues: Issues,
  path: string,
  value: unknown,
  what: string,
  parse: (issues: Issues, path: string, name: string, value: unknown) => T | undefined,
): Named<T> {
  const result: Named<T> = { items: nullRecord<T>(), names: new Set(), ok: false };
  if (value === undefined) {
    issues.add(path, `a mapping of ${what} names to ${what}s (at least one)`, value);
    return result;
  }
  const obj = checkObject(issues, path, value);
  if (!obj) return result;
  result.ok = true;
  if (Object.keys(obj).length === 0) {
    issues.add(path, `at least one ${what}`, obj);
    result.ok = false;
  }
  for (const [name, v] of Object.entries(obj)) {
    const p = join(path, name);
    if (configName(issues, p, name, what) === undefined) {
      result.ok = false;
      continue;
    }
    result.names.add(name);
    const parsed = parse(issues, p, name, v);
    if (parsed === undefined) result.ok = false;
    else result.items[name] = parsed;
  }
  return result;
}

function parseMaxconnSection(issues: Issues, path: string, value: unknown): number | null {
  if (value === undefined) return null;
  const obj = checkObject(issues, path, value);
  if (!obj) return null;
  checkKnownKeys(issues, path, obj, ["maxconn"]);
  return optionalPositive(issues, join(path, "maxconn"), obj.maxconn);
}

// ---------------------------------------------------------------------------------------------
// Addresses

const BIND_EXPECTED = "an address such as 127.0.0.1:8080, [::1]:8080 or 0.0.0.0:8080 (an IP address or localhost, and a port)";

function parsePort(text: string, allowZero: boolean): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port > 65535 || (port === 0 && !allowZero) ? undefined : port;
}

export function parseBind(value: unknown): BindAddress | undefined {
  if (typeof value !== "string" || value.length > 64) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([^:]+)$/.exec(value);
  if (!m) return undefined;
  const port = parsePort(m[3]!, true);
  if (port === undefined) return undefined;
  let bytes: Uint8Array | undefined;
  if (m[1] !== undefined) bytes = parseIPv6(m[1]);
  else bytes = m[2] === "localhost" ? parseIPv4("127.0.0.1") : parseIPv4(m[2]!);
  if (!bytes) return undefined;
  const host = formatIp(bytes);
  const family = bytes.length === 4 ? 4 : 6;
  const effective = parseIp(host) ?? bytes;
  return {
    host,
    port,
    family,
    loopback: isLoopback(effective),
    wildcard: isUnspecified(bytes),
    text: family === 4 ? `${host}:${port}` : `[${host}]:${port}`,
  };
}

function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.split(".");
  if (labels.every((l) => /^\d+$/.test(l))) return parseIPv4(host) !== undefined;
  return labels.every((l) => HOST_LABEL.test(l));
}

const ADDRESS_EXPECTED = "host:port (a host name, IPv4 or [IPv6] address and a port) or an http:// or https:// URL";

export function parseServerAddress(value: unknown): ServerAddress | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > 2048) return undefined;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)) {
    if (!/^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/i.test(value)) return undefined;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return undefined;
    }
    if (url.username !== "" || url.password !== "" || url.hostname === "") return undefined;
    const protocol = url.protocol === "https:" ? "https:" : "http:";
    const port = url.port === "" ? (protocol === "https:" ? 443 : 80) : Number(url.port);
    if (port === 0) return undefined;
    const path = url.pathname.replace(/\/+$/, "");
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    return { form: "url", protocol, host, port, path, url: `${protocol}//${url.hostname}:${port}${path}` };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]/\s]+)):([^:]+)$/.exec(value);
  if (!m) return undefined;
  const port = parsePort(m[3]!, false);
  if (port === undefined) return undefined;
  let host: string;
  let hostText: string;
  if (m[1] !== undefined) {
    const bytes = parseIPv6(m[1]);
    if (!bytes) return undefined;
    host = formatIp(bytes);
    hostText = `[${host}]`;
  } else {
    host = m[2]!.toLowerCase();
    if (!isHostName(host)) return undefined;
    hostText = host;
  }
  return { form: "host-port", protocol: "http:", host, port, path: "", url: `http://${hostText}:${port}` };
}

/** `host` condition values: a host name or IP literal, optionally with a port; lower-cased. */
function parseHostCondition(value: string): string | undefined {
  const text = value.toLowerCase();
  if (text.length > 260) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]/\s]+))(?::([^:]+))?$/.exec(text);
  if (!m) return undefined;
  if (m[3] !== undefined && parsePort(m[3], false) === undefined) return undefined;
  if (m[1] !== undefined) {
    const bytes = parseIPv6(m[1]);
    if (!bytes) return undefined;
    return `[${formatIp(bytes)}]${m[3] === undefined ? "" : `:${m[3]}`}`;
  }
  return isHostName(m[2]!) ? text : undefined;
}

// ---------------------------------------------------------------------------------------------
// Sections

function parseStore(issues: Issues, value: unknown): StoreConfig | undefined {
  if (value === undefined) return { type: "memory" };
  const obj = checkObject(issues, "store", value);
  if (!obj) return undefined;
  checkKnownKeys(issues, "store", obj, STORE_KEYS);
  if (obj.type === undefined) {
    issues.add("store.type", `one of ${STORE_TYPES.map((t) => JSON.stringify(t)).join(", ")}`, undefined);
    return undefined;
  }
  const type = checkOneOf(issues, "store.type", obj.type, STORE_TYPES);
  if (!type) return undefined;
  for (const key of STORE_KEYS) {
    if (obj[key] !== undefined && !STORE_KEYS_BY_TYPE[type].includes(key)) {
      const hint = key === "token" && type.startsWith("redis") ? " (put a Redis password in the URL)" : "";
      issues.add(join("store", key), `no ${key} with store type "${type}"${hint}`, key === "token" ? redactToken(obj[key]) : obj[key]);
    }
  }
  let prefix: string | null = null;
  if (obj.prefix !== undefined && type !== "memory" && type !== "durable-object") {
    prefix = checkString(issues, "store.prefix", obj.prefix, PREFIX, "a key prefix of 1–64 characters from [A-Za-z0-9_.:-]") ?? null;
  }
  const redisUrl = (path: string, v: unknown): string | undefined => {
    if (typeof v === "string" && v.length <= 2048 && /^rediss?:\/\/[^\s]+$/.test(v) && urlParses(v)) return v;
    issues.add(path, "a Redis URL such as redis://127.0.0.1:6379 or rediss://…", redactUrlValue(v));
    return undefined;
  };
  switch (type) {
    case "memory":
      return { type };
    case "redis": {
      const url = redisUrl("store.url", obj.url);
      return url === undefined ? undefined : { type, url, prefix };
    }
    case "redis-cluster": {
      if ((obj.url === undefined) === (obj.urls === undefined)) {
        issues.add("store.urls", "a list of Redis URLs of the cluster's nodes (or one url)", obj.urls);
        return undefined;
      }
      if (obj.url !== undefined) {
        const url = redisUrl("store.url", obj.url);
        return url === undefined ? undefined : { type, urls: [url], prefix };
      }
      if (!Array.isArray(obj.urls) || obj.urls.length === 0 || obj.urls.length > MAX_LIST) {
        issues.add("store.urls", `a list of 1 to ${MAX_LIST} Redis URLs`, obj.urls);
        return undefined;
      }
      const urls = obj.urls.map((u, i) => redisUrl(join("store.urls", i), u));
      return urls.every((u) => u !== undefined) ? { type, urls: urls as string[], prefix } : undefined;
    }
    case "durable-object": {
      let url: string | undefined;
      const v = obj.url;
      if (typeof v === "string" && v.length <= 2048 && /^https?:\/\/[^\s@]+$/.test(v) && urlParses(v)) url = v;
      else issues.add("store.url", "the http(s):// URL of the Worker's slot API", redactUrlValue(v));
      const token = checkToken(issues, "store.token", obj.token, " (the Worker's slot API token)");
      return url === undefined || token === undefined ? undefined : { type, url, token };
    }
  }
}

function urlParses(text: string): boolean {
  try {
    return new URL(text).hostname !== "";
  } catch {
    return false;
  }
}

function parseFrontend(issues: Issues, path: string, name: string, value: unknown): FrontendConfig | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, FRONTEND_KEYS);
  const bind = parseBind(obj.bind);
  if (!bind) issues.add(join(path, "bind"), BIND_EXPECTED, obj.bind);
  const mode = obj.mode === undefined ? "http" : checkOneOf(issues, join(path, "mode"), obj.mode, ["http", "tcp"] as const);
  const maxconn = optionalPositive(issues, join(path, "maxconn"), obj.maxconn);
  let defaultBackend: string | undefined;
  if (obj.default_backend === undefined) issues.add(join(path, "default_backend"), "the name of a backend", undefined);
  else defaultBackend = configName(issues, join(path, "default_backend"), obj.default_backend, "backend");

  let denyStatus: DenyStatus | null = mode === "tcp" ? null : 503;
  if (obj.deny_status !== undefined) {
    if (mode === "tcp") {
      issues.add(join(path, "deny_status"), "no deny_status in a tcp frontend (a rejected connection is closed)", obj.deny_status);
    } else if (obj.deny_status === 429 || obj.deny_status === 503) {
      denyStatus = obj.deny_status;
    } else {
      issues.add(join(path, "deny_status"), "429 or 503", obj.deny_status);
    }
  }

  let delayBeforeCloseMs = 0;
  if (obj.delay_before_close !== undefined) {
    if (mode === "http") {
      issues.add(join(path, "delay_before_close"), "no delay_before_close in an http frontend (it applies to tcp)", obj.delay_before_close);
    } else {
      delayBeforeCloseMs = checkDuration(issues, join(path, "delay_before_close"), obj.delay_before_close, { max: MAX_DELAY_BEFORE_CLOSE_MS }) ?? 0;
    }
  }

  const { timeout, bufferRequestBytes, forwardedFor } = parseFrontendClientSide(issues, path, obj, mode);

  const priority: PriorityRule[] = [];
  if (obj.priority !== undefined) {
    const p = join(path, "priority");
    if (!Array.isArray(obj.priority) || obj.priority.length > MAX_LIST) {
      issues.add(p, `a list of up to ${MAX_LIST} rules { if?, class?, offset? }`, obj.priority);
    } else {
      let catchAll: number | undefined;
      obj.priority.forEach((rule: unknown, i) => {
        const rp = join(p, i);
        if (catchAll !== undefined) issues.add(rp, `no rule after ${join(p, catchAll)}, which has no "if" and always matches`, rule);
        const parsed = parseRule(issues, rp, rule, mode);
        if (parsed) {
          priority.push(parsed);
          if (parsed.if === null) catchAll ??= i;
        }
      });
    }
  }

  const limits: KeyedLimit[] = [];
  if (obj.limits !== undefined) {
    const p = join(path, "limits");
    if (!Array.isArray(obj.limits) || obj.limits.length > MAX_LIST) {
      issues.add(p, `a list of up to ${MAX_LIST} keyed limits { name, key, maxconn, maxqueue? }`, obj.limits);
    } else {
      const seen = new Set<string>();
      obj.limits.forEach((limit: unknown, i) => {
        const parsed = parseKeyedLimit(issues, join(p, i), limit, mode);
        if (!parsed) return;
        if (seen.has(parsed.name)) issues.add(join(join(p, i), "name"), "a name not used by another limit of this frontend", parsed.name);
        seen.add(parsed.name);
        limits.push(parsed);
      });
    }
  }

  if (!bind || !mode || defaultBackend === undefined) return undefined;
  return { name, bind, mode, maxconn, defaultBackend, denyStatus, priority, limits, delayBeforeCloseMs, timeout, bufferRequestBytes, forwardedFor };
}

/** The settings that defend a frontend against its clients: timeouts, request buffering, trusted forwarders. */
function parseFrontendClientSide(
  issues: Issues,
  path: string,
  obj: Record<string, unknown>,
  mode: FrontendMode | undefined,
): Pick<FrontendConfig, "timeout" | "bufferRequestBytes" | "forwardedFor"> {
  const http = mode !== "tcp";
  const timeout = http ? { clientMs: DEFAULT_CLIENT_TIMEOUT_MS, httpRequestMs: DEFAULT_HTTP_REQUEST_TIMEOUT_MS } : { clientMs: 0, httpRequestMs: 0 };
  if (obj.timeout !== undefined) {
    const tp = join(path, "timeout");
    const t = checkObject(issues, tp, obj.timeout);
    if (!http) issues.add(tp, "no timeout in a tcp frontend (the backend's timeout.server bounds a silent connection)", obj.timeout);
    else if (t) {
      checkKnownKeys(issues, tp, t, FRONTEND_TIMEOUT_KEYS);
      if (t.client !== undefined) timeout.clientMs = checkDuration(issues, join(tp, "client"), t.client, { min: 1, max: MAX_TTL_MS }) ?? timeout.clientMs;
      if (t.http_request !== undefined)
        timeout.httpRequestMs = checkDuration(issues, join(tp, "http_request"), t.http_request, { min: 1, max: MAX_TTL_MS }) ?? timeout.httpRequestMs;
    }
  }

  let bufferRequestBytes = http ? DEFAULT_BUFFER_REQUEST_BYTES : 0;
  if (obj.buffer_request !== undefined) {
    const bp = join(path, "buffer_request");
    if (!http) issues.add(bp, "no buffer_request in a tcp frontend", obj.buffer_request);
    else if (obj.buffer_request === false) bufferRequestBytes = 0;
    else bufferRequestBytes = checkSize(issues, bp, obj.buffer_request, { min: 0, max: MAX_BUFFER_REQUEST_BYTES }) ?? bufferRequestBytes;
  }

  const forwardedFor = { trusted: [] as string[] };
  if (obj.forwarded_for !== undefined) {
    const fp = join(path, "forwarded_for");
    const f = checkObject(issues, fp, obj.forwarded_for);
    if (!http) issues.add(fp, "no forwarded_for in a tcp frontend", obj.forwarded_for);
    else if (f) {
      checkKnownKeys(issues, fp, f, FORWARDED_FOR_KEYS);
      if (f.trusted !== undefined) {
        forwardedFor.trusted =
          stringList(issues, join(fp, "trusted"), f.trusted, "a CIDR of a proxy in front of this node, such as 10.0.0.0/8", cidrItem) ?? [];
      }
    }
  }
  return { timeout, bufferRequestBytes, forwardedFor };
}

function parseRule(issues: Issues, path: string, value: unknown, mode: FrontendMode | undefined): PriorityRule | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, RULE_KEYS);
  if (obj.class === undefined && obj.offset === undefined) {
    issues.add(path, "a rule with a class and/or an offset", value);
    return undefined;
  }
  const cls = obj.class === undefined ? 0 : checkInt(issues, join(path, "class"), obj.class, { min: PRIORITY_CLASS_MIN, max: PRIORITY_CLASS_MAX });
  const offsetMs =
    obj.offset === undefined ? 0 : checkDuration(issues, join(path, "offset"), obj.offset, { min: PRIORITY_OFFSET_MIN_MS, max: PRIORITY_OFFSET_MAX_MS });
  let conditions: Conditions | null | undefined = null;
  if (obj.if !== undefined) conditions = parseConditions(issues, join(path, "if"), obj.if, mode);
  if (cls === undefined || offsetMs === undefined || conditions === undefined) return undefined;
  return { if: conditions, class: cls, offsetMs };
}

function parseConditions(issues: Issues, path: string, value: unknown, mode: FrontendMode | undefined): Conditions | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, CONDITION_KEYS);
  const given = CONDITION_KEYS.filter((k) => obj[k] !== undefined);
  if (given.length === 0) {
    issues.add(path, `at least one condition (${CONDITION_KEYS.join(", ")}); omit "if" for a rule that always matches`, value);
    return undefined;
  }
  const out: Conditions = {};
  let ok = true;
  const fail = () => {
    ok = false;
    return undefined;
  };
  for (const kind of given) {
    const p = join(path, kind);
    const v = obj[kind];
    if (mode === "tcp" && kind !== "src") {
      issues.add(p, "only src conditions in a tcp frontend", v);
      ok = false;
      continue;
    }
    switch (kind) {
      case "path_beg":
        out.pathBeg =
          stringList(issues, p, v, "a path prefix starting with / (printable ASCII, up to 1024 characters)", (s) => (PATH_PREFIX.test(s) ? s : undefined)) ??
          fail();
        break;
      case "path_reg": {
        if (typeof v !== "string") {
          issues.add(p, "a regular expression (string)", v);
          ok = false;
          break;
        }
        const compiled = compilePathRegex(v);
        if (compiled.ok) out.pathReg = v;
        else {
          issues.add(p, compiled.expected, v, compiled.unsupported);
          ok = false;
        }
        break;
      }
      case "method":
        out.method = stringList(issues, p, v, "an HTTP method such as GET", (s) => (METHOD.test(s) ? s.toUpperCase() : undefined)) ?? fail();
        break;
      case "host":
        out.host = stringList(issues, p, v, "a host name or IP address, optionally with :port", parseHostCondition) ?? fail();
        break;
      case "header": {
        const headers = checkObject(issues, p, v);
        if (!headers || Object.keys(headers).length === 0) {
          if (headers) issues.add(p, "a mapping of header names to values (at least one)", v);
          ok = false;
          break;
        }
        const record = nullRecord<string[]>();
        for (const [name, hv] of Object.entries(headers)) {
          const hp = join(p, name);
          const lower = name.toLowerCase();
          if (!HEADER_NAME.test(name) || lower === "__proto__") {
            issues.add(hp, "a header name (an HTTP token of up to 128 characters)", name);
            ok = false;
            continue;
          }
          if (record[lower] !== undefined) {
            issues.add(hp, "each header once (names are case-insensitive)", name);
            ok = false;
            continue;
          }
          const values = stringList(issues, hp, hv, "a header value (1–1024 printable ASCII characters, no surrounding spaces)", (s) =>
            HEADER_VALUE.test(s) ? s : undefined,
          );
          if (values) record[lower] = values;
          else ok = false;
        }
        out.header = record;
        break;
      }
      case "src":
        out.src = stringList(issues, p, v, "a CIDR such as 10.0.0.0/8 or 2001:db8::/32", cidrItem) ?? fail();
        break;
    }
  }
  return ok ? out : undefined;
}

function parseKeyedLimit(issues: Issues, path: string, value: unknown, mode: FrontendMode | undefined): KeyedLimit | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, LIMIT_KEYS);
  const name =
    obj.name === undefined ? (issues.add(join(path, "name"), "a limit name", undefined), undefined) : configName(issues, join(path, "name"), obj.name, "limit");
  const maxconn =
    obj.maxconn === undefined
      ? (issues.add(join(path, "maxconn"), "a positive integer (per key value)", undefined), undefined)
      : positive(issues, join(path, "maxconn"), obj.maxconn);
  const maxqueue = optionalPositive(issues, join(path, "maxqueue"), obj.maxqueue);
  const key = parseLimitKey(issues, join(path, "key"), obj.key, mode);
  if (name === undefined || maxconn === undefined || key === undefined) return undefined;
  return { name, key, maxconn, maxqueue };
}

/**
 * Default network of a `src` key: one key per IPv4 address, but one per IPv6 /64. A /64 is what a
 * single subscriber or host is given (SLAAC needs it), and it can take any of its 2^64 addresses
 * at will: keyed per address, one client would get a fresh slot per address it rotates through.
 */
export const SRC_KEY_IPV4_PREFIX = 32;
export const SRC_KEY_IPV6_PREFIX = 64;

function parseLimitKey(issues: Issues, path: string, value: unknown, mode: FrontendMode | undefined): LimitKey | undefined {
  const expected = "one of { header: <name> }, { query: <param> }, { path: true }, { src: true } or { src: { ipv4, ipv6 } }";
  if (!isPlainObject(value)) {
    issues.add(path, expected, value);
    return undefined;
  }
  checkKnownKeys(issues, path, value, KEY_KINDS);
  const kinds = KEY_KINDS.filter((k) => value[k] !== undefined);
  if (kinds.length !== 1) {
    issues.add(path, expected, value);
    return undefined;
  }
  const kind = kinds[0]!;
  const p = join(path, kind);
  const v = value[kind];
  if (mode === "tcp" && kind !== "src") {
    issues.add(p, "only a src key in a tcp frontend", v);
    return undefined;
  }
  switch (kind) {
    case "header": {
      const name = checkString(issues, p, v, HEADER_NAME, "a header name (an HTTP token of up to 128 characters)");
      return name === undefined ? undefined : { kind: "header", name: name.toLowerCase() };
    }
    case "query": {
      const name = checkString(issues, p, v, QUERY_PARAM, "a query parameter name (1–128 printable ASCII characters, no # & = ?)");
      return name === undefined ? undefined : { kind: "query", name };
    }
    case "path":
      if (v === true) return { kind: "path" };
      issues.add(p, "true (the request path, without query, is the key)", v);
      return undefined;
    default: {
      if (v === true) return { kind: "src", ipv4Prefix: SRC_KEY_IPV4_PREFIX, ipv6Prefix: SRC_KEY_IPV6_PREFIX };
      if (!isPlainObject(v)) {
        issues.add(p, "true, or { ipv4: <prefix length>, ipv6: <prefix length> }", v);
        return undefined;
      }
      checkKnownKeys(issues, p, v, ["ipv4", "ipv6"]);
      const prefix = (family: "ipv4" | "ipv6", bits: number, fallback: number) =>
        v[family] === undefined
          ? fallback
          : checkInt(issues, join(p, family), v[family], {
              min: 0,
              max: bits,
              expected: `an ${family === "ipv4" ? "IPv4" : "IPv6"} prefix length from 0 to ${bits}`,
            });
      const ipv4Prefix = prefix("ipv4", 32, SRC_KEY_IPV4_PREFIX);
      const ipv6Prefix = prefix("ipv6", 128, SRC_KEY_IPV6_PREFIX);
      return ipv4Prefix === undefined || ipv6Prefix === undefined ? undefined : { kind: "src", ipv4Prefix, ipv6Prefix };
    }
  }
}

interface ServerDefaults {
  maxconn: number | null;
  maxqueue: number | null;
  weight: number;
}

function parseBackend(issues: Issues, path: string, name: string, value: unknown): BackendConfig | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, BACKEND_KEYS);
  const balance = obj.balance === undefined ? "roundrobin" : checkOneOf(issues, join(path, "balance"), obj.balance, BALANCES);
  const maxconn = optionalPositive(issues, join(path, "maxconn"), obj.maxconn);
  const maxqueue = optionalPositive(issues, join(path, "maxqueue"), obj.maxqueue);

  let connectMs: number | undefined = DEFAULT_CONNECT_TIMEOUT_MS;
  let serverMs: number | undefined = DEFAULT_SERVER_TIMEOUT_MS;
  let queueMs: number | undefined;
  if (obj.timeout !== undefined) {
    const tp = join(path, "timeout");
    const t = checkObject(issues, tp, obj.timeout);
    if (t) {
      checkKnownKeys(issues, tp, t, TIMEOUT_KEYS);
      if (t.connect !== undefined) connectMs = checkDuration(issues, join(tp, "connect"), t.connect, { min: 1, max: MAX_TTL_MS });
      if (t.server !== undefined) serverMs = checkDuration(issues, join(tp, "server"), t.server, { min: 1, max: MAX_TTL_MS });
      if (t.queue !== undefined) queueMs = checkDuration(issues, join(tp, "queue"), t.queue, { min: 0, max: MAX_TTL_MS });
    }
  }
  queueMs ??= connectMs; // HAProxy: timeout queue defaults to timeout connect
  const leaseTtlMs =
    obj.lease_ttl === undefined
      ? DEFAULT_LEASE_TTL_MS
      : checkDuration(issues, join(path, "lease_ttl"), obj.lease_ttl, { min: MIN_LEASE_TTL_MS, max: MAX_TTL_MS });

  const defaults: ServerDefaults = { maxconn: null, maxqueue: null, weight: 1 };
  if (obj.default_server !== undefined) {
    const dp = join(path, "default_server");
    const d = checkObject(issues, dp, obj.default_server);
    if (d) {
      checkKnownKeys(issues, dp, d, DEFAULT_SERVER_KEYS);
      defaults.maxconn = optionalPositive(issues, join(dp, "maxconn"), d.maxconn);
      defaults.maxqueue = optionalPositive(issues, join(dp, "maxqueue"), d.maxqueue);
      if (d.weight !== undefined) defaults.weight = checkInt(issues, join(dp, "weight"), d.weight, { min: 1, max: MAX_WEIGHT }) ?? 1;
    }
  }

  const servers: ServerConfig[] = [];
  let serversOk = false;
  const sp = join(path, "servers");
  if (obj.servers === undefined) {
    issues.add(sp, "a mapping of server names to { address, … } (at least one)", undefined);
  } else {
    const s = checkObject(issues, sp, obj.servers);
    if (s) {
      serversOk = true;
      if (Object.keys(s).length === 0) {
        issues.add(sp, "at least one server", s);
        serversOk = false;
      }
      for (const [serverName, sv] of Object.entries(s)) {
        const p = join(sp, serverName);
        const server = configName(issues, p, serverName, "server") === undefined ? undefined : parseServer(issues, p, serverName, sv, defaults);
        if (server) servers.push(server);
        else serversOk = false;
      }
    }
  }

  if (!balance || connectMs === undefined || serverMs === undefined || queueMs === undefined || leaseTtlMs === undefined || !serversOk) return undefined;
  return { name, balance, maxconn, maxqueue, timeout: { queueMs, connectMs, serverMs }, leaseTtlMs, servers };
}

function parseServer(issues: Issues, path: string, name: string, value: unknown, defaults: ServerDefaults): ServerConfig | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, SERVER_KEYS);
  const address = parseServerAddress(obj.address);
  if (!address) issues.add(join(path, "address"), ADDRESS_EXPECTED, redactUrlValue(obj.address));
  const maxconn = obj.maxconn === undefined ? defaults.maxconn : (positive(issues, join(path, "maxconn"), obj.maxconn) ?? null);
  const maxqueue = obj.maxqueue === undefined ? defaults.maxqueue : (positive(issues, join(path, "maxqueue"), obj.maxqueue) ?? null);
  const weight = obj.weight === undefined ? defaults.weight : checkInt(issues, join(path, "weight"), obj.weight, { min: 1, max: MAX_WEIGHT });
  if (obj.down !== undefined && typeof obj.down !== "boolean") issues.add(join(path, "down"), "a boolean", obj.down);
  if (!address || weight === undefined) return undefined;
  return { name, address, maxconn, maxqueue, weight, down: obj.down === true };
}

function parseStats(issues: Issues, value: unknown): StatsConfig | undefined {
  const obj = checkObject(issues, "stats", value);
  if (!obj) return undefined;
  checkKnownKeys(issues, "stats", obj, STATS_KEYS);
  const bind = parseBind(obj.bind);
  if (!bind) issues.add("stats.bind", BIND_EXPECTED, obj.bind);
  let token: string | null = null;
  if (obj.token !== undefined) {
    token = checkToken(issues, "stats.token", obj.token, "") ?? null;
  } else if (bind && !bind.loopback) {
    issues.add(
      "stats.token",
      `a token of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} printable ASCII characters when stats.bind is not a loopback address`,
      undefined,
    );
  }
  const showKeys = optionalBoolean(issues, "stats.show_keys", obj.show_keys);
  if (!bind || showKeys === undefined) return undefined;
  return { bind, token, showKeys };
}

function parseLog(issues: Issues, value: unknown): LogConfig | undefined {
  const obj = checkObject(issues, "log", value);
  if (!obj) return undefined;
  checkKnownKeys(issues, "log", obj, LOG_KEYS);
  const query = optionalBoolean(issues, "log.query", obj.query);
  return query === undefined ? undefined : { query };
}

/** `true` or `false`; absent is false. YAML's `yes`/`on` are strings here (YAML 1.2), hence errors. */
function optionalBoolean(issues: Issues, path: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value === true;
  issues.add(path, "a boolean", value);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Cross-checks

/** Raw frontend sections with a valid name, whether or not they parsed. */
function rawFrontends(value: unknown): Array<[string, Record<string, unknown>]> {
  if (!isPlainObject(value)) return [];
  return Object.entries(value).filter((e): e is [string, Record<string, unknown>] => CONFIG_NAME.test(e[0]) && e[0] !== "__proto__" && isPlainObject(e[1]));
}

function crossCheckBackends(issues: Issues, raw: unknown, frontends: Record<string, FrontendConfig>, backends: Named<BackendConfig>): void {
  const names = [...backends.names];
  const known = names.length === 0 ? "none declared" : names.length <= 8 ? names.join(", ") : `${names.slice(0, 8).join(", ")}, …`;
  for (const [name, f] of rawFrontends(raw)) {
    const ref = f.default_backend;
    if (typeof ref !== "string" || !CONFIG_NAME.test(ref)) continue; // reported by parseFrontend
    const p = join(join("frontends", name), "default_backend");
    const backend = backends.items[ref];
    if (!backends.names.has(ref)) {
      issues.add(p, `the name of a backend declared under backends (${known})`, ref);
    } else if (backend && frontends[name]?.mode === "tcp" && backend.servers.some((s) => s.address.form === "url")) {
      issues.add(p, "a backend whose servers have host:port addresses (a tcp frontend cannot use URLs)", ref);
    }
  }
}

function bindsOverlap(a: BindAddress, b: BindAddress): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || a.wildcard || b.wildcard;
}

function crossCheckBinds(issues: Issues, raw: unknown, stats: StatsConfig | null): void {
  const listeners: Array<{ path: string; bind: BindAddress }> = [];
  for (const [name, f] of rawFrontends(raw)) {
    const bind = parseBind(f.bind);
    if (bind) listeners.push({ path: join(join("frontends", name), "bind"), bind });
  }
  if (stats) listeners.push({ path: "stats.bind", bind: stats.bind });
  for (let i = 1; i < listeners.length; i++) {
    const b = listeners[i]!;
    const clash = listeners.slice(0, i).find((a) => bindsOverlap(a.bind, b.bind));
    if (clash) issues.add(b.path, `an address not already used by ${clash.path}`, b.bind.text);
  }
}
