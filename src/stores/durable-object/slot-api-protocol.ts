/**
 * The wire contract of the slot API: the HTTPS face of the `SlotGroup` object that the slotgate
 * Worker exposes, so that Node edge nodes (`store: { type: durable-object, url, token }`) share
 * the limits of the Workers. The server (`src/cloudflare/slot-api.ts`, in the Worker) and the
 * client's HTTP transport (`http-transport.ts`, in Node or anywhere with `fetch`) both import this
 * module. It imports nothing from `cloudflare:workers` and nothing from Node.
 *
 * Routes, all under {@link SLOT_API_PREFIX}, all with `Authorization: Bearer <token>` of a token
 * with the route's permission on the group (`SLOTGATE_API_TOKEN`: all; `SLOTGATE_API_TOKENS`:
 * per entry, see `slot-api-auth.ts`):
 *
 * | method | path                          | body                                   | value of the reply      | permission    |
 * |--------|-------------------------------|----------------------------------------|-------------------------|---------------|
 * | GET    | `/ping`                       | –                                      | `true`                  | any token     |
 * | POST   | `/groups/<group>/acquire`     | `{ request: ChainRequest, waiterId }`  | `StoreAcquireResult`    | lease         |
 * | POST   | `/groups/<group>/cancel`      | `{ waiterId }`                         | `boolean`               | lease         |
 * | POST   | `/groups/<group>/release`     | `{ leaseId, leaseSecret }`             | `boolean`               | lease         |
 * | POST   | `/groups/<group>/renew`       | `{ leaseId, ttlMs, leaseSecret }`      | `RenewResult`           | lease         |
 * | POST   | `/groups/<group>/configure`   | `{ spec: GroupSpec, version? }`        | `ConfigureOutcome`      | admin         |
 * | POST   | `/groups/<group>/server-state`| `{ backend, server, up }`              | `null`                  | admin         |
 * | GET    | `/groups/<group>/stats`       | –                                      | `GroupStatsSnapshot`    | lease, admin  |
 * | POST   | `/groups/<group>/batch`       | `{ ops: [{ op: <route>, …body }, …] }` | `Reply[]`, one per op   | each op's own |
 * | POST   | `/groups/<group>/wait`        | `{ waiterId }`                         | `StoreAcquireResult`    | lease         |
 *
 * `batch` carries up to `MAX_BATCH_OPS` calls of the routes above (`op` names the route), applied
 * in order in one atomic step of the object (`batch-protocol.ts`). Each op is checked and
 * authorised as if sent alone and answered at its index with the Reply its route would give (an
 * acquire's with its `leaseSecret`); a refused or malformed op leaves the others alone. A token
 * needs lease or admin on the group to send a batch at all. An acquire that queues answers
 * `{ status: 0, value: { queued: true }, leaseSecret }`: its outcome is then a long poll on `wait`
 * (only the token that queued it may wait; an unknown ticket answers 410 `TicketGone`).
 *
 * `configure` applies the version rule (SPEC §2 rule 13): `version` is a positive integer, or
 * absent / null for an unversioned spec. `stats` writes no spec: read-only tools use it alone.
 *
 * A granted acquire's reply also carries `leaseSecret` ({@link AcquireReply}): release and renew
 * of that lease must send it. A wrong secret answers as a lease that is gone (`false`,
 * `{ ok: false }`); a ticket can be cancelled only with the token that queued it (another
 * token's cancel answers `false`).
 *
 * Every answer the object gave is a JSON {@link Reply}, exactly as the object's RPC returns it:
 * HTTP 200 for status 0, 400 for `BadRequest`, 422 for an unknown scope, backend or server. The
 * API's own refusals are Replies too: 400 (malformed body), 413 (body over
 * {@link MAX_SLOT_API_BODY_BYTES}), 401 (`Unauthorized`: missing or wrong token), 403
 * (`Forbidden`: the token lacks the permission for the route or the group). So a client
 * turns every one of them into an error through `unwrap` and `storeStatusError`, the one mapping
 * from statuses to errors. When the object cannot be reached, the answer is 503 with a
 * {@link SlotApiFault} instead. 404 (no such route, or the API is disabled because the Worker has
 * no token) and 405 are plain text, and so is a 500 (`x-slotgate-error: api-config` for tokens
 * that do not validate, `internal` for a fault of the API): never with internal error text.
 *
 * A queued `acquire` is a long poll: the HTTP request stays open until the ticket is granted,
 * times out, or is cancelled. The client names the ticket (`waiterId`, a UUID) so that it can
 * `cancel` it from a second request; the Worker also cancels it when the client disconnects.
 */
import * as v from "valibot";
import type { ChainRequest, StoreAcquireResult } from "../../core/store.js";
import { isSpecVersion } from "../../core/spec-version.js";
import { accept, boolean, isPlainObject, looseObject, optional, report, rule } from "../../core/validate.js";
import { idSchema, type Reply } from "./protocol.js";
import type { GroupSpec } from "../../core/spec.js";

