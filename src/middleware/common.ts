/**
 * What the framework middleware (hono, express, fastify) share, whatever the framework: their
 * options and how they are checked, how a request's acquire options are resolved, the answer to a
 * rejection (the edge node's, from src/edge/answers.ts), and a request's hold on its lease, which
 * gives the slot back exactly once. Each framework's file only wires these to its request, its
 * response and its hooks. Runtime-neutral: Web-standard APIs only, so the hono entry runs in Workers.
 */
import { MAX_TTL_MS } from "../core/acquire-options.js";
import { SlotgateConfigError } from "../core/errors.js";
import type { AcquireOptions } from "../core/acquire-options.js";
import type { Guard } from "../core/guard.js";
import type { Lease } from "../core/lease.js";
import { PRIORITY_CLASS_MAX, PRIORITY_CLASS_MIN, PRIORITY_OFFSET_MAX_MS, PRIORITY_OFFSET_MIN_MS } from "../core/state/order.js";
import { KEY_VALUE_EXPECTED, isKeyValue } from "../core/spec.js";
import { Issues, boolean, check, checkKnownKeys, int, isPlainObject } from "../core/validate.js";
import { DEFAULT_RETRY_AFTER_MS, classifyGuardFault, denyAnswer, type Answer, type DenyReason } from "../edge/answers.js";

/** A value given once, or computed per request from the framework's request (or context). */
export type PerRequest<Req, T> = T | ((req: Req) => T | Promise<T>);

export interface Priority {
  /** HAProxy's set-priority-class: −2047…2047, lower first. */
  class?: number;
  /** HAProxy's set-priority-offset in ms: ±524287, lower first. */
  offsetMs?: number;
}

/** The options every framework's middleware takes; `Req` is its request (hono: the context). */
export interface SlotgateMiddlewareOptions<Req> {
  /**
   * The guard whose limits hold the requests. A function is called once per request, and the
   * guard it returns is closed when that request is done: use it where a guard cannot outlive its
   * request (Workers with the Durable Object store: keep the store per isolate, with
   * `configureOnce: true`, and build the guard per request).
   */
  guard: Guard | ((req: Req) => Guard);
  /** The scopes of each request's chain, e.g. `["global", "tenant:acme"]`. @default [] */
  scopes?: PerRequest<Req, readonly string[]>;
  /** Take a slot on one of this backend's servers, chosen by its `balance`. */
  backend?: PerRequest<Req, string | undefined>;
  /** Priority class and offset (HAProxy's set-priority-class / set-priority-offset). */
  priority?: PerRequest<Req, Priority | undefined>;
  /** How long a request may wait in the queue; 0 rejects at once. @default the guard's default */
  queueTimeoutMs?: number;
  /** Lease lifetime on the store's clock; renewed while the request runs. @default the guard's default */
  leaseTtlMs?: number;
  /** The status of a rejection. @default 503 */
  denyStatus?: 503 | 429;
  /**
   * The request's fairness flow (a tenant, an API key): within a priority class, waiting requests
   * are served fairly across flows, weighted by the guard's `queue.flowWeights`. 1–1024
   * characters; `undefined` or `""`: no flow. A longer value is answered 400.
   */
  flow?: PerRequest<Req, string | undefined>;
  /**
   * Reject at once (`queue-timeout`, with `Retry-After` from the store's estimate) a request whose
   * estimated wait exceeds its queue timeout, rather than let it wait in vain. @default the guard's default (false)
   */
  queueTimeoutEarly?: boolean;
}

/** What the middleware knows of a rejection, for `onRejected`; `answer` is what it would send. */
export interface Rejection {
  reason: DenyReason;
  retryAfterMs: number;
  answer: Answer;
}

/** The keys of the shared options, plus `onRejected`, which each framework types its own way. */
const OPTION_KEYS = ["guard", "scopes", "backend", "priority", "queueTimeoutMs", "leaseTtlMs", "denyStatus", "flow", "queueTimeoutEarly", "onRejected"];

/** What the framework files get back from {@link createGate}. */
export interface Gate<Req> {
  /**
   * Takes a slot for one request, before its handler runs. `signal` aborts when the client goes
   * away: a queued request then leaves the queue.
   */
  enter(req: Req, signal: AbortSignal | undefined): Promise<Entry>;
}

