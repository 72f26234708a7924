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
 * - `queue` (top level, optional; see queue.ts): `{ discipline: fifo|codel|lifo, target, interval,
 *   flow_weights: { <flow>: <weight> } }`, the group's queue discipline (default fifo, target 5ms
 *   within 1ms–1m, interval 100ms within 1ms–10m) and flow weights (integers 1–1000, at most 1000
 *   flows; a flow not listed weighs 1). Issues never show a flow name (it may be an API key):
 *   a weight is named by its place in the list.
 * - Frontend `fair_by`: a key source, exactly as a keyed limit's `key` (same validation, same
 *   extraction; tcp frontends only `{ src }`). Each request's value is its fairness flow; a request
 *   without one has no flow (it is served in arrival order within its class, as a flow of its own).
 *   A value over 1,024 characters is answered like an over-long keyed value (431 or 414).
 * - Frontend `queue_timeout_early` (boolean, default false): reject at once, with `Retry-After`
 *   from the store's estimate, a request whose estimated wait exceeds the backend's timeout.queue.
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
import * as v from "valibot";
import {
  Issues,
  accept,
  boolean,
  check,
  finite,
  int,
  isPlainObject,
  join,
  list,
  mapping,
  matching,
  nameSchema,
  nested,
  object,
  oneOf,
  optional,
  own,
  report,
  reportUnknownKeys,
  rule,
  refine,
  type AddIssue,
  type Schema,
} from "../../core/validate.js";
import { duration } from "./duration.js";
import { queueSection, type QueueConfig } from "./queue.js";
import { size } from "./size.js";
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
  /** Where a request's fairness flow comes from (a keyed limit's key source); `null`: no flows. */
  fairBy: LimitKey | null;
  /** Ask the store to reject at once a request whose estimated wait exceeds its queue timeout. */
  queueTimeoutEarly: boolean;
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
  /** The group's queue discipline and flow weights; `null`: FIFO, every flow weighs 1. */
  queue: QueueConfig | null;
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

const TOP_KEYS = ["store", "group", "version", "on_store_error", "local_share", "global", "node", "frontends", "backends", "stats", "log", "queue"];
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
  "fair_by",
  "queue_timeout_early",
];
const RULE_KEYS = ["if", "class", "offset"];
const CONDITION_KEYS = ["path_beg", "path_reg", "method", "host", "header", "src"];
const LIMIT_KEYS = ["name", "key", "maxconn", "maxqueue"];
const KEY_KINDS = ["header", "src", "path", "query"];

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
  return check(issues, "", edgeConfig, raw);
}

const edgeConfig = rule((value, addIssue): EdgeConfig | undefined => {
  const raw = value as Record<string, unknown>;
  reportUnknownKeys(addIssue, raw, TOP_KEYS);
  const at = <T>(key: string, schema: Schema<T>) => nested(addIssue, key, schema, own(raw, key));

  const store = at("store", storeSchema);
  const group = at("group", optional(nameSchema, "default"));
  const version = at("version", optional(int({ min: 1, max: MAX_SPEC_VERSION, expected: "a positive integer" }), null));
  const onStoreError = at("on_store_error", optional(oneOf(STORE_ERROR_POLICIES), "fail-closed" as const));
  let localShare: number | null | undefined = at(
    "local_share",
    optional(
      finite("a number in (0, 1]", (n) => n > 0 && n <= 1),
      null,
    ),
  );
  if (own(raw, "local_share") === undefined && onStoreError === "local") {
    localShare = report(addIssue, 'a number in (0, 1] when on_store_error is "local" (each node\'s share of every maxconn)', undefined, {
      path: ["local_share"],
    });
  }
  const global = at("global", maxconnSection);
  const node = at("node", maxconnSection);

  const backends = namedSections(addIssue, raw, "backends", "backend", backendSchema);
  const frontends = namedSections(addIssue, raw, "frontends", "frontend", frontendSchema);
  const stats = at("stats", optional(statsSchema, null));
  const log = at("log", optional(object({ query: optionalBoolean }), { query: false }));
  const queue = at("queue", queueSection);

  // Cross-checks run on whatever parsed, so that one bad section does not hide other problems.
  crossCheckBackends(addIssue, own(raw, "frontends"), frontends.items, backends);
  crossCheckBinds(addIssue, own(raw, "frontends"), stats ?? null);

  if (
    store === undefined ||
    group === undefined ||
    version === undefined ||
    onStoreError === undefined ||
    localShare === undefined ||
    global === undefined ||
    node === undefined ||
    !frontends.ok ||
    !backends.ok ||
    stats === undefined ||
    log === undefined ||
    queue === undefined
  )
    return undefined;
  return { store, group, version, onStoreError, localShare, global, node, frontends: frontends.items, backends: backends.items, stats, log, queue };
});

