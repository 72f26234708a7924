/**
 * The slot API's server: the `SlotGroup` objects of a namespace over authenticated HTTPS, so
 * processes outside Cloudflare (Node edge nodes) take slots from the same objects as the Workers.
 * The wire contract is in `slot-api-protocol.ts`. The slotgate Worker mounts it under
 * `/_slotgate/v1/`; a Worker of your own can mount it too:
 *
 * ```ts
 * import { handleSlotApiRequest, isSlotApiRequest } from "slotgate/cloudflare";
 * if (isSlotApiRequest(request)) return handleSlotApiRequest(request, { namespace: env.SLOT_GROUP, token: env.SLOTGATE_API_TOKEN, tokens: env.SLOTGATE_API_TOKENS, waitUntil: (p) => ctx.waitUntil(p) });
 * ```
 *
 * - Disabled unless a token is set (`token`, `tokens`): without one, every route answers 404,
 *   like an unknown path. Tokens that do not validate close it: 500 with a generic body, and the
 *   problems (never a token) in the log. See `slot-api-auth.ts` for tokens, permissions and groups.
 * - Auth comes first: a missing or unknown `Authorization: Bearer` answers 401 before the body is
 *   read or any object is touched, so nothing changes. A known token without the permission for
 *   the route, or for the group, answers 403, also before the body is read. The token is compared
 *   in constant time against every configured token (SHA-256 of both sides, full XOR).
 * - Leases are owned: a grant carries a fresh secret (`leaseSecret`, 128 random bits), the object
 *   keeps its hash, and release / renew must present it; a ticket can be cancelled only with the
 *   token that queued it. A wrong secret or token answers as a lease or ticket that does not
 *   exist (`false`, `{ ok: false }`), so an intruder learns nothing and changes nothing.
 * - Input: bodies are read up to {@link MAX_SLOT_API_BODY_BYTES} (413 beyond), must be JSON
 *   objects of the route's shape (400 otherwise). The object checks every field again.
 * - Faults never show internal text: 503 (the object unreachable) and 500 carry a fixed detail
 *   and a stable code; the error itself goes to the log.
 * - Batches: `batch` carries several calls of the routes in one request; each op is checked and
 *   authorised as if sent alone ({@link prepare}, `permits`), a refused one answers in its place,
 *   the rest go to the object as one `batch` RPC. A queued acquire of a batch answers `queued`
 *   (with its lease secret), and `wait` long-polls its outcome.
 * - A queued acquire keeps its request open (long poll, see {@link longPoll}). When the client
 *   disconnects, the ticket is cancelled; a grant that arrives after that is released.
 *   `waitUntil` keeps the Worker alive for that clean-up.
 */
import type * as v from "valibot";
import { SlotgateConfigError, StoreStatus } from "../core/errors.js";
import { NAME_PATTERN, isPlainObject, parse, type Schema } from "../core/validate.js";
import type { StoreAcquireResult } from "../core/store.js";
import type { LeaseOwner, Reply, SlotGroupBatchRpc, SlotGroupRpc } from "../stores/durable-object/protocol.js";
import { MAX_BATCH_OPS, callAlone, isQueued, type BatchOp } from "../stores/durable-object/batch-protocol.js";
import {
  MAX_SLOT_API_BODY_BYTES,
  SLOT_API_BODIES,
  SLOT_API_OPS,
  SLOT_API_PREFIX,
  type AcquireReply,
  type SlotApiBatchOp,
  type SlotApiFault,
  type SlotApiOp,
} from "../stores/durable-object/slot-api-protocol.js";
import { authenticate, leaseSecretHash, newLeaseSecret, permits, tokenSetup, type Credential } from "./slot-api-auth.js";
import { storeFault, type SlotGroupNamespace } from "../stores/durable-object/rpc-transport.js";

export interface SlotApiOptions {
  /** The namespace binding of the `SlotGroup` class (`env.SLOT_GROUP`). */
  namespace: SlotGroupNamespace;
  /** One bearer token with every permission on every group (`env.SLOTGATE_API_TOKEN`). Unset or empty: none. */
  token: string | undefined;
  /**
   * Tokens with permissions and group patterns (`env.SLOTGATE_API_TOKENS`), as the runtime hands
   * the variable over: JSON text, or an array of {@link SlotApiTokenEntry}. Validated on first use.
   */
  tokens?: unknown;
  /** `ctx.waitUntil`: keeps the Worker alive to cancel or release after a client went away. */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** Maps a group to its object name, as the store option of the same name. @default (group) => group */
  group?: (group: string) => string;
}

