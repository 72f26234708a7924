/**
 * From an {@link EdgeConfig} to the library: the {@link GuardOptions} for `createGuard` (everything
 * but the store, which the caller builds from `config.store`), and a planner that turns a request
 * on a frontend into the {@link AcquireOptions} of its chain.
 *
 * Scopes:
 * - `global`                               global.maxconn (only when set)
 * - `frontend:<name>`                      the frontend's maxconn (1e9 when unset, so it is counted)
 * - `frontend:<name>:<limit>:<value>`      a keyed limit, `{ perKey: maxconn }`, per distinct value
 * - `backend:<name>`, `server:<b>/<s>`     from `backends` (pool-wide maxconn, per-server maxconn)
 *
 * A request whose key value is longer than the core accepts (1024 characters) is not admitted
 * under a shared "too long" bucket, nor let through unkeyed: the planner answers with a 4xx
 * (431 for a header, 414 for the path or a query parameter) for the edge node to send. The same
 * holds for a frontend's `fair_by` value, which becomes the acquire's `flow` (a flow name follows
 * the keyed value's rule); a request without one has no flow.
 */
import type { AcquireOptions } from "../../core/acquire-options.js";
import { MAX_KEY_LENGTH } from "../../core/acquire-options.js";
import { SlotgateError } from "../../core/errors.js";
import type { GuardOptions } from "../../core/guard.js";
import { MAX_LIMIT, type BackendOption, type BackendsOption, type LimitsOption, type ServerOption } from "../../core/spec.js";
import { compileConditions, keyValue, type LimitKey, type Matcher, type RequestFacts } from "./match.js";
import type { BackendConfig, EdgeConfig, FrontendConfig } from "./schema.js";

export type { RequestFacts } from "./match.js";

/** The guard options of a config: pass them to `createGuard({ ...toGuardOptions(config), store })`. */
export type EdgeGuardOptions = Omit<GuardOptions, "store"> & { group: string; limits: LimitsOption; backends: BackendsOption };

export const GLOBAL_SCOPE = "global";

export function frontendScope(frontend: string): string {
  return `frontend:${frontend}`;
}

/** The keyed limit's name; its scopes are `<this>:<value>`. */
export function keyedLimitName(frontend: string, limit: string): string {
  return `frontend:${frontend}:${limit}`;
}

export function toGuardOptions(config: EdgeConfig): EdgeGuardOptions {
  const limits: LimitsOption = {};
  if (config.global.maxconn !== null) limits[GLOBAL_SCOPE] = config.global.maxconn;
  for (const f of Object.values(config.frontends)) {
    limits[frontendScope(f.name)] = f.maxconn ?? MAX_LIMIT;
    for (const l of f.limits) {
      limits[keyedLimitName(f.name, l.name)] = l.maxqueue === null ? { perKey: l.maxconn } : { perKey: l.maxconn, maxqueue: l.maxqueue };
    }
  }
  const backends: BackendsOption = {};
  for (const b of Object.values(config.backends)) backends[b.name] = toBackendOption(b);
  const options: EdgeGuardOptions = { group: config.group, limits, backends, onStoreError: config.onStoreError };
  if (config.version !== null) options.version = config.version;
  if (config.localShare !== null) options.localShare = config.localShare;
  if (config.queue !== null) options.queue = { ...config.queue, flowWeights: { ...config.queue.flowWeights } };
  return options;
}

function toBackendOption(b: BackendConfig): BackendOption {
  const servers: Record<string, ServerOption> = {};
  for (const s of b.servers) {
    const server: ServerOption = { weight: s.weight };
    if (s.maxconn !== null) server.max = s.maxconn;
    if (s.maxqueue !== null) server.maxqueue = s.maxqueue;
    if (s.down) server.down = true;
    servers[s.name] = server;
  }
  const option: BackendOption = { balance: b.balance, servers };
  if (b.maxconn !== null) option.max = b.maxconn;
  if (b.maxqueue !== null) option.maxqueue = b.maxqueue;
  return option;
}

