/**
 * The Durable Object store: the {@link SlotStore} contract for code that runs inside Workers,
 * backed by one `SlotGroup` object per group.
 *
 * - Cost: one RPC per uncontended acquire and one per release. A queued acquire is one pending
 *   RPC, with no polling. Each `open()` also sends one `configure` call.
 * - Order: calls go out on one stub, in the order the guard makes them. Stubs keep that order
 *   (E-order), so a release followed at once by an acquire reaches the object in that order,
 *   and no barging follows.
 * - Abort: an `AbortSignal` sends `cancel`. The acquire resolves `aborted` once the object has
 *   removed the ticket, so the next call sees it gone (at most {@link ABORT_GRACE_MS} later if the
 *   object does not answer). If the object granted the ticket first, the grant is released, never
 *   leaked. The object also copes with a cancel that overtakes its acquire.
 * - Faults: a transport error becomes `SLOTGATE_STORE_UNAVAILABLE`, and its `retryable` tells
 *   the caller whether trying again may help. The stub is rebuilt after every fault, because a
 *   disconnected stub fails every later call. Only idempotent calls are retried here: release
 *   and renew (by lease id), configure, setServerState, and stats. They are retried with
 *   exponential backoff, and only when the runtime marks the error `retryable` (or the object
 *   was reset), never when it is `overloaded`. An acquire is never retried. A queued acquire
 *   whose call broke (the object restarted, so its ticket is gone) rejects with a retryable
 *   fault.
 * - `configureOnce`: for a store that lives as long as the isolate while guards live for one
 *   request (the slotgate Worker: a Durable Object stub cannot outlive the request that made it),
 *   the spec is pushed once per object and spec rather than on every `open()`.
 */
import { SlotgateConfigError, SlotgateError } from "../core/errors.js";
import type { GroupSpec } from "../core/spec.js";
import type { GroupStatsSnapshot } from "../core/stats.js";
import type { ChainRequest, GroupStore, OpenOptions, RenewResult, SlotStore, SpecStatus, StoreAcquireResult } from "../core/store.js";
import { canonicalSpecJson } from "../core/spec-version.js";
import { Issues, checkInt, checkName, isPlainObject } from "../core/validate.js";
import { specStatusOf, unwrap, type Reply, type SlotGroupRpc } from "./protocol.js";

/**
 * The part of a Durable Object namespace binding this store uses. Pass the binding of the
 * `SlotGroup` class as is (`env.SLOT_GROUP`).
 */
export interface SlotGroupNamespace {
  idFromName(name: string): DurableObjectIdLike;
  get(id: DurableObjectIdLike): SlotGroupRpc;
}

/** A Durable Object id, as far as this store cares. */
export interface DurableObjectIdLike {
  toString(): string;
}

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

const OPTION_KEYS = ["namespace", "group", "retries", "retryDelayMs", "configureOnce"];

export function createDurableObjectStore(options: DurableObjectStoreOptions): SlotStore {
  if (!isPlainObject(options as unknown)) throw new SlotgateConfigError([{ path: "options", expected: "an object { namespace, group?, retries?, retryDelayMs? }", received: options }]);
  const issues = new Issues();
  for (const key of Object.keys(options)) if (!OPTION_KEYS.includes(key)) issues.add(key, `one of the keys ${OPTION_KEYS.join(", ")}`, key);
  const ns = options.namespace as Partial<SlotGroupNamespace> | undefined;
  if (typeof ns !== "object" || ns === null || typeof ns.idFromName !== "function" || typeof ns.get !== "function") {
    issues.add("namespace", "a Durable Object namespace binding of the SlotGroup class (env.SLOT_GROUP)", ns);
  }
  if (options.group !== undefined && typeof options.group !== "function") issues.add("group", "a function (group) => object name", options.group);
  const retries = options.retries === undefined ? 3 : checkInt(issues, "retries", options.retries, { min: 0, max: 10 });
  const retryDelayMs = options.retryDelayMs === undefined ? 50 : checkInt(issues, "retryDelayMs", options.retryDelayMs, { min: 0, max: 60_000 });
  if (options.configureOnce !== undefined && typeof options.configureOnce !== "boolean") issues.add("configureOnce", "a boolean", options.configureOnce);
  if (!issues.empty) throw new SlotgateConfigError(issues.list);

  const namespace = options.namespace;
  const objectName = options.group ?? ((group: string) => group);
  const policy: RetryPolicy = { retries: retries!, delayMs: retryDelayMs! };
  /** With configureOnce: object name → version and JSON of the spec last pushed there, with what the object did. */
  const configured = options.configureOnce === true ? new Map<string, { key: string; status: SpecStatus }>() : undefined;
  const objectFor = (group: string): string => {
    const name = objectName(group);
    if (typeof name !== "string" || name.length === 0) {
      throw new SlotgateConfigError([{ path: "group", expected: "a function that returns a non-empty object name", received: name }]);
    }
    return name;
  };
  return {
    kind: "durable-object",
    open(group: string, spec: GroupSpec, openOptions: OpenOptions = {}): GroupStore {
      const name = objectFor(group);
      const version = openOptions.version ?? null;
      const connect = () => namespace.get(namespace.idFromName(name));
      if (!configured) return new DurableObjectGroup(connect, group, spec, version, policy);
      const keyOf = (s: GroupSpec, v: number | null) => `${v ?? ""}\n${canonicalSpecJson(s)}`;
      const remember = (s: GroupSpec, v: number | null, status: SpecStatus) => {
        configured.set(name, { key: keyOf(s, v), status });
      };
      const known = configured.get(name);
      return new DurableObjectGroup(connect, group, spec, version, policy, known?.key === keyOf(spec, version) ? known.status : undefined, remember);
    },
    async readStats(group: string): Promise<GroupStatsSnapshot | undefined> {
      const issues = new Issues();
      checkName(issues, "group", group);
      if (!issues.empty) throw new SlotgateConfigError(issues.list);
      // The object's stats call writes no spec; an object never configured answers an empty group.
      const stub = namespace.get(namespace.idFromName(objectFor(group)));
      let reply: Reply<GroupStatsSnapshot>;
      try {
        reply = await stub.stats();
      } catch (error) {
        throw storeFault("stats", error);
      }
      return unwrap(reply);
    },
  };
}