export type Entry =
  /** The slot is taken: the handler runs, and the hold gives it back once. */
  | { kind: "granted"; hold: Hold }
  /** No slot: answer the rejection (or let `onRejected` answer). */
  | { kind: "rejected"; rejection: Rejection }
  /** The client left while queued: nobody is there to answer. */
  | { kind: "gone" }
  /** The request carried a value the guard refuses (a key value too long, say): 400. */
  | { kind: "bad-request"; answer: Answer };

/**
 * A request's slot: released exactly once, by whichever comes first of the response sent, the
 * handler's error and the client's leaving. A guard made for the request is closed after it.
 */
export class Hold {
  readonly lease: Lease;
  readonly #ownGuard: Guard | undefined;
  #released: Promise<void> | undefined;
  /** Made on first use of `done` (only Workers need it): a promise per request is not free. */
  #done: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(lease: Lease, ownGuard: Guard | undefined) {
    this.lease = lease;
    this.#ownGuard = ownGuard;
  }

  get released(): boolean {
    return this.#released !== undefined;
  }

  /** Settles once the slot is given back (and a guard made for the request closed). */
  get done(): Promise<void> {
    if (this.#released) return this.#released;
    if (!this.#done) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#done = { promise, resolve };
    }
    return this.#done.promise;
  }

  /** Idempotent; never rejects (a store fault is the guard's to report, and the TTL reclaims the slot). */
  release(): Promise<void> {
    if (this.#released) return this.#released;
    const guard = this.#ownGuard;
    this.#released = (guard ? this.lease.release().then(() => guard.close()) : this.lease.release()).then(
      () => this.#done?.resolve(),
      () => this.#done?.resolve(),
    );
    return this.#released;
  }
}