// ---------------------------------------------------------------------------------------------
// Small schemas

/** Positive integers up to {@link MAX_LIMIT}: 0 is an error here (omit the key for unlimited). */
const positive = refine(int({ min: 1, expected: "a positive integer" }), (n, addIssue) =>
  n <= MAX_LIMIT ? n : report(addIssue, `a positive integer up to ${MAX_LIMIT}`, n),
);

const optionalPositive = optional(positive, null);

/** `true` or `false`; absent is false. YAML's `yes`/`on` are strings here (YAML 1.2), hence errors. */
const optionalBoolean = optional(boolean(), false);

const configNames = new Map<string, Schema<string>>();
/** Names of frontends, backends, servers and keyed limits (see the decisions above). */
function configName(what: string): Schema<string> {
  let schema = configNames.get(what);
  if (!schema) {
    schema = accept(
      (x) => typeof x === "string" && CONFIG_NAME.test(x) && x !== "__proto__",
      `a ${what} name of 1–48 characters from [A-Za-z0-9_.-], starting with a letter or _`,
    );
    configNames.set(what, schema);
  }
  return schema;
}

/** What a list item checker returns: the normalised value, or what was expected instead. */
type ItemResult = string | { problem: string } | undefined;

/** A string or a non-empty list of strings, each checked by `each`. */
function stringList(expected: string, each: (v: string) => ItemResult): Schema<string[]> {
  return rule((value, addIssue) => {
    const items: unknown[] | undefined = typeof value === "string" ? [value] : Array.isArray(value) ? value : undefined;
    if (items === undefined || items.length === 0 || items.length > MAX_LIST)
      return report(addIssue, `${expected}, or a list of 1 to ${MAX_LIST} of them`, value);
    const out: string[] = [];
    let ok = true;
    items.forEach((item, i) => {
      const r: ItemResult = typeof item === "string" ? each(item) : undefined;
      if (typeof r === "string") {
        out.push(r);
      } else {
        report(addIssue, r?.problem ?? expected, item, typeof value === "string" ? {} : { path: [i] });
        ok = false;
      }
    });
    return ok ? out : undefined;
  });
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

/** A bearer token; the issue shows its length, never its text. */
function token(why: string): Schema<string> {
  return rule((value, addIssue) =>
    typeof value === "string" && value.length >= MIN_TOKEN_LENGTH && value.length <= MAX_TOKEN_LENGTH && TOKEN.test(value)
      ? value
      : report(addIssue, `a token of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} printable ASCII characters without spaces${why}`, redactToken(value)),
  );
}

/** A listening address, parsed by {@link parseBind}. */
const bindSchema = rule((value, addIssue) => parseBind(value) ?? report(addIssue, BIND_EXPECTED, value));

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

/**
 * A mapping of named sections (frontends, backends), at least one. Sections that parse are kept
 * even when others do not, so that the cross-checks can still look at them.
 */
function namedSections<T>(addIssue: AddIssue, raw: Record<string, unknown>, key: string, what: string, section: (name: string) => Schema<T>): Named<T> {
  const result: Named<T> = { items: nullRecord<T>(), names: new Set(), ok: false };
  const value = own(raw, key);
  if (value === undefined) {
    report(addIssue, `a mapping of ${what} names to ${what}s (at least one)`, value, { path: [key] });
    return result;
  }
  const obj = nested(addIssue, key, accept<Record<string, unknown>>(isPlainObject, "an object"), value);
  if (!obj) return result;
  result.ok = true;
  if (Object.keys(obj).length === 0) {
    report(addIssue, `at least one ${what}`, obj, { path: [key] });
    result.ok = false;
  }
  for (const [name, v] of Object.entries(obj)) {
    if (nested(addIssue, [key, name], configName(what), name) === undefined) {
      result.ok = false;
      continue;
    }
    result.names.add(name);
    const parsed = nested(addIssue, [key, name], section(name), v);
    if (parsed === undefined) result.ok = false;
    else result.items[name] = parsed;
  }
  return result;
}

/** `global` and `node`: `{ maxconn? }`. */
const maxconnSection = optional(object({ maxconn: optionalPositive }), { maxconn: null });
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

const STORE_TYPE_EXPECTED = `one of ${STORE_TYPES.map((t) => JSON.stringify(t)).join(", ")}`;

const redisUrl = rule((v, addIssue) =>
  typeof v === "string" && v.length <= 2048 && /^rediss?:\/\/[^\s]+$/.test(v) && urlParses(v)
    ? v
    : report(addIssue, "a Redis URL such as redis://127.0.0.1:6379 or rediss://…", redactUrlValue(v)),
);

const slotApiUrl = rule((v, addIssue) =>
  typeof v === "string" && v.length <= 2048 && /^https?:\/\/[^\s@]+$/.test(v) && urlParses(v)
    ? v
    : report(addIssue, "the http(s):// URL of the Worker's slot API", redactUrlValue(v)),
);

const storePrefix = optional(matching(PREFIX, "a key prefix of 1–64 characters from [A-Za-z0-9_.:-]"), null);

const storeSchema = optional(
  refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue): StoreConfig | undefined => {
    reportUnknownKeys(addIssue, obj, STORE_KEYS);
    const field = <T>(key: string, schema: Schema<T>) => nested(addIssue, key, schema, own(obj, key));
    if (own(obj, "type") === undefined) return report(addIssue, STORE_TYPE_EXPECTED, undefined, { path: ["type"] });
    const type = field("type", oneOf(STORE_TYPES));
    if (!type) return undefined;
    for (const key of STORE_KEYS) {
      const value = own(obj, key);
      if (value !== undefined && !STORE_KEYS_BY_TYPE[type].includes(key)) {
        const hint = key === "token" && type.startsWith("redis") ? " (put a Redis password in the URL)" : "";
        report(addIssue, `no ${key} with store type "${type}"${hint}`, key === "token" ? redactToken(value) : value, { path: [key] });
      }
    }
    const prefix = type === "redis" || type === "redis-cluster" ? (field("prefix", storePrefix) ?? null) : null;
    switch (type) {
      case "memory":
        return { type };
      case "redis": {
        const url = field("url", redisUrl);
        return url === undefined ? undefined : { type, url, prefix };
      }
      case "redis-cluster": {
        if ((own(obj, "url") === undefined) === (own(obj, "urls") === undefined)) {
          return report(addIssue, "a list of Redis URLs of the cluster's nodes (or one url)", own(obj, "urls"), { path: ["urls"] });
        }
        if (own(obj, "url") !== undefined) {
          const url = field("url", redisUrl);
          return url === undefined ? undefined : { type, urls: [url], prefix };
        }
        const urls = field(
          "urls",
          list(() => redisUrl, MAX_LIST, `a list of 1 to ${MAX_LIST} Redis URLs`, 1),
        );
        return urls === undefined ? undefined : { type, urls, prefix };
      }
      case "durable-object": {
        const url = field("url", slotApiUrl);
        const apiToken = field("token", token(" (the Worker's slot API token)"));
        return url === undefined || apiToken === undefined ? undefined : { type, url, token: apiToken };
      }
    }
  }),
  { type: "memory" } as StoreConfig,
);

