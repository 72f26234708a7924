/**
 * The Durable Object store client: one {@link GroupStore} for a `SlotGroup` object, over a
 * {@link Transport}. Two transports reach the object: RPC through a stub, inside Workers
 * (`rpc-transport.ts`), and HTTPS through the slotgate Worker's slot API, from anywhere with
 * `fetch` (`http-transport.ts`). Everything that decides what a call means lives here, once:
 *
 * - Spec push (SPEC §2 rule 13): each handle pushes its spec on open; every other call waits for
 *   that push, and a failed push is retried by the next call. A push the object refuses for lack
 *   of permission (a `lease`-only token of the slot API) is no fault on open: the handle then uses
 *   the spec the object keeps, and reads as not installed.
 * - Order: once the spec has landed, each call is handed to the transport synchronously, in the
 *   order the guard makes it, so a release followed at once by an acquire reaches the object in
 *   that order (no barging), alone or in one batch (applied in order, in one atomic step).
 * - Retries: only idempotent calls (release and renew by lease id, configure, server state, stats,
 *   cancel), with exponential backoff and jitter, and only on faults the transport marks
 *   `retryable`. An acquire is never retried: the guard applies its outage policy instead.
 * - Cold start: until the transport has had its first answer, idempotent calls (the spec push
 *   every open starts with, and so every acquire behind it) keep retrying a retryable fault for up
 *   to `timeoutMs` rather than `retries` times: a process started beside its Worker is not in an
 *   outage (SPEC §2 rule 11).
 * - Abort versus grant (SPEC §2 rules 7 and 8): an `AbortSignal` sends `cancel` and keeps waiting
 *   for the acquire's own answer: `aborted`, or a grant that won the race, which is released
 *   before the acquire resolves `aborted`. So the caller's next call sees the ticket gone. After
 *   {@link ABORT_GRACE_MS} without an answer it resolves `aborted` anyway; a grant that arrives
 *   later still is released too. If the cancel itself fails, the acquire resolves `aborted` at
 *   once (the ticket then ends at its queue timeout).
 * - Bounds (with `timeoutMs`): each attempt of an idempotent call, and an acquire after its queue
 *   timeout plus `timeoutMs` (its ticket is then cancelled). Without it (RPC), the runtime bounds
 *   calls: a restarted object breaks them.
 * - close(): waiting acquires end `aborted` (their tickets cancelled); `release` keeps working, so
 *   a grant that races close() is given back at once rather than held until its TTL.
 */
import { SlotgateError, StoreStatus } from "../../core/errors.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { ChainRequest, GroupStore, RenewResult, SpecStatus, StoreAcquireResult } from "../../core/store.js";
import { nameSchema, parse } from "../../core/validate.js";
import { checkAcquireOutcome, specStatusOf, unwrap, type Reply } from "./protocol.js";

/**
 * One group's object, reached one way. Each method is one attempt: it leaves in the order the
 * calls are made, at the end of the current turn of the event loop at the latest (a transport
 * sends the calls of one turn together, as one batch), and resolves with the object's reply, as
 * received: the client unwraps it, and refuses one it does not understand. It rejects only with a
 * fault, a `SlotgateError` whose `retryable` says whether another attempt may help. `signal`
 * bounds the attempt where the transport can stop one.
 */
export interface Transport {
  /** Whether the object (or the API in front of it) has answered at least once. */
  readonly answered: boolean;
  /** Sends one acquire of the ticket `waiterId`. */
  acquire(request: ChainRequest, waiterId: string): AcquireCall;
  release(leaseId: string, signal?: AbortSignal): Promise<Reply<boolean>>;
  renew(leaseId: string, ttlMs: number, signal?: AbortSignal): Promise<Reply<RenewResult>>;
  configure(spec: GroupSpec, version: number | null, signal?: AbortSignal): Promise<Reply<unknown>>;
  setServerState(backend: string, server: string, up: boolean, signal?: AbortSignal): Promise<Reply<null>>;
  stats(signal?: AbortSignal): Promise<Reply<GroupStatsSnapshot>>;
}

/** An acquire on its way: the object's answer, and how to cancel its ticket. */
export interface AcquireCall {
  readonly reply: Promise<Reply<StoreAcquireResult>>;
  /** One cancel of this ticket; where the transport can order calls, it reaches the object after the acquire. */
  cancel(signal?: AbortSignal): Promise<Reply<boolean>>;
  /** Stops waiting for the answer, where the transport can (an HTTP long poll); the answer is no longer read. */
  abandon?(): void;
}

export interface RetryPolicy {
  /** How often an idempotent call is retried after a retryable fault. */
  retries: number;
  /** First backoff in ms; it doubles each attempt, with jitter. */
  delayMs: number;
  /** Bound on one attempt, and the cold-start window; an acquire's bound on top of its queue timeout. Undefined: none. */
  timeoutMs?: number;
}

/** After an abort, how long to wait for the object's answer to the acquire. */
export const ABORT_GRACE_MS = 1000;

