/**
 * The Durable Object store for code that runs inside Workers: the {@link SlotStore} contract
 * through the client (`client.ts`) over Durable Object RPC (`rpc-transport.ts`), backed by one
 * `SlotGroup` object per group. Exported as `createDurableObjectStore` from `slotgate/cloudflare`.
 *
 * - Cost: one RPC per uncontended acquire and one per release when alone; the calls a handle makes
 *   in one turn of the event loop go as one `batch` RPC. A queued acquire is one pending RPC (its
 *   own, or a `wait` after its batch), with no polling. Each `open()` also sends one `configure`.
 * - `configureOnce`: for a store that lives as long as the isolate while guards live for one
 *   request (the slotgate Worker: a Durable Object stub cannot outlive the request that made it),
 *   the spec is pushed once per object and spec rather than on every `open()`.
 */
import { SlotgateConfigError } from "../../core/errors.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { GroupStore, OpenOptions, SlotStore, SpecStatus } from "../../core/store.js";
import { canonicalSpecJson } from "../../core/spec-version.js";
import { accept, boolean, int, isPlainObject, object, optional, parse } from "../../core/validate.js";
import { DurableObjectGroup, readStats, type RetryPolicy } from "./client.js";
import { RpcTransport, type SlotGroupNamespace } from "./rpc-transport.js";

export interface DurableObjectStoreOptions {
  /** The namespace binding of the `SlotGroup` class, e.g. `env.SLOT_GROUP`. */
  namespace: SlotGroupNamespace;
  /**
   * Maps a guard's group to the name of its object (`idFromName`). Use it to keep the groups of
   * two environments that share a namespace apart.
   * @default (group) => group
   * @example (group) => `staging/${group}`
   */
  group?: (group: string) => string;
  /** How often an idempotent call is retried after a retryable fault, 0–10. @default 3 */
  retries?: number;
  /** First backoff in ms. It doubles each attempt, with jitter. @default 50 */
  retryDelayMs?: number;
  /**
   * Push a group's spec once per store rather than once per `open()`: an `open()` with the spec
   * this store already configured successfully on that object sends no `configure`. Use it when
   * a guard is created per request and the store per isolate (the object keeps its spec in
   * SQLite, so a restarted object still has it). `guard.configure()` always sends.
   * @default false
   */
  configureOnce?: boolean;
}

const isNamespace = (ns: unknown) =>
  typeof ns === "object" && ns !== null && typeof (ns as SlotGroupNamespace).idFromName === "function" && typeof (ns as SlotGroupNamespace).get === "function";

const rpcStoreOptions = object(
  {
    namespace: accept<SlotGroupNamespace>(isNamespace, "a Durable Object namespace binding of the SlotGroup class (env.SLOT_GROUP)"),
    group: optional(
      accept<(group: string) => string>((x) => typeof x === "function", "a function (group) => object name"),
      undefined,
    ),
    retries: optional(int({ min: 0, max: 10 }), 3),
    retryDelayMs: optional(int({ min: 0, max: 60_000 }), 50),
    configureOnce: optional(boolean(), false),
  },
  "an object { namespace, group?, retries?, retryDelayMs? }",
);

export function createDurableObjectStore(options: DurableObjectStoreOptions): SlotStore {
  const { namespace, group, retries, retryDelayMs, configureOnce } = parse(rpcStoreOptions, options, isPlainObject(options) ? "" : "options");
  const objectName = group ?? ((g: string) => g);
  const policy: RetryPolicy = { retries, delayMs: retryDelayMs };
  /** With configureOnce: object name → version and JSON of the spec last pushed there, with what the object did. */
  const configured = configureOnce ? new Map<string, { key: string; status: SpecStatus }>() : undefined;
  const objectFor = (group: string): string => {
    const name = objectName(group);
    if (typeof name !== "string" || name.length === 0) {
      throw new SlotgateConfigError([{ path: "group", expected: "a function that returns a non-empty object name", received: name }]);
    }
    return name;
  };
  const transportFor = (name: string) => new RpcTransport(() => namespace.get(namespace.idFromName(name)));
  return {
    kind: "durable-object",
    open(group: string, spec: GroupSpec, openOptions: OpenOptions = {}): GroupStore {
      const name = objectFor(group);
      const version = openOptions.version ?? null;
      const transport = transportFor(name);
      if (!configured) return new DurableObjectGroup(transport, group, spec, version, policy);
      const keyOf = (s: GroupSpec, v: number | null) => `${v ?? ""}\n${canonicalSpecJson(s)}`;
      const known = configured.get(name);
      return new DurableObjectGroup(transport, group, spec, version, policy, {
        alreadyConfigured: known?.key === keyOf(spec, version) ? known.status : undefined,
        onConfigured: (s, v, status) => configured.set(name, { key: keyOf(s, v), status }),
      });
    },
    // The object's stats call writes no spec; an object never configured answers an empty group.
    readStats: (group: string): Promise<GroupStatsSnapshot | undefined> => readStats(group, policy, (g) => transportFor(objectFor(g))),
  };
}
