/**
 * The Durable Object store over HTTPS: the {@link SlotStore} contract for processes outside
 * Cloudflare (a Node edge node: `store: { type: durable-object, url, token }`), backed by the
 * `SlotGroup` objects the slotgate Worker serves through its slot API. Node edge nodes and
 * Workers then take slots from the same objects: one fleet, two runtimes.
 *
 * Runtime-neutral: only `fetch`, `AbortSignal`, `crypto.randomUUID` and timers; no `node:`
 * imports. The wire contract is src/cloudflare/slot-api-protocol.ts.
 *
 * - Cost: one HTTPS request per uncontended acquire and one per release. A queued acquire is
 *   one open request (a long poll), with no polling. Each `open()` sends one `configure`.
 * - Errors: every answer of the object, and the API's own refusals (401 for a wrong token, 400,
 *   413), are Replies, turned into errors by `unwrap` and `storeStatusError` as for the Worker's
 *   own store (a 2xx body that is no Reply is `SLOTGATE_STORE_PROTOCOL`, as there). A request
 *   that gets no usable answer (network error, timeout, a 5xx or 404 without a Reply, a redirect)
 *   is `SLOTGATE_STORE_UNAVAILABLE`; its `retryable` says whether trying again may help.
 * - Retries: only idempotent calls are retried (release and renew by lease id, configure,
 *   server state, stats, cancel), with exponential backoff, and only on retryable faults. An
 *   acquire is never retried: the guard applies its outage policy instead.
 * - Cold start: until the slot API has answered once, idempotent calls retry for up to
 *   `timeoutMs` rather than `retries` times. Every acquire waits for its handle's spec push, so the
 *   first acquires of a process started beside its Worker wait for it instead of failing.
 * - Abort: an `AbortSignal` sends `cancel` from a second request and keeps the acquire's request
 *   open for the object's answer: `aborted`, or a grant that won the race, which is released (rule
 *   7). After {@link ABORT_GRACE_MS} without an answer, the acquire resolves `aborted` anyway.
 * - Bounds: an idempotent call gives up after `timeoutMs`; an acquire after its queue timeout
 *   plus `timeoutMs`.
 * - Security: the token goes in an `Authorization: Bearer` header, only to the configured origin
 *   (redirects are not followed), and only over https, or plain http to a loopback address.
 *   Errors never include it.
 * - Lease secrets: a grant's reply carries the lease's secret (`leaseSecret`); the store keeps it
 *   in memory with the lease id (never in a lease object, an event or an error) and sends it with
 *   every release and renew of that lease. It is forgotten once the lease is released, or long
 *   after the lease would have expired.
 * - Permissions: with a token that may lease but not configure (a `lease` token of
 *   `SLOTGATE_API_TOKENS`), the spec `open()` pushes is refused (403); the handle then uses the
 *   spec the object has (pushed by the Worker or an admin). An explicit `configure()` still fails.
 */
import { SlotgateConfigError, SlotgateError, StoreStatus } from "../../core/errors.js";
import { redactCredentials } from "../../core/redact.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { ChainRequest, GroupStore, OpenOptions, RenewResult, SlotStore, SpecStatus, StoreAcquireResult } from "../../core/store.js";
import type { GroupStatsSnapshot as Snapshot } from "../../core/stats.js";
import { Issues, checkInt, checkName, isPlainObject } from "../../core/validate.js";
import { specStatusOf, unwrap, type Reply } from "../../cloudflare/protocol.js";
import { PING_PATH, SLOT_API_OPS, isSlotApiFault, slotApiPath, type SlotApiOp } from "../../cloudflare/slot-api-protocol.js";