/** Longest pause between two attempts while the transport has never had an answer (a cold start). */
const COLD_RETRY_MAX_MS = 250;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One idempotent call: `attempt` until it answers, retried on retryable faults (see the module
 * comment for the bounds). The first attempt leaves synchronously.
 */
export async function retrying<T>(
  transport: Transport,
  policy: RetryPolicy,
  attempt: (signal: AbortSignal | undefined) => Promise<Reply<unknown>>,
  interpret: (reply: Reply<unknown>) => T = unwrap as (reply: Reply<unknown>) => T,
): Promise<T> {
  const bound = policy.timeoutMs;
  const coldUntil = bound === undefined || transport.answered ? 0 : performance.now() + bound;
  for (let n = 0; ; n++) {
    let signal: AbortSignal | undefined;
    if (bound !== undefined) {
      const left = coldUntil - performance.now();
      signal = AbortSignal.timeout(left > 0 ? Math.ceil(Math.min(left, bound)) : bound);
    }
    try {
      return interpret(await attempt(signal));
    } catch (error) {
      if (!(error instanceof SlotgateError) || !error.retryable) throw error;
      const cold = !transport.answered && performance.now() < coldUntil;
      if (!cold && n >= policy.retries) throw error;
      const backoff = policy.delayMs * 2 ** Math.min(n, 10) * (0.5 + Math.random() / 2);
      await sleep(cold ? Math.min(backoff, COLD_RETRY_MAX_MS, Math.max(0, coldUntil - performance.now())) : backoff);
    }
  }
}

/**
 * A group's numbers, read without opening it: one idempotent `stats` call, which writes no spec
 * (read-only tools use it alone).
 */
export async function readStats(group: string, policy: RetryPolicy, transportFor: (group: string) => Transport): Promise<GroupStatsSnapshot | undefined> {
  parse(nameSchema, group, "group");
  const transport = transportFor(group);
  return retrying<GroupStatsSnapshot>(transport, policy, (signal) => transport.stats(signal));
}

/** Marks a spec push the object refused for lack of permission. */
const FORBIDDEN = Symbol("forbidden");

export interface GroupOptions {
  /** What the object did with this very spec and version, pushed by the same store before: no push on open. */
  alreadyConfigured?: SpecStatus;
  /** Called after each push the object answered. */
  onConfigured?: (spec: GroupSpec, version: number | null, status: SpecStatus) => void;
}

/** One guard's handle on one group's object. */
export class DurableObjectGroup implements GroupStore {
  readonly #transport: Transport;
  readonly #group: string;
  readonly #policy: RetryPolicy;
  readonly #onConfigured: GroupOptions["onConfigured"];
  #spec: GroupSpec;
  #version: number | null;
  /** What the object did with this handle's spec (SPEC §2 rule 13). */
  #status: SpecStatus | undefined;
  #configured = false;
  #configuring: Promise<void> | undefined;
  #closed = false;
  /** Acquires of this handle still waiting, by waiter id. */
  readonly #waiting = new Map<string, { giveUp: () => void; result: Promise<StoreAcquireResult> }>();

  constructor(transport: Transport, group: string, spec: GroupSpec, version: number | null, policy: RetryPolicy, options: GroupOptions = {}) {
    this.#transport = transport;
    this.#group = group;
    this.#spec = spec;
    this.#version = version;
    this.#policy = policy;
    this.#onConfigured = options.onConfigured;
    if (options.alreadyConfigured) {
      this.#status = options.alreadyConfigured;
      this.#configured = true;
      this.#configuring = Promise.resolve();
      return;
    }
    // Push the spec now. Calls made before it lands wait for it. A failure is retried by the next call.
    this.#ensureConfigured().catch(() => undefined);
  }

