/**
 * The wire contract of the `SlotGroup` Durable Object: what its RPC methods take and return.
 *
 * It lives with the store client (`client.ts`) and imports nothing from `cloudflare:workers`:
 * the object (`src/cloudflare/slot-group.ts`), the slot API that serves it over HTTPS, and the
 * client over either transport share one definition of the replies and one mapping from
 * statuses to errors.
 *
 * Every method answers with a {@link Reply}. Status 0 carries the value. A negative status is a
 * {@link StoreStatus} with a detail string, and only {@link unwrap} (through `storeStatusError`)
 * turns it into an error. The object never throws a `SlotgateError` across RPC, because RPC keeps
 * only an error's message and would lose its `code`.
 *
 * Inputs are checked again here. The guard has checked them already, but the object must not
 * trust its callers: the slot API forwards requests from other processes.
 */
import { MAX_KEY_LENGTH, MAX_TTL_MS, checkScope } from "../../core/acquire-options.js";
import { SlotgateConfigError, SlotgateError, StoreStatus, storeStatusError } from "../../core/errors.js";
import { BALANCES, KEY_VALUE_EXPECTED, MAX_LIMIT, MAX_WEIGHT, isKeyValue, queueSchema, type Balance, type GroupSpec } from "../../core/spec.js";
import { PRIORITY_CLASS_MAX, PRIORITY_CLASS_MIN, PRIORITY_OFFSET_MAX_MS, PRIORITY_OFFSET_MIN_MS } from "../../core/state/order.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { ChainRequest, RenewResult, SpecStatus, StoreAcquireResult } from "../../core/store.js";
import { MAX_SPEC_VERSION, isSpecVersion, specConflictError } from "../../core/spec-version.js";
import * as v from "valibot";
import {
  accept,
  boolean,
  int,
  isPlainObject,
  list,
  looseObject,
  mapping,
  nameSchema,
  optional,
  parse,
  report,
  rule,
  refine,
  own,
  parseLeaf,
  type Schema,
} from "../../core/validate.js";
import type { BatchOp } from "./batch-protocol.js";

/** One answer of the object. `status` 0 means success. A negative status is a {@link StoreStatus}. */
export type Reply<T> = { status: 0; value: T } | { status: StoreStatus; detail: string };

/**
 * The RPC surface of `SlotGroup`, as its callers see it. Every call resolves, even a failed
 * one, unless the transport fails. A pending `acquire` is a queued ticket.
 */
export interface SlotGroupRpc {
  /**
   * Grants, rejects, or queues. A queued call stays pending until the ticket is granted, times
   * out, or is cancelled. `waiterId` names the ticket for {@link cancel}. It is unique per
   * acquire (a UUID) and 1–128 characters long.
   *
   * `owner` (the slot API passes it; code in the Worker need not) binds the lease to a secret and
   * the ticket to a token: see {@link LeaseOwner}.
   */
  acquire(request: ChainRequest, waiterId: string, owner?: LeaseOwner): Promise<Reply<StoreAcquireResult>>;
  /**
   * Removes a queued ticket. The pending acquire resolves `aborted`. False if it was no longer
   * queued, or if `token` is given and is not the token that queued it (then nothing changes).
   */
  cancel(waiterId: string, token?: string): Promise<Reply<boolean>>;
  /**
   * Idempotent. False if the lease was already gone, or if `secretHash` is given and is not the
   * hash the lease was granted with (then nothing changes: a wrong secret looks like no lease).
   */
  release(leaseId: string, secretHash?: string): Promise<Reply<boolean>>;
  /** Idempotent. Sets the expiry to now + ttlMs on the object's clock. `secretHash` as for {@link release}. */
  renew(leaseId: string, ttlMs: number, secretHash?: string): Promise<Reply<RenewResult>>;
  /**
   * Idempotent. Stores the spec with its `version` (omitted or null: unversioned) and applies it,
   * under the version rule (SPEC §2 rule 13); a raised limit dispatches the queue. The value says
   * what the object did: see {@link ConfigureOutcome}.
   */
  configure(spec: GroupSpec, version?: number | null): Promise<Reply<ConfigureOutcome | null>>;
  /** Idempotent. Marks a server up (dispatching the queue) or down. */
  setServerState(backend: string, server: string, up: boolean): Promise<Reply<null>>;
  stats(): Promise<Reply<GroupStatsSnapshot>>;
}

