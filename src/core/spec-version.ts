/**
 * Spec versions (SPEC §2 rule 13): the store keeps a group's spec together with a version. A push
 * with a higher version replaces it; an equal version with a different spec is refused (a coded
 * {@link SlotgateError} `SLOTGATE_SPEC_CONFLICT` whose message names what differs); a lower version
 * leaves the stored spec alone, and the pushing node runs under it.
 *
 * Unversioned pushes keep the behaviour from before versions: between themselves the last pusher
 * wins. A versioned spec outranks an unversioned one either way (a versioned push replaces an
 * unversioned spec; an unversioned push never replaces a versioned one).
 *
 * "Equal spec" means equal canonical JSON of the normalised {@link GroupSpec} (what
 * `buildGroupSpec` produces): object keys sorted at every level, arrays (a backend's servers, in
 * declared order, which `balance first` depends on) kept in order. Key order never matters.
 *
 * The memory store and the Durable Object decide with {@link decideSpec}; the Redis configure
 * script mirrors it.
 */
import { SlotgateError } from "./errors.js";
import type { BackendSpec, GroupSpec, QueueSpec, ScopeSpec, ServerSpec } from "./spec.js";
import { QUEUE_DEFAULTS, backendScope, serverScope } from "./spec.js";

/** Versions are integers from 1 to this (exact in a double, and in Lua). */
export const MAX_SPEC_VERSION = Number.MAX_SAFE_INTEGER;

/** A valid version, or undefined. */
export function isSpecVersion(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_SPEC_VERSION;
}

/** The spec as canonical JSON: sorted object keys at every level, arrays in order. */
export function canonicalSpecJson(spec: GroupSpec): string {
  return JSON.stringify(sortKeys(spec));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) Object.defineProperty(out, key, { value: sortKeys(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** What a store does with a pushed spec. */
export type SpecDecision = "install" | "keep" | "conflict";

/**
 * The rule. `stored` is undefined when the group has no spec yet; versions are null when
 * unversioned; `json` is canonical ({@link canonicalSpecJson}).
 */
export function decideSpec(stored: { version: number | null; json: string } | undefined, version: number | null, json: string): SpecDecision {
  if (stored === undefined || stored.version === null) return "install";
  if (version === null || version < stored.version) return "keep";
  if (version > stored.version) return "install";
  return stored.json === json ? "install" : "conflict";
}

const MAX_LISTED = 12;

/**
 * What differs between two specs, one phrase each, in scope names:
 * `frontend:web max 10 (stored) vs 20 (this node)`, `scope frontend:api only in this node's spec`.
 */
export function describeSpecDifferences(stored: GroupSpec, mine: GroupSpec): string[] {
  const out: string[] = [];
  const vs = (what: string, a: unknown, b: unknown) => {
    if (a !== b) out.push(`${what} ${show(a)} (stored) vs ${show(b)} (this node)`);
  };
  const only = (name: string, inStored: boolean) => out.push(`${name} only in ${inStored ? "the stored spec" : "this node's spec"}`);
  for (const name of union(Object.keys(stored.limits), Object.keys(mine.limits))) {
    const a = own<ScopeSpec>(stored.limits, name);
    const b = own<ScopeSpec>(mine.limits, name);
    if (!a || !b) {
      only(name, b === undefined);
      continue;
    }
    if (a.keyed !== b.keyed) out.push(`${name} ${a.keyed ? "keyed" : "not keyed"} (stored) vs ${b.keyed ? "keyed" : "not keyed"} (this node)`);
    vs(`${name} ${a.keyed && b.keyed ? "perKey" : "max"}`, a.max, b.max);
    vs(`${name} maxqueue`, a.maxqueue, b.maxqueue);
  }
  for (const name of union(Object.keys(stored.backends), Object.keys(mine.backends))) {
    const a = own<BackendSpec>(stored.backends, name);
    const b = own<BackendSpec>(mine.backends, name);
    const scope = backendScope(name);
    if (!a || !b) {
      only(scope, b === undefined);
      continue;
    }
    vs(`${scope} balance`, a.balance, b.balance);
    vs(`${scope} max`, a.max, b.max);
    vs(`${scope} maxqueue`, a.maxqueue, b.maxqueue);
    const servers = (list: ServerSpec[]) => new Map(list.map((s) => [s.name, s]));
    const sa = servers(a.servers);
    const sb = servers(b.servers);
    for (const server of union([...sa.keys()], [...sb.keys()])) {
      const x = sa.get(server);
      const y = sb.get(server);
      const sc = serverScope(name, server);
      if (!x || !y) {
        only(sc, y === undefined);
        continue;
      }
      vs(`${sc} max`, x.max, y.max);
      vs(`${sc} maxqueue`, x.maxqueue, y.maxqueue);
      vs(`${sc} weight`, x.weight, y.weight);
      vs(`${sc} down`, x.down, y.down);
    }
    const order = (list: ServerSpec[]) =>
      list
        .map((s) => s.name)
        .filter((n) => sa.has(n) && sb.has(n))
        .join(",");
    if (order(a.servers) !== order(b.servers)) vs(`${scope} server order`, order(a.servers), order(b.servers));
  }
  describeQueueDifferences(stored.queue, mine.queue, vs, out);
  return out;
}

/** The queue sections' differences; an absent section reads as the defaults with no weights. */
function describeQueueDifferences(
  stored: QueueSpec | undefined,
  mine: QueueSpec | undefined,
  vs: (what: string, a: unknown, b: unknown) => void,
  out: string[],
): void {
  const a = stored ?? { ...QUEUE_DEFAULTS, flowWeights: {} };
  const b = mine ?? { ...QUEUE_DEFAULTS, flowWeights: {} };
  // Flow names are client data (tenants, API keys): only how many weights differ is said.
  const flows = union(Object.keys(a.flowWeights), Object.keys(b.flowWeights));
  const differing = flows.filter((f) => own(a.flowWeights, f) !== own(b.flowWeights, f)).length;
  const same = a.discipline === b.discipline && a.targetMs === b.targetMs && a.intervalMs === b.intervalMs && differing === 0;
  // A section spelling out the defaults still differs from none in the spec's JSON.
  if (same && (stored === undefined) !== (mine === undefined)) return vs("queue section", stored ? "present" : "absent", mine ? "present" : "absent");
  vs("queue discipline", a.discipline, b.discipline);
  vs("queue targetMs", a.targetMs, b.targetMs);
  vs("queue intervalMs", a.intervalMs, b.intervalMs);
  if (differing > 0) out.push(`queue flowWeights: ${differing} flow${differing === 1 ? "" : "s"} weighted differently`);
}

/** The error of a push refused under rule 13 (same version, different spec). */
export function specConflictError(group: string, version: number, stored: GroupSpec | undefined, mine: GroupSpec): SlotgateError {
  const diffs = stored === undefined ? [] : describeSpecDifferences(stored, mine);
  const listed = diffs.length > MAX_LISTED ? [...diffs.slice(0, MAX_LISTED), `and ${diffs.length - MAX_LISTED} more`] : diffs;
  const what = listed.length === 0 ? "the specs differ" : listed.join("; ");
  return new SlotgateError(
    "SLOTGATE_SPEC_CONFLICT",
    `group ${group}: the store keeps a different spec under the same version ${version} (raise version with every change of limits): ${what}`,
  );
}

function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}

function show(value: unknown): string {
  if (value === null) return "none";
  return String(value);
}