interface RetryPolicy {
  retries: number;
  delayMs: number;
}

/** What the runtime puts on the errors of a failed Durable Object call. */
interface RpcErrorFlags {
  message?: unknown;
  retryable?: unknown;
  overloaded?: unknown;
  remote?: unknown;
  durableObjectReset?: unknown;
}

/**
 * Wraps a failed call as a store fault. For an acquire, the ticket is gone if it was ever
 * queued: asking again is the caller's choice, so the fault is retryable unless the object is
 * overloaded or its own code threw.
 */
export function storeFault(op: string, error: unknown): SlotgateError {
  if (error instanceof SlotgateError) return error;
  const e = (typeof error === "object" && error !== null ? error : {}) as RpcErrorFlags;
  const overloaded = e.overloaded === true;
  const reset = e.durableObjectReset === true;
  const retryable = !overloaded && (op === "acquire" ? reset || e.remote !== true : reset || e.retryable === true);
  const detail = typeof e.message === "string" ? e.message : String(error);
  const what = op === "acquire" ? "acquire failed (a queued ticket is gone)" : `${op} failed`;
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `Durable Object ${what}: ${detail}${overloaded ? " (overloaded)" : ""}`, { cause: error, retryable });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** After an abort, how long to wait for the object to confirm the ticket is gone. */
const ABORT_GRACE_MS = 1000;

/** One guard's handle on one group's object. */
class DurableObjectGroup implements GroupStore {
  readonly #connect: () => SlotGroupRpc;
  readonly #group: string;
  readonly #policy: RetryPolicy;
  readonly #onConfigured: ((spec: GroupSpec, version: number | null, status: SpecStatus) => void) | undefined;
  #stub: SlotGroupRpc | undefined;
  #spec: GroupSpec;
  #version: number | null;
  /** What the object did with this handle's spec (SPEC §2 rule 13). */
  #status: SpecStatus | undefined;
  #configured = false;
  #configuring: Promise<void> | undefined;
  #closed = false;
  /** Acquires of this handle still waiting, by waiter id. */
  readonly #waiting = new Map<string, { giveUp: () => void; result: Promise<StoreAcquireResult> }>();

