/**
 * The limits of one group, in the normalised, JSON-safe form that every store receives. Users
 * write {@link LimitsOption} and {@link BackendsOption}; {@link buildGroupSpec} validates them and
 * produces a {@link GroupSpec}. `null` means "no limit" (HAProxy's `maxconn 0`).
 */
import { SlotgateConfigError } from "./errors.js";
import {
  Issues,
  boolean,
  check,
  choose,
  int,
  isPlainObject,
  mapping,
  nameSchema,
  object,
  oneOf,
  optional,
  refuse,
  report,
  refine,
  type Schema,
  rule,
  reportUnknownKeys,
  own,
  nested,
} from "./validate.js";

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

const LIMIT_EXPECTED = `an integer from 0 to ${MAX_LIMIT}`;
const limitValue = int({ min: 0, max: MAX_LIMIT, expected: LIMIT_EXPECTED });
/** Omitted: no limit. */
const optionalLimit = optional(limitValue, null);

/** A limit's name; `backend:` and `server:` scopes are implied by the backends. */
const limitName = refine(nameSchema, (limit, addIssue) => {
  if (!limit.startsWith("backend:") && !limit.startsWith("server:")) return limit;
  report(addIssue, "a limit name not starting with backend: or server: (declare those under backends)", limit);
  return undefined;
});

const limitObject = rule((value, addIssue): ScopeSpec | undefined => {
  const obj = value as Record<string, unknown>;
  reportUnknownKeys(addIssue, obj, ["max", "perKey", "maxqueue"]);
  const keyed = own(obj, "perKey") !== undefined;
  if (keyed === (own(obj, "max") !== undefined)) return report(addIssue, "exactly one of max or perKey", obj);
  const key = keyed ? "perKey" : "max";
  const max = nested(addIssue, key, limitValue, own(obj, key));
  const maxqueue = nested(addIssue, "maxqueue", optionalLimit, own(obj, "maxqueue"));
  return max === undefined || maxqueue === undefined ? undefined : { max, maxqueue, keyed };
});

const limit: Schema<ScopeSpec> = choose((value) =>
  typeof value === "number"
    ? refine(limitValue, (max) => ({ max, maxqueue: null, keyed: false }))
    : isPlainObject(value)
      ? limitObject
      : refuse("a number, { max, maxqueue? } or { perKey, maxqueue? }"),
);

const server = object(
  {
    weight: optional(int({ min: 1, max: MAX_WEIGHT }), 1),
    down: optional(boolean(), false),
    max: optionalLimit,
    maxqueue: optionalLimit,
  },
  "an object",
  ["max", "maxqueue", "weight", "down"],
);

const servers = refine(
  mapping(nameSchema, () => server),
  ({ entries, names }, addIssue): ServerSpec[] | undefined => {
    if (names.length === 0) return report(addIssue, "at least one server", entries);
    return names.map((n) => {
      const { max, maxqueue, weight, down } = entries[n]!;
      return { name: n, max, maxqueue, weight, down };
    });
  },
);

const backend: Schema<BackendSpec> = object({
  balance: optional(oneOf(BALANCES), "roundrobin" as const),
  max: optionalLimit,
  maxqueue: optionalLimit,
  servers,
});

/** `limits` as users write them ({@link LimitsOption}), into the spec's scopes. */
export const limitsSchema = refine(
  mapping(limitName, () => limit),
  ({ entries }) => ({ ...entries }),
);
/** `backends` as users write them ({@link BackendsOption}), into the spec's backends, servers in declared order. */
export const backendsSchema = refine(
  mapping(nameSchema, () => backend),
  ({ entries }) => ({ ...entries }),
);

export function buildGroupSpec(limits: unknown, backends: unknown, path = ""): GroupSpec {
  const issues = new Issues();
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  const spec: GroupSpec = {
    limits: limits === undefined ? {} : (check(issues, at("limits"), limitsSchema, limits) ?? {}),
    backends: backends === undefined ? {} : (check(issues, at("backends"), backendsSchema, backends) ?? {}),
  };
  if (!issues.empty) throw new SlotgateConfigError(issues.list);
  return spec;
}

/** Scope names that the spec implies for backends and servers. */
export function backendScope(backend: string): string {
  return `backend:${backend}`;
}
export function serverScope(backend: string, server: string): string {
  return `server:${backend}/${server}`;
}