/** What to do with a request: acquire with these options, or answer at once with a 4xx. */
export type AcquirePlan =
  | { ok: true; frontend: FrontendConfig; backend: BackendConfig; options: AcquireOptions & { scopes: string[]; backend: string } }
  | { ok: false; status: 414 | 431; message: string };

export type RequestPlanner = (frontend: string, facts: RequestFacts) => AcquirePlan;

interface CompiledFrontend {
  frontend: FrontendConfig;
  backend: BackendConfig;
  baseScopes: string[];
  rules: Array<{ matches: Matcher | null; priority: { class: number; offsetMs: number } }>;
  keyed: Array<{ scope: string; key: LimitKey; name: string }>;
}

/** A request's key value (a keyed limit's, or the fairness flow), or the 4xx for an over-long one. */
function readKey(key: LimitKey, facts: RequestFacts): { value: string | undefined } | AcquirePlan {
  const value = keyValue(key, facts);
  return value !== undefined && value.length > MAX_KEY_LENGTH ? tooLong(key) : { value };
}

/**
 * Compiles every frontend's rules once and returns the planner. Asking for a frontend the config
 * does not have is a programming error: it throws a {@link SlotgateError} (`SLOTGATE_UNKNOWN_SCOPE`).
 */
export function createRequestPlanner(config: EdgeConfig): RequestPlanner {
  const compiled = new Map<string, CompiledFrontend>();
  for (const f of Object.values(config.frontends)) {
    const backend = config.backends[f.defaultBackend];
    if (!backend) throw new SlotgateError("SLOTGATE_INVALID_CONFIG", `frontend ${f.name}: unknown backend ${f.defaultBackend}`);
    const baseScopes = config.global.maxconn === null ? [frontendScope(f.name)] : [GLOBAL_SCOPE, frontendScope(f.name)];
    compiled.set(f.name, {
      frontend: f,
      backend,
      baseScopes,
      rules: f.priority.map((r) => ({ matches: r.if === null ? null : compileConditions(r.if), priority: { class: r.class, offsetMs: r.offsetMs } })),
      keyed: f.limits.map((l) => ({ scope: keyedLimitName(f.name, l.name), key: l.key, name: l.name })),
    });
  }

  return (frontendName, facts) => {
    const c = compiled.get(frontendName);
    if (!c) throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown frontend: ${String(frontendName).slice(0, 80)}`);
    const scopes = [...c.baseScopes];
    for (const k of c.keyed) {
      const read = readKey(k.key, facts);
      if (!("value" in read)) return read;
      if (read.value !== undefined) scopes.push(`${k.scope}:${read.value}`);
    }
    const fairBy = c.frontend.fairBy;
    const flow = fairBy === null ? undefined : readKey(fairBy, facts);
    if (flow !== undefined && !("value" in flow)) return flow;
    const options: AcquireOptions & { scopes: string[]; backend: string } = {
      scopes,
      backend: c.backend.name,
      queueTimeoutMs: c.backend.timeout.queueMs,
      leaseTtlMs: c.backend.leaseTtlMs,
    };
    const rule = c.rules.find((r) => r.matches === null || r.matches(facts));
    if (rule) options.priority = { ...rule.priority };
    if (flow?.value !== undefined) options.flow = flow.value;
    if (c.frontend.queueTimeoutEarly) options.queueTimeoutEarly = true;
    return { ok: true, frontend: c.frontend, backend: c.backend, options };
  };
}

function tooLong(key: LimitKey): AcquirePlan {
  const limit = `longer than ${MAX_KEY_LENGTH} characters`;
  switch (key.kind) {
    case "header":
      return { ok: false, status: 431, message: `header ${key.name} is ${limit}` };
    case "query":
      return { ok: false, status: 414, message: `query parameter ${key.name} is ${limit}` };
    default:
      return { ok: false, status: 414, message: `the path is ${limit}` };
  }
}