/**
 * The batch methods of `SlotGroup` (`batch-protocol.ts`). Apart from {@link SlotGroupRpc}, so
 * that a stub without them (a test double, a deployment from before batches) still fits that
 * type: the RPC transport then sends the calls one by one.
 */
export interface SlotGroupBatchRpc extends SlotGroupRpc {
  /**
   * Several calls in one: applied in order, in one atomic step, each answered at its own index as
   * the call alone would be; an acquire that queues answers `QUEUED` there, and {@link wait}
   * collects its outcome. See `batch-protocol.ts`.
   */
  batch(ops: BatchOp[]): Promise<Reply<Reply<unknown>[]>>;
  /**
   * The outcome of an acquire that queued inside a batch: answers (or stays pending) exactly as
   * that acquire's own call would have. `TicketGone` when the object does not know the ticket (it
   * restarted, the outcome was collected or expired, or `token` is not the one that queued it).
   */
  wait(waiterId: string, token?: string): Promise<Reply<StoreAcquireResult>>;
}

/**
 * What `configure` did with a spec: installed it, kept a stored spec of a higher version (or a
 * versioned one, for an unversioned push), or refused it (the same version with another spec: the
 * stored spec comes along, so the caller can say what differs). `version` is the stored version.
 * An object from before versions answers `null`, which reads as installed.
 */
export type ConfigureOutcome =
  | { result: "installed"; version: number | null }
  | { result: "kept"; version: number | null }
  | { result: "conflict"; version: number; spec: GroupSpec };

/** A configure reply's value as the client's {@link SpecStatus}; a refusal becomes SLOTGATE_SPEC_CONFLICT. */
export function specStatusOf(value: unknown, group: string, spec: GroupSpec, version: number | null): SpecStatus {
  if (value === null) return { installed: true, storedVersion: version };
  if (isPlainObject(value)) {
    const stored = isSpecVersion(value.version) ? value.version : null;
    if (value.result === "installed") return { installed: true, storedVersion: stored };
    if (value.result === "kept") return { installed: false, storedVersion: stored };
    if (value.result === "conflict") {
      let storedSpec: GroupSpec | undefined;
      try {
        storedSpec = checkGroupSpec(value.spec);
      } catch {
        storedSpec = undefined;
      }
      throw specConflictError(group, version ?? stored ?? 0, storedSpec, spec);
    }
  }
  throw new SlotgateError("SLOTGATE_STORE_PROTOCOL", "the Durable Object sent a configure reply slotgate does not understand");
}

/**
 * Who holds what, for calls that come from outside the account (the slot API). The object keeps
 * `secretHash` with the lease (in SQLite, so it survives a restart) and `token` with a queued
 * ticket (in memory, like the ticket). A call that presents them must match; a call that does
 * not (the Worker's own store, trusted code bound to the namespace) is not checked.
 */
export interface LeaseOwner {
  /** SHA-256 (hex) of the lease's secret. The object never sees the secret itself. */
  secretHash: string;
  /** An opaque name of the token that queued the ticket. */
  token: string;
}

export const MAX_ID_LENGTH = 128;
/** At most this many scopes in one chain. A real chain has a handful; this bounds hostile input. */
export const MAX_CHAIN_SCOPES = 64;
/** At most this many limits, backends, or servers per backend in one spec. */
export const MAX_SPEC_ENTRIES = 4096;

export function ok<T>(value: T): Reply<T> {
  return { status: 0, value };
}

/** The value of a successful reply. A failed reply becomes the error `storeStatusError` builds. */
export function unwrap<T>(reply: Reply<T>): T {
  if (isPlainObject(reply) && reply.status === 0) return reply.value;
  if (isPlainObject(reply) && typeof reply.status === "number" && typeof reply.detail === "string") {
    throw storeStatusError(reply.status, reply.detail);
  }
  throw new SlotgateError("SLOTGATE_STORE_PROTOCOL", "the Durable Object sent a reply slotgate does not understand");
}

/**
 * The reply for an error thrown while the object served a call. The state machine reports an
 * unknown scope, backend, or server as a `SlotgateError`, and its message names which. Any
 * other slotgate error means the request was bad. Anything else is a bug: rethrown as is.
 */