function urlParses(text: string): boolean {
  try {
    return new URL(text).hostname !== "";
  } catch {
    return false;
  }
}

const NO_TCP = {
  timeout: "no timeout in a tcp frontend (the backend's timeout.server bounds a silent connection)",
  buffer_request: "no buffer_request in a tcp frontend",
  forwarded_for: "no forwarded_for in a tcp frontend",
  deny_status: "no deny_status in a tcp frontend (a rejected connection is closed)",
};

function frontendSchema(name: string): Schema<FrontendConfig> {
  return refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue) => {
    reportUnknownKeys(addIssue, obj, FRONTEND_KEYS);
    const field = <T>(key: string, schema: Schema<T>) => nested(addIssue, key, schema, own(obj, key));
    const bind = field("bind", bindSchema);
    const mode = field("mode", optional(oneOf(["http", "tcp"] as const), "http" as const));
    const maxconn = field("maxconn", optionalPositive);
    const defaultBackend =
      own(obj, "default_backend") === undefined
        ? report(addIssue, "the name of a backend", undefined, { path: ["default_backend"] })
        : field("default_backend", configName("backend"));

    let denyStatus: DenyStatus | null = mode === "tcp" ? null : 503;
    const deny = own(obj, "deny_status");
    if (deny !== undefined) {
      if (mode === "tcp") report(addIssue, NO_TCP.deny_status, deny, { path: ["deny_status"] });
      else
        denyStatus =
          field(
            "deny_status",
            accept<DenyStatus>((x) => x === 429 || x === 503, "429 or 503"),
          ) ?? denyStatus;
    }

    let delayBeforeCloseMs = 0;
    const delay = own(obj, "delay_before_close");
    if (delay !== undefined) {
      if (mode === "http") report(addIssue, "no delay_before_close in an http frontend (it applies to tcp)", delay, { path: ["delay_before_close"] });
      else delayBeforeCloseMs = field("delay_before_close", duration({ max: MAX_DELAY_BEFORE_CLOSE_MS })) ?? 0;
    }

    const { timeout, bufferRequestBytes, forwardedFor } = frontendClientSide(addIssue, obj, mode);

    const priority: PriorityRule[] = [];
    const rules = own(obj, "priority");
    if (rules !== undefined) {
      if (!Array.isArray(rules) || rules.length > MAX_LIST) {
        report(addIssue, `a list of up to ${MAX_LIST} rules { if?, class?, offset? }`, rules, { path: ["priority"] });
      } else {
        let catchAll: number | undefined;
        rules.forEach((r: unknown, i) => {
          if (catchAll !== undefined) {
            report(addIssue, `no rule after ${join(join(join("frontends", name), "priority"), catchAll)}, which has no "if" and always matches`, r, {
              path: ["priority", i],
            });
          }
          const parsed = nested(addIssue, ["priority", i], priorityRule(mode), r);
          if (parsed) {
            priority.push(parsed);
            if (parsed.if === null) catchAll ??= i;
          }
        });
      }
    }

    const limits: KeyedLimit[] = [];
    const keyed = own(obj, "limits");
    if (keyed !== undefined) {
      if (!Array.isArray(keyed) || keyed.length > MAX_LIST) {
        report(addIssue, `a list of up to ${MAX_LIST} keyed limits { name, key, maxconn, maxqueue? }`, keyed, { path: ["limits"] });
      } else {
        const seen = new Set<string>();
        keyed.forEach((l: unknown, i) => {
          const parsed = nested(addIssue, ["limits", i], keyedLimit(mode), l);
          if (!parsed) return;
          if (seen.has(parsed.name)) report(addIssue, "a name not used by another limit of this frontend", parsed.name, { path: ["limits", i, "name"] });
          seen.add(parsed.name);
          limits.push(parsed);
        });
      }
    }

    // The same key sources as keyed limits, read by the same code (match.ts keyValue).
    const fairBy = field("fair_by", optional(limitKey(mode), null));
    const queueTimeoutEarly = field("queue_timeout_early", optionalBoolean);

    if (!bind || !mode || maxconn === undefined || defaultBackend === undefined || fairBy === undefined || queueTimeoutEarly === undefined) return undefined;
    return {
      name,
      bind,
      mode,
      maxconn,
      defaultBackend,
      denyStatus,
      priority,
      limits,
      fairBy,
      queueTimeoutEarly,
      delayBeforeCloseMs,
      timeout,
      bufferRequestBytes,
      forwardedFor,
    };
  });
}

