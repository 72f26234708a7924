/**
 * The HTTP transport: a group's `SlotGroup` object through the slotgate Worker's slot API (the
 * wire contract is `slot-api-protocol.ts`), from anywhere with `fetch`. Runtime-neutral: only
 * `fetch`, `AbortSignal`, `crypto` and timers.
 *
 * - Answers: every answer of the object, and the API's own refusals (401 for a wrong token, 400,
 *   413), are Replies, which the client turns into values or errors as for RPC (a 2xx body that is
 *   no Reply too: the client refuses it as `SLOTGATE_STORE_PROTOCOL`). A request that gets no
 *   usable answer (network error, timeout, a 5xx or 404 without a Reply, a redirect) is a
 *   `SLOTGATE_STORE_UNAVAILABLE` fault; its `retryable` says whether trying again may help.
 * - Batching: the calls of a group made in one turn of the event loop leave together at its end
 *   (`core/batcher.ts`): one call alone on its own route, several as one `batch` request, which the
 *   object applies in order in one atomic step. An acquire the batch queued is then one `wait`
 *   request (a long poll). Connections are kept alive by `fetch` itself (Node's undici pools and
 *   reuses them per origin), so a lone call costs one request on a warm connection.
 * - A queued acquire is one open request (a long poll); its cancel is a second request.
 * - Security: the token goes in an `Authorization: Bearer` header, only to the configured origin
 *   (redirects are not followed). Errors never include it.
 * - Lease secrets: a grant's reply carries the lease's secret (`leaseSecret`); the transport keeps
 *   it in memory with the lease id (never in a lease object, an event or an error) before the
 *   client sees the grant, and sends it with every release and renew of that lease. It is
 *   forgotten once the lease is released, or long after the lease would have expired.
 */
import { SlotgateError, isSlotgateError } from "../../core/errors.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { ChainRequest, RenewResult } from "../../core/store.js";
import { isPlainObject } from "../../core/validate.js";
import { MAX_BATCH_OPS, isQueued } from "./batch-protocol.js";
import { Batcher, type Pending } from "../../core/batcher.js";
import type { AcquireCall, Transport } from "./client.js";
import type { Reply } from "./protocol.js";
import { PING_PATH, SLOT_API_OPS, isSlotApiFault, slotApiPath, type SlotApiOp } from "./slot-api-protocol.js";

/** The part of `fetch` this store uses. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** HTTP statuses (without a Reply) worth another try: the request may not have been served. */
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530]);

/** A secret is dropped this long after its lease would have expired (leases never released). */
const SECRET_GRACE_MS = 10 * 60_000;
/** Forgotten secrets are swept at most this often. */
const SECRET_SWEEP_MS = 60_000;

/** One slot API (a base URL and a token), shared by every group of a store. */
export class SlotApiClient {
  readonly #base: string;
  readonly #authorization: string;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  /** Lease secrets by group and lease id, with the local time after which they may be dropped. */
  readonly #secrets = new Map<string, { secret: string; dropAfter: number }>();
  #sweptAt = 0;
  /** The slot API has answered at least once (any HTTP answer): the end of a cold start. */
  answered = false;
  /** False once the Worker answered a batch with 404 (a version before batches): calls then go one by one. */
  batches = true;

  constructor(base: string, token: string, fetch: FetchLike, timeoutMs: number) {
    this.#base = base;
    this.#authorization = `Bearer ${token}`;
    this.#fetch = fetch;
    this.#timeoutMs = timeoutMs;
  }

  /** The transport of one group. */
  group(group: string): HttpTransport {
    return new HttpTransport(this, group);
  }