export { MAX_API_TOKEN_LENGTH, MIN_API_TOKEN_LENGTH } from "./slot-api-auth.js";

/** Whether a request is for the slot API (its path is under {@link SLOT_API_PREFIX}). */
export function isSlotApiRequest(request: Request): boolean {
  const path = new URL(request.url).pathname;
  return path === SLOT_API_PREFIX || path.startsWith(`${SLOT_API_PREFIX}/`);
}

export async function handleSlotApiRequest(request: Request, options: SlotApiOptions): Promise<Response> {
  try {
    return await serve(request, options);
  } catch (error) {
    // A fault of the API itself (a bug, a broken binding): the client learns only that.
    logFault("slot API request failed", undefined, error);
    return text(500, "slot API internal error\n", { "x-slotgate-error": "internal" });
  }
}

async function serve(request: Request, options: SlotApiOptions): Promise<Response> {
  const setup = await tokenSetup(options.token, options.tokens);
  if (setup.kind === "disabled") return notFound();
  if (setup.kind === "invalid") return text(500, "slot API misconfigured (see the Worker's logs)\n", { "x-slotgate-error": "api-config" });
  const credential = await authenticate(request.headers.get("authorization"), setup.credentials);
  if (credential === undefined) {
    return reply(401, { status: StoreStatus.Unauthorized, detail: "missing or wrong bearer token" }, { "www-authenticate": 'Bearer realm="slotgate"' });
  }

  const path = new URL(request.url).pathname.slice(SLOT_API_PREFIX.length);
  if (path === "/ping") {
    if (request.method !== "GET" && request.method !== "HEAD") return methodNotAllowed("GET, HEAD");
    return reply(200, { status: 0, value: true });
  }
  const m = /^\/groups\/([^/]+)\/([a-z-]+)$/.exec(path);
  const op = m?.[2] as SlotApiOp | undefined;
  if (!m || op === undefined || !Object.hasOwn(SLOT_API_OPS, op)) return notFound();
  const method = SLOT_API_OPS[op];
  if (request.method !== method) return methodNotAllowed(method);
  let group: string;
  try {
    group = decodeURIComponent(m[1]!);
  } catch {
    group = "";
  }
  if (!NAME_PATTERN.test(group)) return badRequest("the group in the path must be a name of 1–128 characters from [A-Za-z0-9_.~:@-]");
  if (!permits(credential, op, group)) {
    return reply(403, { status: StoreStatus.Forbidden, detail: `this token may not ${op} on group ${group}` });
  }

  let body: Record<string, unknown> = {};
  if (method === "POST") {
    const read = await readJsonObject(request);
    if (!read.ok) return read.response;
    body = read.value;
  }

  const name = (options.group ?? ((g: string) => g))(group);
  const stub = options.namespace.get(options.namespace.idFromName(name));
  try {
    if (op === "batch") return await batch(request, stub, body, credential, group, options.waitUntil);
    if (op === "wait") {
      const checked = checkBody("wait", body);
      if ("detail" in checked) return badRequest(checked.detail);
      const { waiterId } = checked.value;
      // Only the token that queued the ticket may collect it.
      return await longPoll(
        request,
        stub,
        waiterId,
        credential.owner,
        () => (stub as SlotGroupBatchRpc).wait(waiterId, credential.owner),
        "wait",
        (r) => r,
        options.waitUntil,
      );
    }
    const prepared = await prepare(op, body, credential.owner);
    if ("refused" in prepared) return reply(400, prepared.refused);
    const { call, secret } = prepared;
    if (call.op === "acquire") {
      const withSecret = (r: Reply<StoreAcquireResult>): AcquireReply => (r.status === 0 && r.value.ok ? { ...r, leaseSecret: secret } : r);
      return await longPoll(
        request,
        stub,
        call.waiterId,
        credential.owner,
        () => stub.acquire(call.request, call.waiterId, call.owner),
        "acquire",
        withSecret,
        options.waitUntil,
      );
    }
    return answer(await callAlone(stub, call));
  } catch (error) {
    return unavailable(op, group, error);
  }
}

const BATCH_ROUTES: readonly SlotApiBatchOp[] = ["acquire", "cancel", "release", "renew", "configure", "server-state", "stats"];