const frontendTimeout = object({
  client: optional(duration({ min: 1, max: MAX_TTL_MS }), DEFAULT_CLIENT_TIMEOUT_MS),
  http_request: optional(duration({ min: 1, max: MAX_TTL_MS }), DEFAULT_HTTP_REQUEST_TIMEOUT_MS),
});

const forwardedForSchema = object({
  trusted: optional(stringList("a CIDR of a proxy in front of this node, such as 10.0.0.0/8", cidrItem), [] as string[]),
});

/** The settings that defend a frontend against its clients: timeouts, request buffering, trusted forwarders. */
function frontendClientSide(
  addIssue: AddIssue,
  obj: Record<string, unknown>,
  mode: FrontendMode | undefined,
): Pick<FrontendConfig, "timeout" | "bufferRequestBytes" | "forwardedFor"> {
  const http = mode !== "tcp";
  const timeout = http ? { clientMs: DEFAULT_CLIENT_TIMEOUT_MS, httpRequestMs: DEFAULT_HTTP_REQUEST_TIMEOUT_MS } : { clientMs: 0, httpRequestMs: 0 };
  let bufferRequestBytes = http ? DEFAULT_BUFFER_REQUEST_BYTES : 0;
  const forwardedFor = { trusted: [] as string[] };
  for (const key of ["timeout", "buffer_request", "forwarded_for"] as const) {
    const value = own(obj, key);
    if (value === undefined) continue;
    if (!http) {
      if (key !== "buffer_request") nested(addIssue, key, accept(isPlainObject, "an object"), value);
      report(addIssue, NO_TCP[key], value, { path: [key] });
    } else if (key === "timeout") {
      const t = nested(addIssue, key, frontendTimeout, value);
      if (t) Object.assign(timeout, { clientMs: t.client, httpRequestMs: t.http_request });
    } else if (key === "buffer_request") {
      bufferRequestBytes = value === false ? 0 : (nested(addIssue, key, size({ min: 0, max: MAX_BUFFER_REQUEST_BYTES }), value) ?? bufferRequestBytes);
    } else {
      forwardedFor.trusted = nested(addIssue, key, forwardedForSchema, value)?.trusted ?? [];
    }
  }
  return { timeout, bufferRequestBytes, forwardedFor };
}

