/**
 * The limits of one group, in the normalised, JSON-safe form that every store receives. Users
 * write {@link LimitsOption} and {@link BackendsOption}; {@link buildGroupSpec} validates them and
 * produces a {@link GroupSpec}. `null` means "no limit" (HAProxy's `maxconn 0`).
 */
import { SlotgateConfigError } from "./errors.js";
import { Issues, checkInt, checkKnownKeys, checkName, checkObject, checkOneOf, isPlainObject, join } from "./validate.js";

export type Balance = "leastconn" | "roundrobin" | "first";
export const BALANCES: readonly Balance[] = ["leastconn", "roundrobin", "first"];

/** A named limit: a number (its max), `{ max, maxqueue }`, or a keyed limit `{ perKey, maxqueue }`. */
export type LimitOption = number | { max: number; maxqueue?: number } | { perKey: number; maxqueue?: number };
export type LimitsOption = Record<string, LimitOption>;

export interface ServerOption {
  /** Cluster-wide holders on this server (HAProxy server `maxconn`). Omit for unlimited. */
  max?: number;
  /** Tickets pinned to this server that may wait. Omit for unlimited. */
  maxqueue?: number;
  /** Relative share for `roundrobin`, 1–256. @default 1 */
  weight?: number;
  /** Start marked down: never chosen until marked up. @default false */
  down?: boolean;
}

export interface BackendOption {
  /** How the store picks a server inside the atomic acquire. @default "roundrobin" (as HAProxy) */
  balance?: Balance;
  /** Pool-wide cap across all servers (HAProxy cannot express this). Omit for unlimited. */
  max?: number;
  /** Tickets waiting for this backend. Omit for unlimited (HAProxy's `maxqueue 0`). */
  maxqueue?: number;
  servers: Record<string, ServerOption>;
}
export type BackendsOption = Record<string, BackendOption>;

export interface ScopeSpec {
  max: number | null;
  maxqueue: number | null;
  /** A keyed limit: one counter per distinct value, scopes named `<limit>:<value>`. */
  keyed: boolean;
}

export interface ServerSpec {
  name: string;
  max: number | null;
  maxqueue: number | null;
  weight: number;
  down: boolean;
}

export interface BackendSpec {
  balance: Balance;
  max: number | null;
  maxqueue: number | null;
  /** In declared order: `first` and tie-breaks depend on it. */
  servers: ServerSpec[];
}

export interface GroupSpec {
  limits: Record<string, ScopeSpec>;
  backends: Record<string, BackendSpec>;
}

export const MAX_LIMIT = 1_000_000_000;

/** Own-property lookup: a scope named `constructor` must not find Object.prototype's. */
export function ownEntry<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
export const MAX_WEIGHT = 256;

export function buildGroupSpec(limits: unknown, backends: unknown, path = ""): GroupSpec {
  const issues = new Issues();
  const spec: GroupSpec = { limits: {}, backends: {} };
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);

  if (limits !== undefined) {
    const obj = checkObject(issues, at("limits"), limits);
    for (const [name, value] of Object.entries(obj ?? {})) {
      const p = join(at("limits"), name);
      if (checkName(issues, p, name) === undefined) continue;
      if (name.startsWith("backend:") || name.startsWith("server:")) {
        issues.add(p, "a limit name not starting with backend: or server: (declare those under backends)", name);
        continue;
      }
      const scope = parseLimit(issues, p, value);
      if (scope) spec.limits[name] = scope;
    }
  }

  if (backends !== undefined) {
    const obj = checkObject(issues, at("backends"), backends);
    for (const [name, value] of Object.entries(obj ?? {})) {
      const p = join(at("backends"), name);
      if (checkName(issues, p, name) === undefined) continue;
      const backend = parseBackend(issues, p, value);
      if (backend) spec.backends[name] = backend;
    }
  }

  if (!issues.empty) throw new SlotgateConfigError(issues.list);
  return spec;
}

function optionalLimit(issues: Issues, path: string, value: unknown): number | null {
  if (value === undefined) return null;
  return checkInt(issues, path, value, { min: 0, max: MAX_LIMIT, expected: `an integer from 0 to ${MAX_LIMIT}` }) ?? null;
}

function parseLimit(issues: Issues, path: string, value: unknown): ScopeSpec | undefined {
  if (typeof value === "number") {
    const max = checkInt(issues, path, value, { min: 0, max: MAX_LIMIT, expected: `an integer from 0 to ${MAX_LIMIT}` });
    return max === undefined ? undefined : { max, maxqueue: null, keyed: false };
  }
  if (!isPlainObject(value)) {
    issues.add(path, "a number, { max, maxqueue? } or { perKey, maxqueue? }", value);
    return undefined;
  }
  checkKnownKeys(issues, path, value, ["max", "perKey", "maxqueue"]);
  const keyed = value.perKey !== undefined;
  if (keyed === (value.max !== undefined)) {
    issues.add(path, "exactly one of max or perKey", value);
    return undefined;
  }
  const limitPath = join(path, keyed ? "perKey" : "max");
  const max = checkInt(issues, limitPath, keyed ? value.perKey : value.max, { min: 0, max: MAX_LIMIT, expected: `an integer from 0 to ${MAX_LIMIT}` });
  const maxqueue = optionalLimit(issues, join(path, "maxqueue"), value.maxqueue);
  return max === undefined ? undefined : { max, maxqueue, keyed };
}

function parseBackend(issues: Issues, path: string, value: unknown): BackendSpec | undefined {
  const obj = checkObject(issues, path, value);
  if (!obj) return undefined;
  checkKnownKeys(issues, path, obj, ["balance", "max", "maxqueue", "servers"]);
  const balance = obj.balance === undefined ? "roundrobin" : checkOneOf(issues, join(path, "balance"), obj.balance, BALANCES);
  const max = optionalLimit(issues, join(path, "max"), obj.max);
  const maxqueue = optionalLimit(issues, join(path, "maxqueue"), obj.maxqueue);
  const serversPath = join(path, "servers");
  const serversObj = checkObject(issues, serversPath, obj.servers);
  const servers: ServerSpec[] = [];
  for (const [name, s] of Object.entries(serversObj ?? {})) {
    const p = join(serversPath, name);
    if (checkName(issues, p, name) === undefined) continue;
    const server = checkObject(issues, p, s);
    if (!server) continue;
    checkKnownKeys(issues, p, server, ["max", "maxqueue", "weight", "down"]);
    const weight = server.weight === undefined ? 1 : checkInt(issues, join(p, "weight"), server.weight, { min: 1, max: MAX_WEIGHT });
    if (server.down !== undefined && typeof server.down !== "boolean") issues.add(join(p, "down"), "a boolean", server.down);
    servers.push({
      name,
      max: optionalLimit(issues, join(p, "max"), server.max),
      maxqueue: optionalLimit(issues, join(p, "maxqueue"), server.maxqueue),
      weight: weight ?? 1,
      down: server.down === true,
    });
  }
  if (serversObj && servers.length === 0 && Object.keys(serversObj).length === 0) {
    issues.add(serversPath, "at least one server", serversObj);
  }
  if (balance === undefined) return undefined;
  return { balance, max, maxqueue, servers };
}

/** Scope names that the spec implies for backends and servers. */
export function backendScope(backend: string): string {
  return `backend:${backend}`;
}
export function serverScope(backend: string, server: string): string {
  return `server:${backend}/${server}`;
}