/** A body against its route's schema, or the detail of a 400 naming every problem. */
function checkBody<Op extends keyof typeof SLOT_API_BODIES>(
  op: Op,
  body: Record<string, unknown>,
): { value: v.InferOutput<(typeof SLOT_API_BODIES)[Op]> } | { detail: string } {
  try {
    return { value: parse(SLOT_API_BODIES[op] as Schema<v.InferOutput<(typeof SLOT_API_BODIES)[Op]>>, body) };
  } catch (error) {
    if (error instanceof SlotgateConfigError) return { detail: error.message };
    throw error;
  }
}

/** A call of a route, checked as the route checks it, with the owner fields of `token`; or its refusal. */
type Prepared = { call: BatchOp; secret?: string } | { refused: Reply<never> };

/**
 * Checks the body of one call (of its own route, or an op of a batch) and turns it into the
 * object's call. The one place the routes' shapes are checked (their schemas are in
 * slot-api-protocol.ts): the object checks every field again. Every acquire gets a fresh lease
 * secret here, before it reaches the object, which stores its hash with the lease if it is granted.
 */
async function prepare(op: SlotApiBatchOp, body: Record<string, unknown>, token: string): Promise<Prepared> {
  if (op === "stats") return { call: { op: "stats" } };
  const checked = checkBody(op, body);
  if ("detail" in checked) return { refused: { status: StoreStatus.BadRequest, detail: checked.detail } };
  const b = checked.value;
  switch (op) {
    case "acquire": {
      const { waiterId, request } = b as v.InferOutput<(typeof SLOT_API_BODIES)["acquire"]>;
      const secret = newLeaseSecret();
      const owner: LeaseOwner = { secretHash: await leaseSecretHash(secret), token };
      return { call: { op: "acquire", request: request as never, waiterId, owner }, secret };
    }
    case "cancel":
      return { call: { op: "cancel", waiterId: (b as v.InferOutput<(typeof SLOT_API_BODIES)["cancel"]>).waiterId, token } };
    case "release": {
      const { leaseId, leaseSecret } = b as v.InferOutput<(typeof SLOT_API_BODIES)["release"]>;
      return { call: { op: "release", leaseId, secretHash: await leaseSecretHash(leaseSecret) } };
    }
    case "renew": {
      const { leaseId, ttlMs, leaseSecret } = b as v.InferOutput<(typeof SLOT_API_BODIES)["renew"]>;
      return { call: { op: "renew", leaseId, ttlMs, secretHash: await leaseSecretHash(leaseSecret) } };
    }
    case "configure": {
      const { spec, version } = b as v.InferOutput<(typeof SLOT_API_BODIES)["configure"]>;
      return { call: { op: "configure", spec: spec as never, version } };
    }
    case "server-state": {
      const { backend, server, up } = b as v.InferOutput<(typeof SLOT_API_BODIES)["server-state"]>;
      return { call: { op: "setServerState", backend, server, up } };
    }
  }
}

/**
 * A batch: each op checked and authorised as if sent alone (a refused one answers at its index
 * and is not sent), the rest sent to the object as one `batch` call, applied there in order. The
 * answer holds one Reply per op, an acquire's with its lease secret (also when it queued: the
 * client keeps it for the grant that `wait` brings). If the client left before the answer, its
 * grants are released and its queued tickets cancelled.
 */
async function batch(
  request: Request,
  stub: SlotGroupRpc,
  body: Record<string, unknown>,
  credential: Credential,
  group: string,
  waitUntil: SlotApiOptions["waitUntil"],
): Promise<Response> {
  const ops = body.ops;
  if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_BATCH_OPS) {
    return badRequest(`ops: expected an array of 1 to ${MAX_BATCH_OPS} calls { op, …the route's body }`);
  }
  const prepared = await Promise.all(
    ops.map((item: unknown): Prepared | Promise<Prepared> => {
      if (!isPlainObject(item) || typeof item.op !== "string" || !(BATCH_ROUTES as readonly string[]).includes(item.op)) {
        return { refused: { status: StoreStatus.BadRequest, detail: `op: expected an object { op: ${BATCH_ROUTES.join(" | ")}, … }` } };
      }
      const op = item.op as SlotApiBatchOp;
      if (!permits(credential, op, group)) return { refused: { status: StoreStatus.Forbidden, detail: `this token may not ${op} on group ${group}` } };
      return prepare(op, item, credential.owner);
    }),
  );
  const sent = prepared.flatMap((p, index) => ("call" in p ? [{ index, call: p.call, secret: p.secret }] : []));
  const replies: (Reply<unknown> & { leaseSecret?: string })[] = prepared.map((p) => ("refused" in p ? p.refused : { status: 0, value: null }));
  if (sent.length > 0) {
    const answer = await (stub as SlotGroupBatchRpc).batch(sent.map((s) => s.call));
    if (answer.status !== 0 || !Array.isArray(answer.value) || answer.value.length !== sent.length) {
      throw new Error("the object answered a batch with something other than one reply per op");
    }
    sent.forEach((s, i) => {
      const r = answer.value[i]!;
      const held = r.status === 0 && isPlainObject(r.value) && (r.value.ok === true || isQueued(r.value));
      replies[s.index] = held && s.secret !== undefined ? { ...r, leaseSecret: s.secret } : r;
    });
    if ((request.signal as AbortSignal | undefined)?.aborted) waitUntil?.(giveBack(stub, sent, answer.value).catch(() => undefined));
  }
  return reply(200, { status: 0, value: replies });
}