function priorityRule(mode: FrontendMode | undefined): Schema<PriorityRule> {
  return refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue) => {
    reportUnknownKeys(addIssue, obj, RULE_KEYS);
    if (own(obj, "class") === undefined && own(obj, "offset") === undefined) return report(addIssue, "a rule with a class and/or an offset", obj);
    const field = <T>(key: string, schema: Schema<T>) => nested(addIssue, key, schema, own(obj, key));
    const cls = field("class", optional(int({ min: PRIORITY_CLASS_MIN, max: PRIORITY_CLASS_MAX }), 0));
    const offsetMs = field("offset", optional(duration({ min: PRIORITY_OFFSET_MIN_MS, max: PRIORITY_OFFSET_MAX_MS }), 0));
    const conditions = field("if", optional(conditionsSchema(mode), null));
    if (cls === undefined || offsetMs === undefined || conditions === undefined) return undefined;
    return { if: conditions, class: cls, offsetMs };
  });
}

const pathPrefixes = stringList("a path prefix starting with / (printable ASCII, up to 1024 characters)", (s) => (PATH_PREFIX.test(s) ? s : undefined));
const methods = stringList("an HTTP method such as GET", (s) => (METHOD.test(s) ? s.toUpperCase() : undefined));
const hosts = stringList("a host name or IP address, optionally with :port", parseHostCondition);
const headerValues = stringList("a header value (1–1024 printable ASCII characters, no surrounding spaces)", (s) => (HEADER_VALUE.test(s) ? s : undefined));
const cidrs = stringList("a CIDR such as 10.0.0.0/8 or 2001:db8::/32", cidrItem);

/** `path_reg`: an RE2 pattern, compiled now (match.ts), with what RE2 refuses named in the issue. */
const pathRegex = rule((value, addIssue) => {
  if (typeof value !== "string") return report(addIssue, "a regular expression (string)", value);
  const compiled = compilePathRegex(value);
  return compiled.ok ? value : report(addIssue, compiled.expected, value, compiled.unsupported === undefined ? {} : { sentence: compiled.unsupported });
});

