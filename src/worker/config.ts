/**
 * The Worker's config: the edge node's config file (SPEC §5), as JSON in the variable
 * `SLOTGATE_CONFIG`, validated by the very schema `slotgate check` uses. Only JSON: the YAML
 * loader (`load.ts`, which imports `yaml` and `node:fs`) is never imported here.
 *
 * What differs from the Node edge node, because a Worker listens on no socket of its own:
 * - `bind` is optional on every frontend. When present it is validated (one file can serve both
 *   runtimes) and ignored. `store` and `stats` are validated and ignored likewise: the Worker's
 *   store is always its `SlotGroup` binding, and its numbers come from the slot API's `stats`.
 * - The Worker serves one http frontend: the one `SLOTGATE_FRONTEND` names, or the only http
 *   frontend of the file. The other frontends still define scopes of the group's spec, so every
 *   member of the fleet pushes the same spec.
 * - `node.maxconn` counts the requests of one isolate (the closest thing a Worker has to a process).
 */
import { SlotgateConfigError } from "../core/errors.js";
import { isPlainObject } from "../core/validate.js";
import { validateEdgeConfig, type BackendConfig, type EdgeConfig, type FrontendConfig, type ServerConfig } from "../edge/config/schema.js";
import { TrustedForwarders } from "../edge/forwarding.js";
import { createRequestPlanner, toGuardOptions, type EdgeGuardOptions, type RequestPlanner } from "../edge/config/to-guard.js";

/** Largest `SLOTGATE_CONFIG` accepted, in characters (the Node loader's file limit is 1 MiB). */
export const MAX_CONFIG_CHARS = 1024 * 1024;
/** Stands in for a frontend's missing `bind`, so the schema's rule that it is required holds. */
const NO_BIND = "127.0.0.1:0";

export interface WorkerConfig {
  config: EdgeConfig;
  /** The frontend this Worker serves. */
  frontend: FrontendConfig;
  /** Its default backend. */
  backend: BackendConfig;
  servers: ReadonlyMap<string, ServerConfig>;
  guardOptions: EdgeGuardOptions;
  planner: RequestPlanner;
  /** The frontend's `forwarded_for.trusted`: clients whose forwarding headers are kept. */
  trusted: TrustedForwarders;
}

const invalid = (path: string, expected: string, received: unknown) => new SlotgateConfigError([{ path, expected, received }], "SLOTGATE_INVALID_CONFIG");

/**
 * Parses and validates the Worker's config. `value` is the variable as the runtime hands it over:
 * a JSON string (`--var`, `[vars]` string, a secret) or an object (a `[vars]` table).
 * Throws a {@link SlotgateConfigError} (`SLOTGATE_INVALID_CONFIG`) naming every problem.
 */
export function parseWorkerConfig(value: unknown, frontendName?: string): WorkerConfig {
  let raw: unknown = value;
  if (typeof value === "string") {
    if (value.length > MAX_CONFIG_CHARS) throw invalid("SLOTGATE_CONFIG", `at most ${MAX_CONFIG_CHARS} characters of JSON`, `${value.length} characters`);
    try {
      raw = JSON.parse(value);
    } catch (error) {
      // The text itself is not echoed: it may hold the store token.
      throw invalid("SLOTGATE_CONFIG", `JSON (${error instanceof Error ? error.message : "a syntax error"})`, `${value.length} characters that do not parse`);
    }
  }
  const config = validateEdgeConfig(withPlaceholderBinds(raw));

  const http = Object.values(config.frontends).filter((f) => f.mode === "http");
  let frontend: FrontendConfig | undefined;
  if (frontendName !== undefined && frontendName !== "") {
    frontend = Object.hasOwn(config.frontends, frontendName) ? config.frontends[frontendName] : undefined;
    if (frontend?.mode !== "http") {
      throw invalid("SLOTGATE_FRONTEND", `the name of an http frontend of SLOTGATE_CONFIG (${http.map((f) => f.name).join(", ") || "none"})`, frontendName);
    }
  } else if (http.length === 1) {
    frontend = http[0];
  } else {
    throw invalid(
      "SLOTGATE_FRONTEND",
      http.length === 0
        ? "an http frontend in SLOTGATE_CONFIG (a Worker cannot serve tcp)"
        : `the name of the frontend this Worker serves, one of ${http.map((f) => f.name).join(", ")}`,
      frontendName,
    );
  }
  const backend = config.backends[frontend!.defaultBackend]!;
  return {
    config,
    frontend: frontend!,
    backend,
    servers: new Map(backend.servers.map((s) => [s.name, s])),
    guardOptions: toGuardOptions(config),
    planner: createRequestPlanner(config),
    trusted: new TrustedForwarders(frontend!.forwardedFor.trusted),
  };
}

/** A shallow copy of the config in which every frontend object without `bind` has a placeholder. */
function withPlaceholderBinds(raw: unknown): unknown {
  if (!isPlainObject(raw) || !isPlainObject(raw.frontends)) return raw;
  const frontends = Object.create(null) as Record<string, unknown>;
  for (const [name, f] of Object.entries(raw.frontends)) {
    frontends[name] = isPlainObject(f) && f.bind === undefined ? { ...f, bind: NO_BIND } : f;
  }
  return { ...raw, frontends };
}
