/**
 * Turns the caller's acquire options into the store's {@link ChainRequest}: checks every field,
 * resolves scope names against the group's spec (so an unknown scope fails here, with no store
 * round trip), and removes duplicates.
 */
import { SlotgateConfigError, SlotgateError } from "./errors.js";
import { MAX_KEY_LENGTH, flowNameSchema, isKeyValue, ownEntry, type GroupSpec } from "./spec.js";
import { PRIORITY_CLASS_MAX, PRIORITY_CLASS_MIN, PRIORITY_OFFSET_MAX_MS, PRIORITY_OFFSET_MIN_MS } from "./state/order.js";
import type { ChainRequest } from "./store.js";
import { accept, int, parse, parseLeaf } from "./validate.js";

export interface AcquireOptions {
  /** Named and keyed scopes, e.g. `["global", "frontend:web", "tenant:acme"]`. */
  scopes?: readonly string[];
  /** Take a slot on one of this backend's servers, chosen by its `balance`. */
  backend?: string;
  /** Take this server of `backend` (persistence), or `"<backend>/<server>"` without `backend`. */
  server?: string;
  /** HAProxy's set-priority-class (−2047…2047, lower first) and set-priority-offset (±524287 ms). */
  priority?: { class?: number; offsetMs?: number };
  /** How long to wait in the queue; 0 rejects at once with `full`. @default guard's defaults.queueTimeoutMs (0) */
  queueTimeoutMs?: number;
  /** Lease lifetime on the store's clock; renewed automatically while held. @default guard's defaults.leaseTtlMs (30000) */
  leaseTtlMs?: number;
  /** Aborting removes the ticket from the queue at once (reason `aborted`). */
  signal?: AbortSignal;
  /** Renew the lease every ttl/3 while it is held. @default true */
  autoRenew?: boolean;
  /**
   * The fairness flow (a tenant, an API key): within a priority class, waiting tickets are served
   * fairly across flows, weighted by the group's `queue.flowWeights`. 1–1024 characters, as a
   * keyed limit's value. Omitted: a flow of its own.
   */
  flow?: string;
  /**
   * Reject at once (`queue-timeout`, with `retryAfterMs` from the estimate) when the store
   * estimates that the wait would exceed `queueTimeoutMs`. @default guard's defaults.queueTimeoutEarly (false)
   */
  queueTimeoutEarly?: boolean;
}

export { MAX_KEY_LENGTH };
export const MAX_TTL_MS = 24 * 3600 * 1000;

export interface RequestDefaults {
  queueTimeoutMs: number;
  leaseTtlMs: number;
  queueTimeoutEarly: boolean;
}

function bad(path: string, expected: string, received: unknown): never {
  throw new SlotgateConfigError([{ path, expected, received }]);
}

// Leaves, run through parseLeaf: this is the hot path of every acquire.
const priorityObject = accept<{ class?: unknown; offsetMs?: unknown }>((x) => typeof x === "object" && x !== null, "an object { class?, offsetMs? }");
const priorityClassLeaf = int({ min: PRIORITY_CLASS_MIN, max: PRIORITY_CLASS_MAX });
const priorityOffset = int({ min: PRIORITY_OFFSET_MIN_MS, max: PRIORITY_OFFSET_MAX_MS });
const queueTimeout = int({ min: 0, max: MAX_TTL_MS });
const leaseTtl = int({ min: 1, max: MAX_TTL_MS });
const scopeList = accept<unknown[]>(Array.isArray, "an array of scope names");
const scopeName = accept<string>((x) => typeof x === "string", "a scope name (string)");
const backendName = accept<string>((x) => typeof x === "string", "a backend name");
const serverName = accept<string>((x) => typeof x === "string", "a server name");
const earlyFlag = accept<boolean>((x) => typeof x === "boolean", "a boolean");