const headerConditions = refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (headers, addIssue) => {
  if (Object.keys(headers).length === 0) return report(addIssue, "a mapping of header names to values (at least one)", headers);
  const record = nullRecord<string[]>();
  let ok = true;
  for (const [name, hv] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name) || lower === "__proto__") {
      report(addIssue, "a header name (an HTTP token of up to 128 characters)", name, { path: [name] });
      ok = false;
      continue;
    }
    if (record[lower] !== undefined) {
      report(addIssue, "each header once (names are case-insensitive)", name, { path: [name] });
      ok = false;
      continue;
    }
    const values = nested(addIssue, name, headerValues, hv);
    if (values) record[lower] = values;
    else ok = false;
  }
  return ok ? record : undefined;
});

/** Each kind of condition: its key in {@link Conditions} and its schema. */
const CONDITION_SCHEMAS: Record<string, [keyof Conditions, Schema<unknown>]> = {
  path_beg: ["pathBeg", pathPrefixes],
  path_reg: ["pathReg", pathRegex],
  method: ["method", methods],
  host: ["host", hosts],
  header: ["header", headerConditions],
  src: ["src", cidrs],
};

function conditionsSchema(mode: FrontendMode | undefined): Schema<Conditions> {
  return refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue) => {
    reportUnknownKeys(addIssue, obj, CONDITION_KEYS);
    const given = CONDITION_KEYS.filter((k) => own(obj, k) !== undefined);
    if (given.length === 0) return report(addIssue, `at least one condition (${CONDITION_KEYS.join(", ")}); omit "if" for a rule that always matches`, obj);
    const out: Conditions = {};
    let ok = true;
    const field = <T>(key: string, schema: Schema<T>): T | undefined => {
      const parsed = nested(addIssue, key, schema, own(obj, key));
      if (parsed === undefined) ok = false;
      return parsed;
    };
    for (const kind of given) {
      if (mode === "tcp" && kind !== "src") {
        report(addIssue, "only src conditions in a tcp frontend", own(obj, kind), { path: [kind] });
        ok = false;
        continue;
      }
      const [key, schema] = CONDITION_SCHEMAS[kind]!;
      (out as Record<string, unknown>)[key] = field(kind, schema);
    }
    return ok ? out : undefined;
  });
}

function keyedLimit(mode: FrontendMode | undefined): Schema<KeyedLimit> {
  return refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue) => {
    reportUnknownKeys(addIssue, obj, LIMIT_KEYS);
    const field = <T>(key: string, schema: Schema<T>) => nested(addIssue, key, schema, own(obj, key));
    const name = own(obj, "name") === undefined ? report(addIssue, "a limit name", undefined, { path: ["name"] }) : field("name", configName("limit"));
    const maxconn =
      own(obj, "maxconn") === undefined ? report(addIssue, "a positive integer (per key value)", undefined, { path: ["maxconn"] }) : field("maxconn", positive);
    const maxqueue = field("maxqueue", optionalPositive);
    const key = field("key", limitKey(mode));
    if (name === undefined || maxconn === undefined || maxqueue === undefined || key === undefined) return undefined;
    return { name, key, maxconn, maxqueue };
  });
}

/**
 * Default network of a `src` key: one key per IPv4 address, but one per IPv6 /64. A /64 is what a
 * single subscriber or host is given (SLAAC needs it), and it can take any of its 2^64 addresses
 * at will: keyed per address, one client would get a fresh slot per address it rotates through.
 */
export const SRC_KEY_IPV4_PREFIX = 32;
export const SRC_KEY_IPV6_PREFIX = 64;

const LIMIT_KEY_EXPECTED = "one of { header: <name> }, { query: <param> }, { path: true }, { src: true } or { src: { ipv4, ipv6 } }";

const srcNetworks = object({
  ipv4: optional(int({ min: 0, max: 32, expected: "an IPv4 prefix length from 0 to 32" }), SRC_KEY_IPV4_PREFIX),
  ipv6: optional(int({ min: 0, max: 128, expected: "an IPv6 prefix length from 0 to 128" }), SRC_KEY_IPV6_PREFIX),
});