export function failure(error: unknown): Reply<never> {
  if (!(error instanceof SlotgateError)) throw error;
  if (error.code === "SLOTGATE_UNKNOWN_SCOPE") {
    for (const [prefix, status] of UNKNOWN_PREFIXES) {
      if (error.message.startsWith(prefix)) return { status, detail: error.message.slice(prefix.length) };
    }
    return { status: StoreStatus.UnknownScope, detail: error.message };
  }
  return { status: StoreStatus.BadRequest, detail: error.message };
}

const UNKNOWN_PREFIXES: [string, StoreStatus][] = [
  ["unknown scope: ", StoreStatus.UnknownScope],
  ["unknown backend: ", StoreStatus.UnknownBackend],
  ["unknown server: ", StoreStatus.UnknownServer],
];

const ID_EXPECTED = `a string of 1 to ${MAX_ID_LENGTH} characters`;
/** A waiter or lease id. */
export const idSchema = accept<string>((x) => typeof x === "string" && x.length > 0 && x.length <= MAX_ID_LENGTH, ID_EXPECTED);
const SECRET_HASH = /^[0-9a-f]{64}$/;
const SECRET_HASH_EXPECTED = "the SHA-256 of the lease secret, 64 hex digits";
/** A hash is not a secret, but its text is of no use in a message either: only its length is shown. */
const secretHash = rule((x, addIssue) =>
  typeof x === "string" && SECRET_HASH.test(x) ? x : report(addIssue, SECRET_HASH_EXPECTED, typeof x === "string" ? `${x.length} characters` : x),
);
const leaseOwner = looseObject({ secretHash, token: idSchema }, "{ secretHash, token }");
const ttl = int({ min: 1, max: MAX_TTL_MS });
const specVersion = optional(
  accept<number | null>((x) => x === null || isSpecVersion(x), `a positive integer up to ${MAX_SPEC_VERSION}, or null`),
  null,
);

/** A waiter or lease id: 1–128 characters. */
export function checkId(what: string, value: unknown): string {
  return parse(idSchema, value, what);
}

/** An optional lease-secret hash: undefined, or 64 lowercase hex digits. */
export function checkSecretHash(value: unknown): string | undefined {
  return value === undefined ? undefined : parse(secretHash, value, "secretHash");
}

/** An optional {@link LeaseOwner}. */
export function checkLeaseOwner(value: unknown): LeaseOwner | undefined {
  return value === undefined ? undefined : parse(leaseOwner, value, "owner");
}

/** An optional token name (of a ticket's owner). */
export function checkOwnerToken(value: unknown): string | undefined {
  return value === undefined ? undefined : checkId("token", value);
}

export function checkTtl(value: unknown): number {
  return parse(ttl, value, "ttlMs");
}

/** A version received over RPC: undefined or null (unversioned), or a positive integer. */
export function checkVersion(value: unknown): number | null {
  return parse(specVersion, value, "version");
}

/** Field by field, what `toChainRequest` produces; scope names are resolved against the spec afterwards. */
const requestObject = accept<Record<string, unknown>>(isPlainObject, "an object");
const scopeList = accept<unknown[]>((x) => Array.isArray(x) && x.length <= MAX_CHAIN_SCOPES, `an array of at most ${MAX_CHAIN_SCOPES} scope names`);
const scopeName = accept<string>((s) => typeof s === "string" && s.length > 0 && s.length <= MAX_KEY_LENGTH + 129, "scope names");

/** The fields of a chain request but its scopes, which are resolved first, one by one. */
const chainFields = refine(
  looseObject({
    priorityClass: int({ min: PRIORITY_CLASS_MIN, max: PRIORITY_CLASS_MAX }),
    priorityOffsetMs: int({ min: PRIORITY_OFFSET_MIN_MS, max: PRIORITY_OFFSET_MAX_MS }),
    queueTimeoutMs: int({ min: 0, max: MAX_TTL_MS }),
    leaseTtlMs: ttl,
    backend: optional(nameSchema, undefined),
    server: optional(nameSchema, undefined),
    flow: optional(accept<string>(isKeyValue, KEY_VALUE_EXPECTED), undefined),
    early: optional(boolean(), false),
  }),
  ({ backend, server, flow, early, ...rest }, addIssue) => {
    if (server !== undefined && backend === undefined) return report(addIssue, "a server only together with its backend", server, { path: ["server"] });
    return {
      ...rest,
      ...(backend === undefined ? {} : { backend }),
      ...(server === undefined ? {} : { server }),
      ...(flow === undefined ? {} : { flow }),
      ...(early ? { early } : {}),
    };
  },
);