/** Every route of the slot API starts with this path. */
export const SLOT_API_PREFIX = "/_slotgate/v1";
/** Unauthenticated liveness check of the Worker (`ok`), outside the API. */
export const HEALTH_PATH = "/_slotgate/healthz";
/** Requests bodies above this are refused with 413. A spec of a few thousand servers fits. */
export const MAX_SLOT_API_BODY_BYTES = 1024 * 1024;

export type SlotApiOp = "acquire" | "cancel" | "release" | "renew" | "configure" | "server-state" | "stats" | "batch" | "wait";

/** The method of each group route. */
export const SLOT_API_OPS: Readonly<Record<SlotApiOp, "GET" | "POST">> = {
  acquire: "POST",
  cancel: "POST",
  release: "POST",
  renew: "POST",
  configure: "POST",
  "server-state": "POST",
  stats: "GET",
  batch: "POST",
  wait: "POST",
};

/** The routes whose calls a batch may carry, each as `{ op: <route>, …the route's body }`. */
export type SlotApiBatchOp = Exclude<SlotApiOp, "batch" | "wait">;

export interface BatchBody {
  /** 1 to `MAX_BATCH_OPS` calls, applied in this order. */
  ops: ({ op: SlotApiBatchOp } & Record<string, unknown>)[];
}
export interface WaitBody {
  waiterId: string;
}

export interface AcquireBody {
  request: ChainRequest;
  waiterId: string;
}
export interface CancelBody {
  waiterId: string;
}
export interface LeaseBody {
  leaseId: string;
  /** The `leaseSecret` of the acquire's reply. */
  leaseSecret: string;
}
export interface RenewBody {
  leaseId: string;
  ttlMs: number;
  leaseSecret: string;
}

/** The reply of `acquire`: a grant's carries the lease's secret, which release and renew must send. */
export type AcquireReply = Reply<StoreAcquireResult> & { leaseSecret?: string };
export interface ConfigureBody {
  spec: GroupSpec;
  /** The spec's version; absent or null: unversioned. */
  version?: number | null;
}
export interface ServerStateBody {
  backend: string;
  server: string;
  up: boolean;
}

/** The body of a 503: the object could not be reached (not an answer of the object). */
export interface SlotApiFault {
  error: "SLOTGATE_STORE_UNAVAILABLE";
  /** A fixed sentence naming the operation and the kind of fault; never the runtime's error text. */
  detail: string;
  /** Whether the same call may succeed if tried again. */
  retryable: boolean;
}

/** The path of a group route. Group names are URL-safe already; they are encoded anyway. */
export function slotApiPath(group: string, op: SlotApiOp): string {
  return `${SLOT_API_PREFIX}/groups/${encodeURIComponent(group)}/${op}`;
}

export const PING_PATH = `${SLOT_API_PREFIX}/ping`;

const slotApiFault = v.object({ error: v.literal("SLOTGATE_STORE_UNAVAILABLE"), detail: v.string(), retryable: v.boolean() });

export function isSlotApiFault(value: unknown): value is SlotApiFault {
  return v.is(slotApiFault, value);
}

/** Length of a lease secret as sent: 128 random bits in base64url. */
export const LEASE_SECRET_LENGTH = 22;
const LEASE_SECRET = /^[A-Za-z0-9_-]{22}$/;

export function isLeaseSecret(value: unknown): value is string {
  return typeof value === "string" && LEASE_SECRET.test(value);
}

/** A lease secret: never shown in an answer, only its length. */
const leaseSecret = rule((value, addIssue) =>
  isLeaseSecret(value)
    ? value
    : report(
        addIssue,
        `the secret the acquire answered with the lease (${LEASE_SECRET_LENGTH} characters of base64url)`,
        typeof value === "string" ? `${value.length} characters, not shown` : value,
      ),
);

const text = accept<string>((x) => typeof x === "string", "a string");

/**
 * The body of each POST route, as the slot API checks it before it calls the object (which checks
 * the request and the spec again, in full: these are the parts the API itself reads).
 */
export const SLOT_API_BODIES = {
  acquire: looseObject({
    waiterId: idSchema,
    request: accept<Record<string, unknown>>(
      isPlainObject,
      "a chain request { scopes, priorityClass, priorityOffsetMs, queueTimeoutMs, leaseTtlMs, backend?, server? }",
    ),
  }),
  cancel: looseObject({ waiterId: idSchema }),
  wait: looseObject({ waiterId: idSchema }),
  release: looseObject({ leaseId: idSchema, leaseSecret }),
  renew: looseObject({ leaseId: idSchema, ttlMs: accept<number>((x) => typeof x === "number", "a number of milliseconds"), leaseSecret }),
  configure: looseObject({
    spec: accept<Record<string, unknown>>(isPlainObject, "a group spec { limits, backends }"),
    version: optional(
      accept<number | null>((x) => x === null || isSpecVersion(x), "a positive integer, or null (unversioned)"),
      null,
    ),
  }),
  "server-state": looseObject({ backend: text, server: text, up: boolean() }),
} as const;