const srcKey = rule((v, addIssue): LimitKey | undefined => {
  if (v === true) return { kind: "src", ipv4Prefix: SRC_KEY_IPV4_PREFIX, ipv6Prefix: SRC_KEY_IPV6_PREFIX };
  if (!isPlainObject(v)) return report(addIssue, "true, or { ipv4: <prefix length>, ipv6: <prefix length> }", v);
  const prefixes = nested(addIssue, undefined, srcNetworks, v);
  return prefixes && { kind: "src", ipv4Prefix: prefixes.ipv4, ipv6Prefix: prefixes.ipv6 };
});

const LIMIT_KEY_SCHEMAS: Record<string, Schema<LimitKey>> = {
  header: refine(matching(HEADER_NAME, "a header name (an HTTP token of up to 128 characters)"), (name) => ({ kind: "header", name: name.toLowerCase() })),
  query: refine(matching(QUERY_PARAM, "a query parameter name (1–128 printable ASCII characters, no # & = ?)"), (name) => ({ kind: "query", name })),
  path: refine(
    accept((x) => x === true, "true (the request path, without query, is the key)"),
    () => ({ kind: "path" }),
  ),
  src: srcKey,
};

function limitKey(mode: FrontendMode | undefined): Schema<LimitKey> {
  return rule((value, addIssue) => {
    if (!isPlainObject(value)) return report(addIssue, LIMIT_KEY_EXPECTED, value);
    reportUnknownKeys(addIssue, value, KEY_KINDS);
    const kinds = KEY_KINDS.filter((k) => own(value, k) !== undefined);
    if (kinds.length !== 1) return report(addIssue, LIMIT_KEY_EXPECTED, value);
    const kind = kinds[0]!;
    if (mode === "tcp" && kind !== "src") return report(addIssue, "only a src key in a tcp frontend", own(value, kind), { path: [kind] });
    return nested(addIssue, kind, LIMIT_KEY_SCHEMAS[kind]!, own(value, kind));
  });
}

interface ServerDefaults {
  maxconn: number | null;
  maxqueue: number | null;
  weight: number;
}

const weight = int({ min: 1, max: MAX_WEIGHT });

const backendTimeout = object(
  {
    connect: optional(duration({ min: 1, max: MAX_TTL_MS }), DEFAULT_CONNECT_TIMEOUT_MS),
    server: optional(duration({ min: 1, max: MAX_TTL_MS }), DEFAULT_SERVER_TIMEOUT_MS),
    queue: optional(duration({ min: 0, max: MAX_TTL_MS }), undefined),
  },
  "an object",
  ["queue", "connect", "server"],
);

const defaultServer = object({ maxconn: optionalPositive, maxqueue: optionalPositive, weight: optional(weight, 1) });

/** Everything of a backend but its servers, whose defaults come from `default_server`. */
const backendHead = object({
  balance: optional(oneOf(BALANCES), "roundrobin" as const),
  maxconn: optionalPositive,
  maxqueue: optionalPositive,
  timeout: optional(backendTimeout, { queue: undefined, connect: DEFAULT_CONNECT_TIMEOUT_MS, server: DEFAULT_SERVER_TIMEOUT_MS }),
  lease_ttl: optional(duration({ min: MIN_LEASE_TTL_MS, max: MAX_TTL_MS }), DEFAULT_LEASE_TTL_MS),
  default_server: optional(defaultServer, { maxconn: null, maxqueue: null, weight: 1 }),
  servers: v.unknown(),
});

function backendSchema(name: string): Schema<BackendConfig> {
  return refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue) => {
    const head = nested(addIssue, undefined, backendHead, obj);
    // Servers are checked even when the head is not, against the defaults as far as they parsed.
    const defaults: ServerDefaults = head?.default_server ?? { maxconn: null, maxqueue: null, weight: 1 };
    const servers =
      own(obj, "servers") === undefined
        ? report(addIssue, "a mapping of server names to { address, … } (at least one)", undefined, { path: ["servers"] })
        : nested(addIssue, "servers", serversSchema(defaults), own(obj, "servers"));
    if (!head || !servers) return undefined;
    const { connect: connectMs, server: serverMs } = head.timeout;
    // HAProxy: timeout queue defaults to timeout connect.
    const queueMs = head.timeout.queue ?? connectMs;
    return {
      name,
      balance: head.balance,
      maxconn: head.maxconn,
      maxqueue: head.maxqueue,
      timeout: { queueMs, connectMs, serverMs },
      leaseTtlMs: head.lease_ttl,
      servers,
    };
  });
}