  /**
   * One request; the fetch leaves synchronously, so calls leave in the order they are made.
   * Resolves with the body when it is a Reply (or any 2xx body: the client refuses one that is no
   * Reply); rejects with a coded fault otherwise. `group` null: the `ping` route.
   */
  call<T>(group: string | null, op: SlotApiOp | "ping", body: unknown, signal: AbortSignal = AbortSignal.timeout(this.#timeoutMs)): Promise<Reply<T>> {
    const path = group === null ? PING_PATH : slotApiPath(group, op as SlotApiOp);
    const method = group === null ? "GET" : SLOT_API_OPS[op as SlotApiOp];
    let sent: Promise<Response>;
    try {
      sent = this.#fetch(this.#base + path, {
        method,
        headers:
          body === undefined
            ? { authorization: this.#authorization, accept: "application/json" }
            : { authorization: this.#authorization, accept: "application/json", "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: "manual",
        signal,
      });
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(
      async (res) => {
        this.answered = true;
        let text: string;
        try {
          text = await res.text();
        } catch (error) {
          throw transportFault(op, error);
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (isReply(parsed)) return parsed as Reply<T>;
        if (isSlotApiFault(parsed)) throw new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API ${op}: ${parsed.detail}`, { retryable: parsed.retryable });
        // A success status with a body that is no Reply: the client refuses it, as one from the object.
        if (res.status >= 200 && res.status < 300) return parsed as Reply<T>;
        throw httpFault(op, res.status, this.#base);
      },
      (error: unknown) => {
        throw transportFault(op, error);
      },
    );
  }

  /** Keeps the secret of a lease granted with one (a Worker before lease secrets sends none). */
  rememberSecret(group: string, lease: { id: string; ttlMs: number }, secret: unknown): void {
    if (typeof secret !== "string") return;
    const now = Date.now();
    if (now - this.#sweptAt > SECRET_SWEEP_MS) {
      this.#sweptAt = now;
      for (const [key, entry] of this.#secrets) if (entry.dropAfter < now) this.#secrets.delete(key);
    }
    this.#secrets.set(secretKey(group, lease.id), { secret, dropAfter: now + lease.ttlMs + SECRET_GRACE_MS });
  }

  secretOf(group: string, leaseId: string): string | undefined {
    return this.#secrets.get(secretKey(group, leaseId))?.secret;
  }

  /** A renewed lease lives longer, and so does its secret. */
  extendSecret(group: string, leaseId: string, ttlMs: number): void {
    const entry = this.#secrets.get(secretKey(group, leaseId));
    if (entry) entry.dropAfter = Date.now() + ttlMs + SECRET_GRACE_MS;
  }

  forgetSecret(group: string, leaseId: string): void {
    this.#secrets.delete(secretKey(group, leaseId));
  }
}

/** One call of a group, as the slot API route of its name takes it. */
interface HttpOp {
  readonly name: Exclude<SlotApiOp, "batch" | "wait">;
  readonly body?: Record<string, unknown>;
  /** Bounds the call (an acquire: its long poll, which only the client ends). */
  readonly signal?: AbortSignal;
}

/** One group's object through the slot API. */
export class HttpTransport implements Transport {
  readonly #api: SlotApiClient;
  readonly #group: string;
  readonly #batcher = new Batcher<HttpOp>({ one: (op) => this.#one(op), many: (run) => this.#many(run) }, { max: MAX_BATCH_OPS });

  constructor(api: SlotApiClient, group: string) {
    this.#api = api;
    this.#group = group;
  }

  get answered(): boolean {
    return this.#api.answered;
  }

  acquire(request: ChainRequest, waiterId: string): AcquireCall {
    // No timeout of its own: a long poll lasts as long as the ticket's queue timeout (the client bounds it).
    const poll = new AbortController();
    let secret: unknown;
    const reply = this.#batcher
      .add<Reply<unknown>>({ name: "acquire", body: { request, waiterId }, signal: poll.signal })
      .then((r) => {
        secret = (r as { leaseSecret?: unknown }).leaseSecret;
        // Queued inside a batch: the outcome is a long poll of its own, which the secret of the batch's answer goes with.
        return isDone(r) && isQueued(r.value) ? this.#api.call<unknown>(this.#group, "wait", { waiterId }, poll.signal) : r;
      })
      .then((r) => {
        // Kept before anything else sees the grant, so even a grant that lost a race can be released.
        const value = isDone(r) ? r.value : undefined;
        if (isPlainObject(value) && value.ok === true && isPlainObject(value.lease)) {
          this.#api.rememberSecret(this.#group, value.lease as { id: string; ttlMs: number }, (r as { leaseSecret?: unknown }).leaseSecret ?? secret);
        }
        return r as Reply<never>;
      });
    return { reply, cancel: (s) => this.#batcher.add<Reply<boolean>>({ name: "cancel", body: { waiterId }, signal: s }), abandon: () => poll.abort() };
  }

  release(leaseId: string, signal?: AbortSignal): Promise<Reply<boolean>> {
    return this.#batcher.add<Reply<boolean>>({ name: "release", body: this.#leaseBody(leaseId), signal }).then((r) => {
      if (isDone(r)) this.#api.forgetSecret(this.#group, leaseId);
      return r;
    });
  }

  renew(leaseId: string, ttlMs: number, signal?: AbortSignal): Promise<Reply<RenewResult>> {
    return this.#batcher.add<Reply<RenewResult>>({ name: "renew", body: this.#leaseBody(leaseId, { ttlMs }), signal }).then((r) => {
      if (isDone(r) && isPlainObject(r.value) && r.value.ok === true) this.#api.extendSecret(this.#group, leaseId, ttlMs);
      return r;
    });
  }

  configure(spec: GroupSpec, version: number | null, signal?: AbortSignal): Promise<Reply<unknown>> {
    // Alone: a spec can be large, and it is pushed rarely.
    this.#batcher.flush();
    return this.#api.call(this.#group, "configure", { spec, version }, signal);
  }

  setServerState(backend: string, server: string, up: boolean, signal?: AbortSignal): Promise<Reply<null>> {
    return this.#batcher.add({ name: "server-state", body: { backend, server, up }, signal });
  }

  stats(signal?: AbortSignal): Promise<Reply<GroupStatsSnapshot>> {
    return this.#batcher.add({ name: "stats", signal });
  }

  /** Sends one call on its own route. */
  #one(op: HttpOp): Promise<Reply<unknown>> {
    return this.#api.call(this.#group, op.name, op.name === "stats" ? undefined : op.body, op.signal);
  }

  /**
   * Sends a run of calls as one `batch` request (bounded like any call). Each op's own signal
   * still ends its wait for the answer. A Worker without the batch route (404, or a success that
   * is not one reply per op: older than batches) is sent runs one by one from then on.
   */
  #many(run: readonly Pending<HttpOp>[]): Promise<void> {
    if (!this.#api.batches) {
      for (const p of run) this.#one(p.op).then(p.resolve, p.reject);
      return Promise.resolve();
    }
    const stops = run.map((p) => {
      const signal = p.op.name === "acquire" ? undefined : p.op.signal;
      if (signal === undefined) return () => undefined;
      const stop = () => p.reject(transportFault(p.op.name, signal.reason));
      signal.addEventListener("abort", stop, { once: true });
      return () => signal.removeEventListener("abort", stop);
    });
    const ops = run.map((p) => ({ op: p.op.name, ...p.op.body }));
    return this.#api.call<unknown[]>(this.#group, "batch", { ops }).then(
      (reply) => {
        for (const stop of stops) stop();
        if (!isDone(reply)) {
          // A refusal of the whole batch (401, 403, 400) is each op's answer.
          for (const p of run) p.resolve(reply);
        } else if (Array.isArray(reply.value) && reply.value.length === run.length) {
          run.forEach((p, i) => p.resolve((reply.value as unknown[])[i]));
        } else {
          // Success, but not one reply per op: whatever answered does not know batches, so it
          // applied none of these calls. They go one by one, from now on.
          return this.#unbatched(run);
        }
      },
      (error: unknown) => {
        for (const stop of stops) stop();
        // Anything else is a fault of the whole request: each op's fault.
        if (isSlotgateError(error) && (error.cause as { httpStatus?: unknown } | undefined)?.httpStatus === 404) return this.#unbatched(run);
        throw error;
      },
    );
  }

  /** A Worker from before batches: this run, and every later one, goes call by call. */
  #unbatched(run: readonly Pending<HttpOp>[]): Promise<void> {
    this.#api.batches = false;
    return this.#many(run);
  }

  /** The body of a release or renew: the lease's secret goes along when the store has it. */
  #leaseBody(leaseId: string, more: Record<string, unknown> = {}): Record<string, unknown> {
    const secret = this.#api.secretOf(this.#group, leaseId);
    return secret === undefined ? { leaseId, ...more } : { leaseId, ...more, leaseSecret: secret };
  }
}

const secretKey = (group: string, leaseId: string) => `${group}\u0000${leaseId}`;

/** A successful Reply (which the client will unwrap to its value). */
function isDone<T>(reply: Reply<T>): reply is { status: 0; value: T } {
  return isPlainObject(reply) && reply.status === 0;
}

function isReply(value: unknown): boolean {
  if (!isPlainObject(value) || typeof value.status !== "number") return false;
  return value.status === 0 ? Object.hasOwn(value, "value") : typeof value.detail === "string";
}

function transportFault(op: string, error: unknown): SlotgateError {
  if (error instanceof SlotgateError) return error;
  const name = (error as { name?: unknown } | null)?.name;
  const detail = name === "TimeoutError" ? "no answer in time" : error instanceof Error ? error.message : String(error);
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API ${op} failed: ${detail}`, { cause: error, retryable: true });
}

function httpFault(op: string, status: number, base: string): SlotgateError {
  let hint = "";
  if (status === 404) hint = ` (is ${base} the slotgate Worker, with SLOTGATE_API_TOKENS or SLOTGATE_API_TOKEN set?)`;
  else if (status >= 300 && status < 400) hint = " (redirected: use the final URL)";
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API ${op}: HTTP ${status} without an answer of the store${hint}`, {
    retryable: RETRYABLE_STATUS.has(status),
    cause: { httpStatus: status },
  });
}