/**
 * Checks a chain request against the group's spec. Field by field, it is what `toChainRequest`
 * produces. Returns a copy holding only the known fields. Scopes come first, each checked and
 * resolved in turn, so that an unknown scope is reported as such whatever else is wrong.
 */
export function checkChainRequest(value: unknown, spec: GroupSpec): ChainRequest {
  const request = parseLeaf(requestObject, value, "request");
  const seen = new Set<string>();
  for (const item of parseLeaf(scopeList, own(request, "scopes"), "request.scopes")) {
    const scope = parseLeaf(scopeName, item, "request.scopes");
    if (seen.has(scope)) throw new SlotgateConfigError([{ path: "request.scopes", expected: "no duplicate scopes", received: scope }]);
    seen.add(scope);
    checkScope(spec, scope);
  }
  return { scopes: [...seen], ...parse(chainFields, request, "request") };
}

const retryAfter = int({ min: 0, max: MAX_TTL_MS });

/**
 * An acquire's outcome as the object answered it: a rejection's `retryAfterMs` (an early
 * rejection's estimate) is kept only when it is a whole number of ms within a day.
 */
export function checkAcquireOutcome(outcome: StoreAcquireResult): StoreAcquireResult {
  if (outcome.ok || outcome.retryAfterMs === undefined || retryAfter.check(outcome.retryAfterMs)) return outcome;
  return { ok: false, reason: outcome.reason };
}

/** A limit as stored: `null` is no limit. */
const storedLimit = v.nullable(int({ min: 0, max: MAX_LIMIT }));

const storedScope = looseObject(
  { max: storedLimit, maxqueue: storedLimit, keyed: accept<boolean>((x) => typeof x === "boolean", "{ max, maxqueue, keyed }") },
  "{ max, maxqueue, keyed }",
);

const storedServer = looseObject(
  { name: nameSchema, max: storedLimit, maxqueue: storedLimit, weight: int({ min: 1, max: MAX_WEIGHT }), down: boolean() },
  "{ name, max, maxqueue, weight, down }",
);

const storedBackend = looseObject(
  {
    balance: accept<Balance>((x) => typeof x === "string" && (BALANCES as readonly string[]).includes(x), BALANCES.join(" | ")),
    max: storedLimit,
    maxqueue: storedLimit,
    servers: refine(
      list(() => storedServer, MAX_SPEC_ENTRIES, "{ balance, max, maxqueue, servers: [at least one] }", 1),
      (servers, addIssue) => {
        const duplicate = servers.find((s, i) => servers.findIndex((t) => t.name === s.name) !== i);
        return duplicate === undefined ? servers : report(addIssue, "unique server names", duplicate.name);
      },
    ),
  },
  "{ balance, max, maxqueue, servers: [at least one] }",
);

const storedLimitName = refine(nameSchema, (key, addIssue) =>
  key.startsWith("backend:") || key.startsWith("server:") ? report(addIssue, "a limit name not starting with backend: or server:", key) : key,
);

/** At most {@link MAX_SPEC_ENTRIES} entries, counted before any is read. */
function bounded<T>(schema: Schema<T>): Schema<T> {
  return v.pipe(
    accept<Record<string, unknown>>(isPlainObject, "an object"),
    v.check((x) => Object.keys(x).length <= MAX_SPEC_ENTRIES, `at most ${MAX_SPEC_ENTRIES} entries`),
    schema as v.GenericSchema<Record<string, unknown>, T>,
  );
}

const groupSpec = looseObject(
  {
    limits: bounded(
      refine(
        mapping(storedLimitName, () => storedScope),
        ({ entries }) => ({ ...entries }),
      ),
    ),
    backends: bounded(
      refine(
        mapping(nameSchema, () => storedBackend),
        ({ entries }) => ({ ...entries }),
      ),
    ),
    queue: optional(queueSchema, undefined),
  },
  "a group spec { limits, backends, queue? }",
);

/** Checks a spec received over RPC: the shape `buildGroupSpec` produces, with the same bounds. */
export function checkGroupSpec(value: unknown): GroupSpec {
  const { queue, ...spec } = parse(groupSpec, value, "spec");
  return queue === undefined ? spec : { ...spec, queue };
}