export function toChainRequest(options: AcquireOptions, spec: GroupSpec, defaults: RequestDefaults): ChainRequest {
  if (typeof options !== "object" || options === null) bad("options", "an object", options);
  let backend = options.backend;
  let server = options.server;
  const scopes: string[] = [];
  const raw = options.scopes === undefined ? [] : parseLeaf(scopeList, options.scopes, "scopes");
  for (let i = 0; i < raw.length; i++) {
    const name = parseLeaf(scopeName, raw[i], `scopes[${i}]`);
    if (name.startsWith("backend:")) {
      backend = sameOrThrow("backend", backend, name.slice(8));
    } else if (name.startsWith("server:")) {
      const [b, s] = splitServer(`scopes[${i}]`, name.slice(7));
      backend = sameOrThrow("backend", backend, b);
      server = sameOrThrow("server", server, s);
    } else {
      checkScope(spec, name);
      if (!scopes.includes(name)) scopes.push(name);
    }
  }
  if (server !== undefined) server = parseLeaf(serverName, server, "server");
  if (server !== undefined && backend === undefined) [backend, server] = splitServer("server", server);
  else if (server !== undefined && server.includes("/")) {
    const [b, s] = splitServer("server", server);
    backend = sameOrThrow("backend", backend, b);
    server = s;
  }
  if (backend !== undefined) {
    backend = parseLeaf(backendName, backend, "backend");
    const b = ownEntry(spec.backends, backend);
    if (!b) throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown backend: ${clip(backend)}`);
    if (server !== undefined && !b.servers.some((s) => s.name === server)) {
      throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown server: ${clip(backend)}/${clip(server)}`);
    }
  }

  const p = options.priority === undefined ? undefined : parseLeaf(priorityObject, options.priority, "priority");
  const priorityClass = p?.class === undefined ? 0 : parseLeaf(priorityClassLeaf, p.class, "priority.class");
  const priorityOffsetMs = p?.offsetMs === undefined ? 0 : parseLeaf(priorityOffset, p.offsetMs, "priority.offsetMs");
  const queueTimeoutMs = options.queueTimeoutMs === undefined ? defaults.queueTimeoutMs : parseLeaf(queueTimeout, options.queueTimeoutMs, "queueTimeoutMs");
  const leaseTtlMs = options.leaseTtlMs === undefined ? defaults.leaseTtlMs : parseLeaf(leaseTtl, options.leaseTtlMs, "leaseTtlMs");

  // Not parseLeaf: a refused flow (maybe an API key) must not be echoed in the error.
  const flow = options.flow === undefined || isKeyValue(options.flow) ? options.flow : parse(flowNameSchema, options.flow, "flow");
  const early = options.queueTimeoutEarly === undefined ? defaults.queueTimeoutEarly : parseLeaf(earlyFlag, options.queueTimeoutEarly, "queueTimeoutEarly");

  const request: ChainRequest = { scopes, priorityClass, priorityOffsetMs, queueTimeoutMs, leaseTtlMs };
  if (backend !== undefined) request.backend = backend;
  if (server !== undefined) request.server = server;
  if (flow !== undefined) request.flow = flow;
  if (early) request.early = true;
  return request;
}

function sameOrThrow(what: string, current: string | undefined, next: string): string {
  if (current !== undefined && current !== next) bad(what, `one ${what} per acquire, got ${clip(current)} and`, next);
  return next;
}

function splitServer(path: string, value: string): [string, string] {
  const slash = value.indexOf("/");
  if (slash <= 0 || slash === value.length - 1) bad(path, "<backend>/<server>", value);
  return [value.slice(0, slash), value.slice(slash + 1)];
}

/** A scope is a named limit, or `<keyed limit>:<value>` with a value of 1–1024 characters. */
export function checkScope(spec: GroupSpec, name: string): void {
  const named = ownEntry(spec.limits, name);
  if (named && !named.keyed) return;
  if (named?.keyed) throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `scope ${name} is a keyed limit: name a key, e.g. ${name}:<value>`);
  for (let i = name.indexOf(":"); i > 0; i = name.indexOf(":", i + 1)) {
    if (!ownEntry(spec.limits, name.slice(0, i))?.keyed) continue;
    if (!isKeyValue(name.slice(i + 1))) {
      throw new SlotgateConfigError([{ path: "scopes", expected: `a key value of 1 to ${MAX_KEY_LENGTH} characters`, received: name }]);
    }
    return;
  }
  throw new SlotgateError("SLOTGATE_UNKNOWN_SCOPE", `unknown scope: ${clip(name)}`);
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