function serversSchema(defaults: ServerDefaults): Schema<ServerConfig[]> {
  return refine(
    mapping(configName("server"), (serverName) => serverSchema(serverName, defaults)),
    ({ entries, names }, addIssue) => (names.length === 0 ? report(addIssue, "at least one server", entries) : names.map((n) => entries[n]!)),
  );
}

const serverAddress = rule((value, addIssue) => parseServerAddress(value) ?? report(addIssue, ADDRESS_EXPECTED, redactUrlValue(value)));

function serverSchema(name: string, defaults: ServerDefaults): Schema<ServerConfig> {
  return refine(
    object({
      address: serverAddress,
      maxconn: optional(positive, defaults.maxconn),
      maxqueue: optional(positive, defaults.maxqueue),
      weight: optional(weight, defaults.weight),
      down: optionalBoolean,
    }),
    (server) => ({ name, ...server }),
  );
}

const statsSchema = refine(accept<Record<string, unknown>>(isPlainObject, "an object"), (obj, addIssue): StatsConfig | undefined => {
  const parsed = nested(addIssue, undefined, object({ bind: bindSchema, token: optional(token(""), null), show_keys: optionalBoolean }), obj);
  const bind = parseBind(own(obj, "bind"));
  if (own(obj, "token") === undefined && bind && !bind.loopback) {
    return report(
      addIssue,
      `a token of ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} printable ASCII characters when stats.bind is not a loopback address`,
      undefined,
      {
        path: ["token"],
      },
    );
  }
  return parsed && { bind: parsed.bind, token: parsed.token, showKeys: parsed.show_keys };
});

// ---------------------------------------------------------------------------------------------
// Cross-checks

/** Raw frontend sections with a valid name, whether or not they parsed. */
function rawFrontends(value: unknown): Array<[string, Record<string, unknown>]> {
  if (!isPlainObject(value)) return [];
  return Object.entries(value).filter((e): e is [string, Record<string, unknown>] => CONFIG_NAME.test(e[0]) && e[0] !== "__proto__" && isPlainObject(e[1]));
}

function crossCheckBackends(addIssue: AddIssue, raw: unknown, frontends: Record<string, FrontendConfig>, backends: Named<BackendConfig>): void {
  const names = [...backends.names];
  const known = names.length === 0 ? "none declared" : names.length <= 8 ? names.join(", ") : `${names.slice(0, 8).join(", ")}, …`;
  for (const [name, f] of rawFrontends(raw)) {
    const ref = own(f, "default_backend");
    if (typeof ref !== "string" || !CONFIG_NAME.test(ref)) continue; // reported by the frontend's schema
    const path = ["frontends", name, "default_backend"];
    const backend = backends.items[ref];
    if (!backends.names.has(ref)) {
      report(addIssue, `the name of a backend declared under backends (${known})`, ref, { path });
    } else if (backend && frontends[name]?.mode === "tcp" && backend.servers.some((s) => s.address.form === "url")) {
      report(addIssue, "a backend whose servers have host:port addresses (a tcp frontend cannot use URLs)", ref, { path });
    }
  }
}

function bindsOverlap(a: BindAddress, b: BindAddress): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || a.wildcard || b.wildcard;
}

function crossCheckBinds(addIssue: AddIssue, raw: unknown, stats: StatsConfig | null): void {
  const listeners: Array<{ path: string[]; bind: BindAddress }> = [];
  for (const [name, f] of rawFrontends(raw)) {
    const bind = parseBind(own(f, "bind"));
    if (bind) listeners.push({ path: ["frontends", name, "bind"], bind });
  }
  if (stats) listeners.push({ path: ["stats", "bind"], bind: stats.bind });
  for (let i = 1; i < listeners.length; i++) {
    const b = listeners[i]!;
    const clash = listeners.slice(0, i).find((a) => bindsOverlap(a.bind, b.bind));
    if (clash) report(addIssue, `an address not already used by ${clash.path.reduce((p, k) => join(p, k), "")}`, b.bind.text, { path: b.path });
  }
}
