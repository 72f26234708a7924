/**
 * The limits of one group, in the normalised, JSON-safe form that every store receives. Users
 * write {@link LimitsOption} and {@link BackendsOption}; {@link buildGroupSpec} validates them and
 * produces a {@link GroupSpec}. `null` means "no limit" (HAProxy's `maxconn 0`).
 */
import { SlotgateConfigError } from "./errors.js";
import {
  Issues,
  accept,
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

/** How a group's queue behaves under overload (docs/semantics.md, rule D). */
export type Discipline = "fifo" | "codel" | "lifo";
export const DISCIPLINES: readonly Discipline[] = ["fifo", "codel", "lifo"];

/** The queue section of a spec: the discipline and the weights of fair queuing (rule F). */
export interface QueueSpec {
  discipline: Discipline;
  /** The standing-queue detector's target wait, ms (integer 1..60 000). */
  targetMs: number;
  /** How long the minimum wait must stay above the target before the queue stands, ms (integer 1..600 000). */
  intervalMs: number;
  /** Flow name -> weight, integer 1..1000; flows not listed weigh 1. At most 1000 entries. */
  flowWeights: Record<string, number>;
}

/** The queue section as users write it: every field optional. */
export interface QueueOption {
  /** @default "fifo" */
  discipline?: Discipline;
  /** @default 5 */
  targetMs?: number;
  /** @default 100 */
  intervalMs?: number;
  /** @default {} (every flow weighs 1) */
  flowWeights?: Record<string, number>;
}

export interface GroupSpec {
  limits: Record<string, ScopeSpec>;
  backends: Record<string, BackendSpec>;
  /** Absent: fifo, every flow weighs 1. */
  queue?: QueueSpec;
}

export const MAX_LIMIT = 1_000_000_000;

/** Own-property lookup: a scope named `constructor` must not find Object.prototype's. */
export function ownEntry<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
export const MAX_WEIGHT = 256;

export const QUEUE_DEFAULTS: Readonly<Omit<QueueSpec, "flowWeights">> = { discipline: "fifo", targetMs: 5, intervalMs: 100 };
export const MAX_TARGET_MS = 60_000;
export const MAX_INTERVAL_MS = 600_000;
export const MAX_FLOW_WEIGHT = 1000;
export const MAX_FLOW_WEIGHTS = 1000;
/** Longest flow name, and longest key value of a keyed scope (`tenant:<value>`), in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;
export const KEY_VALUE_EXPECTED = `a string of 1 to ${MAX_KEY_LENGTH} characters`;

/** A keyed limit's value or a flow name: any string of 1..1024 UTF-16 code units (stores keep it as data, stats digest it). */
export function isKeyValue(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_KEY_LENGTH;
}

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

/**
 * A flow name may be a secret (an API key under `fair_by: { header: x-api-key }`), so no issue
 * shows one: an invalid name is shown by its length, and an issue about a weight names the flow
 * by its place in the mapping. The edge node's `flow_weights` uses the same rule.
 */
export const flowNameSchema: Schema<string> = rule((value, addIssue) =>
  isKeyValue(value)
    ? value
    : report(addIssue, `a flow name of 1 to ${MAX_KEY_LENGTH} characters`, typeof value === "string" ? `(${value.length} characters, not shown)` : value),
);

const FLOW_WEIGHTS_EXPECTED = `a mapping of flow names (1 to ${MAX_KEY_LENGTH} characters) to weights, at most ${MAX_FLOW_WEIGHTS} of them`;
const flowWeightLeaf = (place: number) =>
  int({ min: 1, max: MAX_FLOW_WEIGHT, expected: `an integer weight from 1 to ${MAX_FLOW_WEIGHT} (flow ${place} of the list)` });

/** Flow name -> weight, as a plain object (it crosses structured clone to a Durable Object). */
export const flowWeightsSchema: Schema<Record<string, number>> = refine(
  accept<Record<string, unknown>>(isPlainObject, FLOW_WEIGHTS_EXPECTED),
  (obj, addIssue) => {
    const names = Object.keys(obj);
    if (names.length > MAX_FLOW_WEIGHTS) return report(addIssue, FLOW_WEIGHTS_EXPECTED, `${names.length} flows`);
    const out: Record<string, number> = {};
    let ok = true;
    for (const [i, name] of names.entries()) {
      const length = name.length;
      if (!isKeyValue(name)) {
        report(addIssue, `a flow name of 1 to ${MAX_KEY_LENGTH} characters (flow ${i + 1} of the list)`, `(${length} characters, not shown)`);
        ok = false;
        continue;
      }
      const weight = nested(addIssue, undefined, flowWeightLeaf(i + 1), own(obj, name));
      if (weight === undefined) ok = false;
      // defineProperty: a flow named `__proto__` is an entry like any other.
      else Object.defineProperty(out, name, { value: weight, enumerable: true, writable: true, configurable: true });
    }
    return ok ? out : undefined;
  },
);

/** `queue` as users write it ({@link QueueOption}), into the spec's {@link QueueSpec}, defaults filled in. */
export const queueSchema: Schema<QueueSpec> = object(
  {
    discipline: optional(oneOf(DISCIPLINES), QUEUE_DEFAULTS.discipline),
    targetMs: optional(int({ min: 1, max: MAX_TARGET_MS }), QUEUE_DEFAULTS.targetMs),
    intervalMs: optional(int({ min: 1, max: MAX_INTERVAL_MS }), QUEUE_DEFAULTS.intervalMs),
    flowWeights: optional(flowWeightsSchema, {}),
  },
  "an object { discipline?, targetMs?, intervalMs?, flowWeights? }",
);

/**
 * The spec of `limits`, `backends` and `queue` as users write them. `queue` omitted: the spec has
 * no queue section (fifo, every flow weighs 1), and hashes as it did before queue sections.
 */
export function buildGroupSpec(limits: unknown, backends: unknown, queue?: unknown, path = ""): GroupSpec {
  const issues = new Issues();
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  const spec: GroupSpec = {
    limits: limits === undefined ? {} : (check(issues, at("limits"), limitsSchema, limits) ?? {}),
    backends: backends === undefined ? {} : (check(issues, at("backends"), backendsSchema, backends) ?? {}),
  };
  if (queue !== undefined) {
    const q = check(issues, at("queue"), queueSchema, queue);
    if (q) spec.queue = q;
  }
  if (!issues.empty) throw new SlotgateConfigError(issues.list);
  return spec;
}

/** The weight of a flow under a queue section (1 when unlisted or without one). */
export function flowWeight(queue: QueueSpec | undefined, flow: string): number {
  return (queue && ownEntry(queue.flowWeights, flow)) ?? 1;
}

/** Scope names that the spec implies for backends and servers. */
export function backendScope(backend: string): string {
  return `backend:${backend}`;
}
export function serverScope(backend: string, server: string): string {
  return `server:${backend}/${server}`;
}