/** Gives back what a batch took for a client that left: grants released, queued tickets cancelled (trusted calls). */
function giveBack(stub: SlotGroupRpc, sent: { call: BatchOp }[], answers: Reply<unknown>[]): Promise<unknown> {
  const undo: BatchOp[] = [];
  sent.forEach((s, i) => {
    const r = answers[i]!;
    if (s.call.op !== "acquire" || r.status !== 0 || !isPlainObject(r.value)) return;
    if (r.value.ok === true && isPlainObject(r.value.lease) && typeof r.value.lease.id === "string") undo.push({ op: "release", leaseId: r.value.lease.id });
    else if (isQueued(r.value)) undo.push({ op: "cancel", waiterId: s.call.waiterId });
  });
  return undo.length === 0 ? Promise.resolve() : (stub as SlotGroupBatchRpc).batch(undo);
}

/** A queued acquire answered within this time gets a plain JSON response, with its reply's status. */
export const LONG_POLL_PLAIN_MS = 500;
/** While a long poll streams, a space goes out this often (JSON allows it before the reply). */
export const LONG_POLL_HEARTBEAT_MS = 15_000;
const SPACE = new Uint8Array([0x20]);

/**
 * A queued acquire (or the `wait` for a ticket a batch queued) is a long poll. An answer within
 * {@link LONG_POLL_PLAIN_MS} (every grant or rejection that does not queue) is a plain JSON
 * response. After that, the response starts (200) and its body is a space every
 * {@link LONG_POLL_HEARTBEAT_MS}, then the reply: so no header or idle timeout of a client or
 * proxy ends a long wait, and a client that is gone shows up as a failed write even when its
 * disconnect was quiet. A client that goes away cancels the ticket; a grant that finds it gone is
 * released.
 */