/** The part of `fetch` this store uses. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface DurableObjectHttpStoreOptions {
  /**
   * The slotgate Worker's URL, `https://…` (plain `http://` only to a loopback address, for
   * `wrangler dev`). The slot API lives under `<url>/_slotgate/v1/`; a path in the URL is kept,
   * for a Worker mounted under one.
   * @example "https://<your worker>.workers.dev"
   */
  url: string;
  /**
   * A slot API token of the Worker (an entry of `SLOTGATE_API_TOKENS` with `lease`, and `admin` to
   * push the spec, on this node's groups; or `SLOTGATE_API_TOKEN`): 16–4096 printable ASCII characters.
   */
  token: string;
  /** @default globalThis.fetch */
  fetch?: FetchLike;
  /** How often an idempotent call is retried after a retryable fault, 0–10. @default 3 */
  retries?: number;
  /** First backoff in ms. It doubles each attempt, with jitter. @default 50 */
  retryDelayMs?: number;
  /** Bound on one call (an acquire: on top of its queue timeout), 100 ms–10 min. @default 10000 */
  timeoutMs?: number;
}

/** A {@link SlotStore} that can also check that the slot API answers and accepts the token. */
export interface DurableObjectHttpStore extends SlotStore {
  /** Resolves when the slot API answers `ping` with this token; rejects with a coded error otherwise. */
  ping(signal?: AbortSignal): Promise<void>;
}

/** After an abort, how long to wait for the object's answer to the acquire. */
export const ABORT_GRACE_MS = 1000;

const OPTION_KEYS = ["url", "token", "fetch", "retries", "retryDelayMs", "timeoutMs"];
const TOKEN = /^[\x21-\x7e]{16,4096}$/;

export function createDurableObjectHttpStore(options: DurableObjectHttpStoreOptions): DurableObjectHttpStore {
  if (!isPlainObject(options as unknown)) {
    throw new SlotgateConfigError([{ path: "options", expected: "an object { url, token, fetch?, retries?, retryDelayMs?, timeoutMs? }", received: options }]);
  }
  const issues = new Issues();
  for (const key of Object.keys(options)) if (!OPTION_KEYS.includes(key)) issues.add(key, `one of the keys ${OPTION_KEYS.join(", ")}`, key);
  const base = checkUrl(issues, options.url);
  if (typeof options.token !== "string" || !TOKEN.test(options.token)) {
    issues.add("token", "the slot API token: 16 to 4096 printable ASCII characters without spaces", typeof options.token === "string" ? `(${options.token.length} characters, not shown)` : options.token);
  }
  if (options.fetch !== undefined && typeof options.fetch !== "function") issues.add("fetch", "a fetch function", options.fetch);
  if (options.fetch === undefined && typeof globalThis.fetch !== "function") issues.add("fetch", "a fetch function (this runtime has no global fetch)", undefined);
  const retries = options.retries === undefined ? 3 : checkInt(issues, "retries", options.retries, { min: 0, max: 10 });
  const retryDelayMs = options.retryDelayMs === undefined ? 50 : checkInt(issues, "retryDelayMs", options.retryDelayMs, { min: 0, max: 60_000 });
  const timeoutMs = options.timeoutMs === undefined ? 10_000 : checkInt(issues, "timeoutMs", options.timeoutMs, { min: 100, max: 600_000 });
  if (!issues.empty) throw new SlotgateConfigError(issues.list);

  const client = new Client(base!, options.token, options.fetch ?? ((input, init) => globalThis.fetch(input, init)), {
    retries: retries!,
    delayMs: retryDelayMs!,
    timeoutMs: timeoutMs!,
  });
  return {
    kind: "durable-object",
    open: (group: string, spec: GroupSpec, openOptions: OpenOptions = {}): GroupStore => new HttpGroup(client, group, spec, openOptions.version ?? null),
    // Read-only: the stats route writes no spec (and a lease token may call it).
    readStats: (group: string): Promise<Snapshot | undefined> => {
      const issues = new Issues();
      checkName(issues, "group", group);
      if (!issues.empty) return Promise.reject(new SlotgateConfigError(issues.list));
      return client.idempotent<Snapshot>(group, "stats", undefined);
    },
    ping: (signal?: AbortSignal) => client.call<unknown>(null, "ping", undefined, signal ?? AbortSignal.timeout(timeoutMs!)).then(() => undefined),
  };
}