  constructor(
    connect: () => SlotGroupRpc,
    group: string,
    spec: GroupSpec,
    version: number | null,
    policy: RetryPolicy,
    alreadyConfigured?: SpecStatus,
    onConfigured?: (spec: GroupSpec, version: number | null, status: SpecStatus) => void,
  ) {
    this.#connect = connect;
    this.#group = group;
    this.#spec = spec;
    this.#version = version;
    this.#policy = policy;
    this.#onConfigured = onConfigured;
    if (alreadyConfigured) {
      this.#status = alreadyConfigured;
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
      let grace: ReturnType<typeof setTimeout> | undefined;
      let sentOn: SlotGroupRpc | undefined;
      const settle = () => {
        settled = true;
        if (grace !== undefined) clearTimeout(grace);
        this.#waiting.delete(waiterId);
        signal?.removeEventListener("abort", giveUp);
      };
      const aborted = () => {
        if (settled) return;
        settle();
        resolve({ ok: false, reason: "aborted" });
      };
      giveUp = () => {
        if (settled || aborting) return;
        aborting = true;
        if (!sentOn) return aborted();
        // Settle once the object has dealt with the ticket (the acquire call answers `aborted`,
        // or a grant that won the race has been released), so the caller's next call sees the
        // ticket gone. If the object is slow or unreachable, settle after a grace period anyway.
        this.#cancel(sentOn, waiterId, aborted);
        grace = setTimeout(aborted, ABORT_GRACE_MS);
      };
      signal?.addEventListener("abort", giveUp, { once: true });

      const onReply = (reply: Reply<StoreAcquireResult>) => {
        let outcome: StoreAcquireResult;
        try {
          outcome = unwrap(reply);
        } catch (error) {
          if (!settled) {
            settle();
            reject(error);
          }
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
        reject(storeFault("acquire", error));
      };
      const send = () => {
        if (aborting) return aborted();
        const stub = (sentOn = this.#stub ??= this.#connect());
        // Handlers go on the call's own promise at once, so a failure is never unhandled.
        stub.acquire(request, waiterId).then(onReply, (error: unknown) => {
          this.#drop(stub);
          onFault(error);
        });
      };
      if (this.#configured) send();
      else this.#ensureConfigured().then(send, onFault);
    });
    this.#waiting.set(waiterId, { giveUp, result });
    return result;
  }

  /** Works after close() (the store contract): a grant that raced close() is given back at once, not held until its TTL. */
  async release(leaseId: string): Promise<boolean> {
    return this.#whenConfigured(() => this.#idempotent("release", (stub) => stub.release(leaseId)));
  }

  async renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#idempotent("renew", (stub) => stub.renew(leaseId, ttlMs)));
  }

  async ready(): Promise<SpecStatus> {
    this.#checkOpen();
    await this.#ensureConfigured();
    return this.#status ?? { installed: true, storedVersion: this.#version };
  }

  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#push(spec, version));
  }

  async setServerState(backend: string, server: string, up: boolean): Promise<void> {
    this.#checkOpen();
    await this.#whenConfigured(() => this.#idempotent("setServerState", (stub) => stub.setServerState(backend, server, up)));
  }

  async stats(): Promise<GroupStatsSnapshot> {
    this.#checkOpen();
    return this.#whenConfigured(() => this.#idempotent("stats", (stub) => stub.stats()));
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

  /**
   * Runs `fn` once the object has this handle's spec. When it has, `fn` runs synchronously, so
   * the calls leave in the order they were made.
   */
  #whenConfigured<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#configured) {
      try {
        return Promise.resolve(fn());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#ensureConfigured().then(fn);
  }

  #ensureConfigured(): Promise<void> {
    this.#configuring ??= this.#push(this.#spec, this.#version).then(
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

  /** One configure call; the spec becomes this handle's once the object took it or kept a newer one. */
  async #push(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    const value = await this.#idempotent("configure", (stub) => stub.configure(spec, version));
    const status = specStatusOf(value, this.#group, spec, version);
    this.#spec = spec;
    this.#version = version;
    this.#status = status;
    this.#onConfigured?.(spec, version, status);
    return status;
  }

  /** One idempotent call, retried on retryable faults. The first attempt leaves synchronously. */
  async #idempotent<T>(op: string, call: (stub: SlotGroupRpc) => Promise<Reply<T>>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const stub = (this.#stub ??= this.#connect());
      let reply: Reply<T>;
      try {
        reply = await call(stub);
      } catch (error) {
        this.#drop(stub);
        const fault = storeFault(op, error);
        if (!fault.retryable || attempt >= this.#policy.retries) throw fault;
        await sleep(this.#policy.delayMs * 2 ** attempt * (0.5 + Math.random() / 2));
        continue;
      }
      return unwrap(reply);
    }
  }

  /** Forgets a stub that failed, so the next call builds a new one. */
  #drop(stub: SlotGroupRpc): void {
    if (this.#stub === stub) this.#stub = undefined;
  }

  /** Sends `cancel`. If it fails, `onFailure` runs: the ticket then ends at its queue timeout. */
  #cancel(stub: SlotGroupRpc, waiterId: string, onFailure: () => void): void {
    stub.cancel(waiterId).then(
      (reply) => {
        if (reply.status !== 0) onFailure();
      },
      () => {
        this.#drop(stub);
        onFailure();
      },
    );
  }

  /** Releases a grant nobody wants any more. If that fails too, the lease TTL reclaims the slot. */
  #releaseQuietly(leaseId: string): Promise<unknown> {
    return this.#idempotent("release", (stub) => stub.release(leaseId)).catch(() => undefined);
  }
}

function closedError(): SlotgateError {
  return new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
}