async function longPoll(
  request: Request,
  stub: SlotGroupRpc,
  waiterId: string,
  token: string,
  send: () => Promise<Reply<StoreAcquireResult>>,
  op: "acquire" | "wait",
  present: (r: Reply<StoreAcquireResult>) => AcquireReply,
  waitUntil: SlotApiOptions["waitUntil"],
): Promise<Response> {
  const call = send();
  let gone = false;
  const leave = () => {
    if (gone) return;
    gone = true;
    // The same stub, so the cancel reaches the object after the acquire (E-order). With the
    // token: a `wait` for another token's ticket must not cancel it by hanging up.
    waitUntil?.(stub.cancel(waiterId, token).catch(() => undefined));
  };
  const signal = request.signal as AbortSignal | undefined;
  if (signal?.aborted) leave();
  else signal?.addEventListener("abort", leave, { once: true });
  // Trusted (no secret presented): this Worker granted the lease and is giving it back.
  const releaseIfGranted = async (r: Reply<StoreAcquireResult>) => {
    if (r.status === 0 && r.value.ok) await stub.release(r.value.lease.id).catch(() => undefined);
  };
  const settled = call.then(
    async (r) => {
      signal?.removeEventListener("abort", leave);
      // Granted after the client left: nobody will release it, so give it back now.
      if (gone) await releaseIfGranted(r);
      return r;
    },
    (error: unknown) => {
      signal?.removeEventListener("abort", leave);
      throw error;
    },
  );
  waitUntil?.(settled.catch(() => undefined));

  let later!: () => void;
  const waited = new Promise<undefined>((resolve) => (later = () => resolve(undefined)));
  const timer = setTimeout(later, LONG_POLL_PLAIN_MS);
  const early = await Promise.race([
    settled.then(
      (r) => ({ r }),
      (error: unknown) => ({ error }),
    ),
    waited,
  ]);
  clearTimeout(timer);
  if (early !== undefined) {
    if ("error" in early) throw early.error;
    return answer(present(early.r));
  }

  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  // The client cancelled the body: it is gone.
  writer.closed.catch(leave);
  const heartbeat = setInterval(() => void writer.write(SPACE).catch(leave), LONG_POLL_HEARTBEAT_MS);
  const finish = settled
    .then(
      async (r) => {
        clearInterval(heartbeat);
        try {
          await writer.write(encoder.encode(JSON.stringify(present(r))));
          await writer.close();
        } catch {
          if (!gone) {
            gone = true;
            await releaseIfGranted(r);
          }
        }
      },
      async (error: unknown) => {
        clearInterval(heartbeat);
        await writer.write(encoder.encode(JSON.stringify(faultBody(op, undefined, error)))).catch(() => undefined);
        await writer.close().catch(() => undefined);
      },
    )
    .catch(() => undefined);
  waitUntil?.(finish);
  return new Response(readable, { status: 200, headers: JSON_HEADERS });
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" };

function reply<T>(status: number, body: Reply<T>, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** An answer of the object, with the HTTP status of its reply status. */
function answer<T>(r: Reply<T>): Response {
  if (r.status === 0) return reply(200, r);
  if (r.status === StoreStatus.TicketGone) return reply(410, r);
  return reply(r.status === StoreStatus.BadRequest ? 400 : 422, r);
}

function badRequest(detail: string): Response {
  return reply(400, { status: StoreStatus.BadRequest, detail });
}

/**
 * The body of a 503. The runtime's error text can name internals (class names, storage paths,
 * an abort reason), so the detail is a fixed sentence chosen by the error's flags alone; the text
 * goes to the log.
 */
function faultBody(op: SlotApiOp, group: string | undefined, error: unknown): SlotApiFault {
  const fault = storeFault(op === "server-state" ? "setServerState" : op, error);
  logFault(`slot API ${op}: the store call failed`, group, error);
  const flags = (typeof error === "object" && error !== null ? error : {}) as { overloaded?: unknown; durableObjectReset?: unknown };
  let detail = `${op}: the group's Durable Object could not be reached`;
  if (flags.overloaded === true) detail = `${op}: the group's Durable Object is overloaded`;
  else if (flags.durableObjectReset === true) detail = `${op}: the group's Durable Object was reset${op === "acquire" ? " (a queued ticket is gone)" : ""}`;
  return { error: "SLOTGATE_STORE_UNAVAILABLE", detail, retryable: fault.retryable };
}

function unavailable(op: SlotApiOp, group: string, error: unknown): Response {
  return new Response(JSON.stringify(faultBody(op, group, error)), { status: 503, headers: { ...JSON_HEADERS, "retry-after": "1" } });
}

/** One structured log line (Workers Logs, `wrangler tail`) with the detail clients never see. */
function logFault(msg: string, group: string | undefined, error: unknown): void {
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  console.error({ level: "error", msg, ...(group === undefined ? {} : { group }), detail });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers } });
}

function notFound(): Response {
  return text(404, "not found\n");
}

function methodNotAllowed(allow: string): Response {
  return text(405, "method not allowed\n", { allow });
}

type ReadResult = { ok: true; value: Record<string, unknown> } | { ok: false; response: Response };

/** Reads a JSON object body of at most {@link MAX_SLOT_API_BODY_BYTES}, without trusting Content-Length. */
async function readJsonObject(request: Request): Promise<ReadResult> {
  const tooLarge = (): ReadResult => ({
    ok: false,
    response: reply(413, { status: StoreStatus.BadRequest, detail: `the body is larger than ${MAX_SLOT_API_BODY_BYTES} bytes` }),
  });
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_SLOT_API_BODY_BYTES) return tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_SLOT_API_BODY_BYTES) {
        await reader.cancel().catch(() => undefined);
        return tooLarge();
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    return { ok: false, response: badRequest("the body must be a JSON object in UTF-8") };
  }
  if (!isPlainObject(value)) return { ok: false, response: badRequest("the body must be a JSON object") };
  return { ok: true, value };
}