/** The headers of an answer the middleware sends itself: plain text, never cached. */
export function answerHeaders(answer: Answer): Record<string, string> {
  return { ...answer.headers, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
}

/**
 * The response body as the client reads it, calling `end` once when the body is done: read to
 * its end, failed, or cancelled (the client went away). Pulled chunk by chunk, so "read to its
 * end" means handed to the server that sends it, as far as the runtime lets a middleware see.
 */
export function bodyWithEnd<T>(body: ReadableStream<T>, end: () => void): ReadableStream<T> {
  const reader = body.getReader();
  return new ReadableStream<T>(
    {
      async pull(controller) {
        let chunk: ReadableStreamReadResult<T>;
        try {
          chunk = await reader.read();
        } catch (error) {
          end();
          controller.error(error);
          return;
        }
        if (chunk.done) {
          end();
          controller.close();
        } else controller.enqueue(chunk.value);
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Checks the options once, at construction: a mistake fails there, naming the option. */
export function createGate<Req>(options: SlotgateMiddlewareOptions<Req>, onRejected: unknown): Gate<Req> {
  if (!isPlainObject(options as unknown)) {
    throw new SlotgateConfigError([{ path: "options", expected: "an object { guard, scopes?, backend?, priority?, … }", received: options }]);
  }
  const issues = new Issues();
  checkKnownKeys(issues, "", options as unknown as Record<string, unknown>, OPTION_KEYS);
  const guard = options.guard as unknown;
  if (typeof guard !== "function" && !isGuard(guard)) issues.add("guard", "a Guard (createGuard(…)) or a function (request) => Guard", guard);
  checkScopes(issues, options.scopes);
  if (options.backend !== undefined && typeof options.backend !== "function" && typeof options.backend !== "string") {
    issues.add("backend", "a backend name or a function (request) => name", options.backend);
  }
  if (options.priority !== undefined && typeof options.priority !== "function") checkPriority(issues, "priority", options.priority);
  if (options.queueTimeoutMs !== undefined) check(issues, "queueTimeoutMs", int({ min: 0, max: MAX_TTL_MS }), options.queueTimeoutMs);
  if (options.leaseTtlMs !== undefined) check(issues, "leaseTtlMs", int({ min: 1, max: MAX_TTL_MS }), options.leaseTtlMs);
  if (options.flow !== undefined && typeof options.flow !== "function" && !isKeyValue(options.flow)) {
    // The value itself is not echoed: a flow may be an API key.
    issues.add("flow", `a flow name (${KEY_VALUE_EXPECTED}) or a function (request) => flow`, typeof options.flow);
  }
  if (options.queueTimeoutEarly !== undefined) check(issues, "queueTimeoutEarly", boolean(), options.queueTimeoutEarly);
  const denyStatus = options.denyStatus ?? 503;
  if (denyStatus !== 503 && denyStatus !== 429) issues.add("denyStatus", "503 or 429", denyStatus);
  if (onRejected !== undefined && typeof onRejected !== "function") issues.add("onRejected", "a function", onRejected);
  if (!issues.empty) throw new SlotgateConfigError(issues.list);

  const { scopes, backend, priority, queueTimeoutMs, leaseTtlMs, flow, queueTimeoutEarly } = options;
  const guardFor = typeof guard === "function" ? (guard as (req: Req) => Guard) : undefined;
  const reject = (reason: DenyReason, retryAfterMs: number): Entry => ({
    kind: "rejected",
    rejection: { reason, retryAfterMs, answer: denyAnswer(denyStatus, reason, retryAfterMs) },
  });

  return {
    async enter(req, signal) {
      const acquire: AcquireOptions = { scopes: await resolve(scopes, req, []), signal };
      const b = backend === undefined ? undefined : await resolve(backend, req, undefined);
      if (b !== undefined) acquire.backend = b;
      const p = priority === undefined ? undefined : await resolve(priority, req, undefined);
      if (p !== undefined) acquire.priority = p;
      if (queueTimeoutMs !== undefined) acquire.queueTimeoutMs = queueTimeoutMs;
      if (leaseTtlMs !== undefined) acquire.leaseTtlMs = leaseTtlMs;
      const f = flow === undefined ? undefined : await resolve(flow, req, undefined);
      if (f !== undefined && f !== "") acquire.flow = f;
      if (queueTimeoutEarly !== undefined) acquire.queueTimeoutEarly = queueTimeoutEarly;

      const g = guardFor ? guardFor(req) : (guard as Guard);
      if (guardFor && !isGuard(g)) throw new SlotgateConfigError([{ path: "guard", expected: "a function that returns a Guard", received: g }]);
      const closeOwn = () => (guardFor ? g.close().catch(() => undefined) : undefined);
      let result: Awaited<ReturnType<Guard["acquire"]>>;
      try {
        result = await g.acquire(acquire);
      } catch (error) {
        await closeOwn();
        const fault = classifyGuardFault(error);
        if (fault === "closed") return reject("unavailable", DEFAULT_RETRY_AFTER_MS);
        if (fault === "bad-request") return { kind: "bad-request", answer: BAD_REQUEST };
        throw error;
      }
      if (!result.ok) {
        await closeOwn();
        if (signal?.aborted) return { kind: "gone" };
        // `aborted` with the client still there: the guard was closing.
        return reject(result.reason === "aborted" ? "unavailable" : result.reason, result.retryAfterMs);
      }
      const hold = new Hold(result.lease, guardFor ? g : undefined);
      if (signal?.aborted) {
        await hold.release();
        return { kind: "gone" };
      }
      return { kind: "granted", hold };
    },
  };
}

const BAD_REQUEST: Answer = { status: 400, headers: {}, body: "400 Bad Request\n" };

/** The value for this request: a function's result (which may be a promise), or the value itself. */
function resolve<Req, T>(value: PerRequest<Req, T> | undefined, req: Req, fallback: T): T | Promise<T> {
  if (value === undefined) return fallback;
  return typeof value === "function" ? (value as (req: Req) => T | Promise<T>)(req) : value;
}

function isGuard(value: unknown): value is Guard {
  return typeof value === "object" && value !== null && typeof (value as Guard).acquire === "function" && typeof (value as Guard).close === "function";
}

function checkScopes(issues: Issues, scopes: unknown): void {
  if (scopes === undefined || typeof scopes === "function") return;
  if (!Array.isArray(scopes)) return issues.add("scopes", "an array of scope names or a function (request) => scope names", scopes);
  scopes.forEach((s: unknown, i) => {
    if (typeof s !== "string") issues.add(`scopes[${i}]`, "a scope name (string)", s);
  });
}

function checkPriority(issues: Issues, path: string, p: unknown): void {
  if (!isPlainObject(p)) return issues.add(path, "an object { class?, offsetMs? } or a function (request) => priority", p);
  checkKnownKeys(issues, path, p, ["class", "offsetMs"]);
  if (p.class !== undefined) check(issues, `${path}.class`, int({ min: PRIORITY_CLASS_MIN, max: PRIORITY_CLASS_MAX }), p.class);
  if (p.offsetMs !== undefined) check(issues, `${path}.offsetMs`, int({ min: PRIORITY_OFFSET_MIN_MS, max: PRIORITY_OFFSET_MAX_MS }), p.offsetMs);
}