  acquire(request: ChainRequest, signal?: AbortSignal): Promise<StoreAcquireResult> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "aborted" });
    const waiterId = crypto.randomUUID();
    let giveUp!: () => void;
    const result = new Promise<StoreAcquireResult>((resolve, reject) => {
      let settled = false;
      let aborting = false;
      let call: AcquireCall | undefined;
      let grace: ReturnType<typeof setTimeout> | undefined;
      let bound: ReturnType<typeof setTimeout> | undefined;
      const settle = () => {
        settled = true;
        clearTimeout(grace);
        clearTimeout(bound);
        this.#waiting.delete(waiterId);
        signal?.removeEventListener("abort", giveUp);
      };
      const aborted = () => {
        if (settled) return;
        settle();
        // Only here and on a fault: ending a call that has answered could cost a kept-alive connection.
        call?.abandon?.();
        resolve({ ok: false, reason: "aborted" });
      };
      const cancel = (sent: AcquireCall) => this.#retrying((s) => sent.cancel(s));
      giveUp = () => {
        if (settled || aborting) return;
        aborting = true;
        if (!call) return aborted();
        // The acquire then answers `aborted`, or with a grant that won the race (released below).
        // If the cancel fails, the ticket ends at its queue timeout: nothing to wait for.
        cancel(call).catch(aborted);
        grace = setTimeout(aborted, ABORT_GRACE_MS);
      };
      signal?.addEventListener("abort", giveUp, { once: true });

      const onFault = (error: unknown) => {
        if (aborting) return aborted();
        if (settled) return;
        settle();
        call?.abandon?.();
        reject(error);
      };
      const onReply = (reply: Reply<StoreAcquireResult>) => {
        let outcome: StoreAcquireResult;
        try {
          outcome = checkAcquireOutcome(unwrap(reply));
        } catch (error) {
          return onFault(error);
        }
        if (!settled && !aborting) {
          settle();
          resolve(outcome);
        } else if (outcome.ok) {
          // The grant won the race with the abort (or came after the acquire gave up): give the
          // slot back (rule 7), then resolve `aborted` if that is still to do.
          void this.#releaseQuietly(outcome.lease.id).then(aborted);
        } else {
          aborted();
        }
      };
      const send = () => {
        if (aborting) return aborted();
        const sent = (call = this.#transport.acquire(request, waiterId));
        const timeoutMs = this.#policy.timeoutMs;
        if (timeoutMs !== undefined) {
          const limit = request.queueTimeoutMs + timeoutMs;
          bound = setTimeout(() => {
            // No answer long after the ticket's own timeout: the call is stuck somewhere.
            cancel(sent).catch(() => undefined);
            onFault(new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `Durable Object acquire: no answer within ${limit}ms`, { retryable: true }));
          }, limit);
        }
        sent.reply.then(onReply, onFault);
      };
      if (this.#configured) send();
      else this.#ensureConfigured().then(send, onFault);
    });
    this.#waiting.set(waiterId, { giveUp, result });
    return result;
  }

  /** Works after close() (the store contract): a grant that raced close() is given back at once, not held until its TTL. */
  release(leaseId: string): Promise<boolean> {
    return this.#whenConfigured(() => this.#retrying((s) => this.#transport.release(leaseId, s)));
  }

  async renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#retrying((s) => this.#transport.renew(leaseId, ttlMs, s)));
  }

  async ready(): Promise<SpecStatus> {
    this.#checkOpen();
    await this.#ensureConfigured();
    return this.#status ?? { installed: true, storedVersion: this.#version };
  }

  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#push(spec, version, false));
  }

  async setServerState(backend: string, server: string, up: boolean): Promise<void> {
    this.#checkOpen();
    await this.#whenConfigured(() => this.#retrying((s) => this.#transport.setServerState(backend, server, up, s)));
  }

  async stats(): Promise<GroupStatsSnapshot> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#retrying<GroupStatsSnapshot>((s) => this.#transport.stats(s)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const waiting = [...this.#waiting.values()];
    for (const w of waiting) w.giveUp();
    await Promise.allSettled(waiting.map((w) => w.result));
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  #retrying<T>(attempt: (signal: AbortSignal | undefined) => Promise<Reply<unknown>>, interpret?: (reply: Reply<unknown>) => T): Promise<T> {
    return retrying(this.#transport, this.#policy, attempt, interpret);
  }

  /**
   * Runs `fn` once the object has this handle's spec. When it has, `fn` runs synchronously, so
   * the calls leave in the order they were made.
   */
  #whenConfigured<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#configured) {
      try {
        return fn();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#ensureConfigured().then(fn);
  }

  #ensureConfigured(): Promise<void> {
    this.#configuring ??= this.#push(this.#spec, this.#version, true).then(
      () => {
        this.#configured = true;
      },
      (error: unknown) => {
        this.#configuring = undefined;
        throw error;
      },
    );
    return this.#configuring;
  }

  /**
   * One configure call; the spec becomes this handle's once the object took it or kept a newer
   * one. `onOpen`: the push of open(), where a refusal for lack of permission is no fault (the
   * object keeps the spec someone allowed to push it pushed; which version, this handle cannot
   * tell: it reads as not installed).
   */
  async #push(spec: GroupSpec, version: number | null, onOpen: boolean): Promise<SpecStatus> {
    const value = await this.#retrying<unknown>(
      (s) => this.#transport.configure(spec, version, s),
      (reply) => (onOpen && (reply as { status?: unknown } | null)?.status === StoreStatus.Forbidden ? FORBIDDEN : unwrap(reply)),
    );
    const status: SpecStatus = value === FORBIDDEN ? { installed: false, storedVersion: null } : specStatusOf(value, this.#group, spec, version);
    this.#spec = spec;
    this.#version = version;
    this.#status = status;
    this.#onConfigured?.(spec, version, status);
    return status;
  }

  /** Releases a grant nobody wants any more. If that fails too, the lease TTL reclaims the slot. */
  #releaseQuietly(leaseId: string): Promise<unknown> {
    return this.#retrying((s) => this.#transport.release(leaseId, s)).catch(() => undefined);
  }
}

function closedError(): SlotgateError {
  return new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
}