/** The URL without a trailing slash; http only to loopback; no credentials, query or fragment. */
function checkUrl(issues: Issues, value: unknown): string | undefined {
  const expected = "the slotgate Worker's https:// URL (http:// only for a loopback address), without credentials, query or fragment";
  if (typeof value !== "string" || value.length > 2048) {
    issues.add("url", expected, value);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    issues.add("url", expected, value);
    return undefined;
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if ((url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) || url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "" || value.includes("#")) {
    issues.add("url", expected, redactCredentials(value));
    return undefined;
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

interface Policy {
  retries: number;
  delayMs: number;
  timeoutMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** HTTP statuses (without a Reply) worth another try: the request may not have been served. */
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526, 527, 530]);

/** Turns a parsed Reply (the whole JSON object, extra fields included) into the call's value. */
type Interpret<T> = (reply: Record<string, unknown>) => T;

/** Longest pause between two attempts while the slot API has never answered (a cold start). */
const COLD_RETRY_MAX_MS = 250;

/** A secret is dropped this long after its lease would have expired (leases never released). */
const SECRET_GRACE_MS = 10 * 60_000;
/** Forgotten secrets are swept at most this often. */
const SECRET_SWEEP_MS = 60_000;

/** The transport: one request to one route, its answer as a value or a coded error. */
class Client {
  readonly policy: Policy;
  readonly #base: string;
  readonly #authorization: string;
  readonly #fetch: FetchLike;
  /** Lease secrets by group and lease id, with the local time after which they may be dropped. */
  readonly #secrets = new Map<string, { secret: string; dropAfter: number }>();
  #sweptAt = 0;
  /**
   * The slot API has answered at least once (any HTTP answer). Before that, an idempotent call
   * (the spec every open() pushes first, and so every acquire behind it) keeps retrying a fault
   * that may pass for up to `timeoutMs`: a process started beside its Worker is not in an outage
   * (SPEC §2 rule 11). After it, the `retries` count bounds retries as usual.
   */
  #answered = false;

  constructor(base: string, token: string, fetch: FetchLike, policy: Policy) {
    this.#base = base;
    this.#authorization = `Bearer ${token}`;
    this.#fetch = fetch;
    this.policy = policy;
  }

  /**
   * One request. The fetch leaves synchronously, so calls leave in the order they are made.
   * `group` null: the `ping` route.
   */
  call<T>(group: string | null, op: SlotApiOp | "ping", body: unknown, signal: AbortSignal, interpret: Interpret<T> = (r) => unwrap(r as Reply<T>)): Promise<T> {
    const path = group === null ? PING_PATH : slotApiPath(group, op as SlotApiOp);
    const method = group === null ? "GET" : SLOT_API_OPS[op as SlotApiOp];
    let sent: Promise<Response>;
    try {
      sent = this.#fetch(this.#base + path, {
        method,
        headers: body === undefined ? { authorization: this.#authorization, accept: "application/json" } : { authorization: this.#authorization, accept: "application/json", "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: "manual",
        signal,
      });
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.then(
      async (res) => {
        this.#answered = true;
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
        if (isReply(parsed)) return interpret(parsed as Record<string, unknown>);
        if (isSlotApiFault(parsed)) throw new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API ${op}: ${parsed.detail}`, { retryable: parsed.retryable });
        // A success status with a body that is no reply: the same protocol error as from the object.
        if (res.status >= 200 && res.status < 300) return unwrap(parsed as Reply<T>);
        throw httpFault(op, res.status, this.#base);
      },
      (error: unknown) => {
        throw transportFault(op, error);
      },
    );
  }

  /** An idempotent call, retried on retryable faults; each attempt bounded by `timeoutMs`. */
  async idempotent<T>(group: string, op: SlotApiOp, body: unknown, interpret?: Interpret<T>): Promise<T> {
    const coldUntil = this.#answered ? 0 : performance.now() + this.policy.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const left = coldUntil - performance.now();
      try {
        return await this.call<T>(group, op, body, AbortSignal.timeout(left > 0 ? Math.ceil(Math.min(left, this.policy.timeoutMs)) : this.policy.timeoutMs), interpret);
      } catch (error) {
        if (!(error instanceof SlotgateError) || !error.retryable) throw error;
        const cold = !this.#answered && performance.now() < coldUntil;
        if (!cold && attempt >= this.policy.retries) throw error;
        const backoff = this.policy.delayMs * 2 ** Math.min(attempt, 10) * (0.5 + Math.random() / 2);
        await sleep(cold ? Math.min(backoff, COLD_RETRY_MAX_MS, Math.max(0, coldUntil - performance.now())) : backoff);
      }
    }
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

const secretKey = (group: string, leaseId: string) => `${group}\u0000${leaseId}`;

/** The body of a release or renew: the lease's secret goes along when the store has it. */
function leaseBody(leaseId: string, secret: string | undefined, more: Record<string, unknown> = {}): Record<string, unknown> {
  return secret === undefined ? { leaseId, ...more } : { leaseId, ...more, leaseSecret: secret };
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
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API ${op}: HTTP ${status} without an answer of the store${hint}`, { retryable: RETRYABLE_STATUS.has(status) });
}

function closedError(): SlotgateError {
  return new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
}

/** Marks a configure the token may not send. */
const FORBIDDEN = Symbol("forbidden");

/** One guard's handle on one group's object, through the slot API. */
class HttpGroup implements GroupStore {
  readonly #client: Client;
  readonly #group: string;
  #spec: GroupSpec;
  #version: number | null;
  /** What the object did with this handle's spec (SPEC §2 rule 13). */
  #status: SpecStatus | undefined;
  #configured = false;
  #configuring: Promise<void> | undefined;
  #closed = false;
  /** Acquires of this handle still waiting, by waiter id. */
  readonly #waiting = new Map<string, { giveUp: () => void; result: Promise<StoreAcquireResult> }>();

  constructor(client: Client, group: string, spec: GroupSpec, version: number | null) {
    this.#client = client;
    this.#group = group;
    this.#spec = spec;
    this.#version = version;
    // Push the spec now. Calls made before it lands wait for it. A failure is retried by the next call.
    this.#ensureConfigured().catch(() => undefined);
  }

  acquire(request: ChainRequest, signal?: AbortSignal): Promise<StoreAcquireResult> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "aborted" });
    const waiterId = crypto.randomUUID();
    const http = new AbortController();
    let giveUp!: () => void;
    const result = new Promise<StoreAcquireResult>((resolve, reject) => {
      let settled = false;
      let aborting = false;
      let sent = false;
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
        // Ends the long poll if it is still open: its answer is no longer awaited. (Only here: an
        // abort after a complete answer would cost the kept-alive connection.)
        http.abort();
        resolve({ ok: false, reason: "aborted" });
      };
      giveUp = () => {
        if (settled || aborting) return;
        aborting = true;
        if (!sent) return aborted();
        // The acquire's own request then answers `aborted`, or with a grant that won the race.
        this.#client.idempotent<boolean>(this.#group, "cancel", { waiterId }).catch(aborted);
        grace = setTimeout(aborted, ABORT_GRACE_MS);
      };
      signal?.addEventListener("abort", giveUp, { once: true });

      const onResult = (outcome: StoreAcquireResult) => {
        if (settled) {
          if (outcome.ok) void this.#releaseQuietly(outcome.lease.id);
          return;
        }
        if (!aborting) {
          settle();
          resolve(outcome);
        } else if (outcome.ok) {
          // The grant won the race with the abort: give the slot back (rule 7).
          void this.#releaseQuietly(outcome.lease.id).then(aborted);
        } else {
          aborted();
        }
      };
      const onFault = (error: unknown) => {
        if (aborting) return aborted();
        if (settled) return;
        settle();
        http.abort();
        reject(error);
      };
      const send = () => {
        if (aborting) return aborted();
        sent = true;
        const limit = request.queueTimeoutMs + this.#client.policy.timeoutMs;
        bound = setTimeout(() => {
          // No answer long after the ticket's own timeout: the request is stuck somewhere.
          this.#client.idempotent<boolean>(this.#group, "cancel", { waiterId }).catch(() => undefined);
          onFault(new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `slot API acquire: no answer within ${limit}ms`, { retryable: true }));
        }, limit);
        this.#client.call<StoreAcquireResult>(this.#group, "acquire", { request, waiterId }, http.signal, (reply) => {
          const outcome = unwrap(reply as Reply<StoreAcquireResult>);
          // Kept before anything else sees the grant, so even a grant that lost a race can be released.
          if (outcome.ok) this.#client.rememberSecret(this.#group, outcome.lease, reply.leaseSecret);
          return outcome;
        }).then(onResult, onFault);
      };
      if (this.#configured) send();
      else this.#ensureConfigured().then(send, onFault);
    });
    this.#waiting.set(waiterId, { giveUp, result });
    return result;
  }

  /** Keeps working after close(), so a grant that races close() is given back (the contract). */
  release(leaseId: string): Promise<boolean> {
    return this.#whenConfigured(async () => {
      const released = await this.#client.idempotent<boolean>(this.#group, "release", leaseBody(leaseId, this.#client.secretOf(this.#group, leaseId)));
      this.#client.forgetSecret(this.#group, leaseId);
      return released;
    });
  }

  async renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    this.#checkOpen();
    return this.#whenConfigured(async () => {
      const renewed = await this.#client.idempotent<RenewResult>(this.#group, "renew", leaseBody(leaseId, this.#client.secretOf(this.#group, leaseId), { ttlMs }));
      if (renewed.ok) this.#client.extendSecret(this.#group, leaseId, ttlMs);
      return renewed;
    });
  }

  async ready(): Promise<SpecStatus> {
    this.#checkOpen();
    await this.#ensureConfigured();
    return this.#status ?? { installed: true, storedVersion: this.#version };
  }

  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    this.#checkOpen();
    return this.#whenConfigured(async () => {
      const value = await this.#client.idempotent<unknown>(this.#group, "configure", { spec, version });
      const status = specStatusOf(value, this.#group, spec, version);
      this.#spec = spec;
      this.#version = version;
      this.#status = status;
      return status;
    });
  }

  async setServerState(backend: string, server: string, up: boolean): Promise<void> {
    this.#checkOpen();
    await this.#whenConfigured(() => this.#client.idempotent<null>(this.#group, "server-state", { backend, server, up }));
  }

  async stats(): Promise<GroupStatsSnapshot> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#client.idempotent<GroupStatsSnapshot>(this.#group, "stats", undefined));
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

  /** Runs `fn` once the object has this handle's spec; at once (synchronously) when it has. */
  #whenConfigured<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#configured) return fn();
    return this.#ensureConfigured().then(fn);
  }

  #ensureConfigured(): Promise<void> {
    // A token without the admin permission may still lease: the object keeps the spec someone
    // with that permission pushed, so a refusal here is not a fault of this handle.
    // Such a handle cannot tell which version the object keeps: it reads as not installed.
    const tolerateForbidden: Interpret<unknown> = (reply) => (reply.status === StoreStatus.Forbidden ? FORBIDDEN : unwrap(reply as Reply<unknown>));
    const spec = this.#spec;
    const version = this.#version;
    this.#configuring ??= this.#client.idempotent<unknown>(this.#group, "configure", { spec, version }, tolerateForbidden).then(
      (value) => {
        this.#status = value === FORBIDDEN ? { installed: false, storedVersion: null } : specStatusOf(value, this.#group, spec, version);
        this.#configured = true;
      },
      (error: unknown) => {
        this.#configuring = undefined;
        throw error;
      },
    );
    return this.#configuring;
  }

  /** Releases a grant nobody wants any more. If that fails too, the lease TTL reclaims the slot. */
  #releaseQuietly(leaseId: string): Promise<unknown> {
    return this.release(leaseId).catch(() => undefined);
  }
}
