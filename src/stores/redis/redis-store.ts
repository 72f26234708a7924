/**
 * The Redis store: the state of every group lives in Redis under one hash tag and changes only
 * inside the Lua scripts of `./scripts`, which mirror `GroupState` rule for rule on the Redis
 * clock. This file is the client side: the acquires, releases, renewals and cancels of one group
 * made in the same turn of the event loop go out as one script call (RedisGroup.run), and for
 * queued acquires a waiter is woken by a pub/sub message, with a bounded safety re-check so that
 * a lost message cannot strand it.
 *
 * Per store instance: one subscriber connection (`redis.duplicate()`), a random node id, and per
 * open group one wake-up channel, one sweep timer (reclaims the slots of crashed holders with no
 * other traffic) and, while it has waiters, one re-check timer.
 */
import type { Cluster, Redis } from "ioredis";
import { Batcher, type Pending } from "../../core/batcher.js";
import { SlotgateConfigError, SlotgateError, type ConfigIssue } from "../../core/errors.js";
import { backendScope, serverScope, type GroupSpec } from "../../core/spec.js";
import { canonicalSpecJson, isSpecVersion, specConflictError } from "../../core/spec-version.js";
import { WAIT_BUCKETS_MS, type FlowStats, type GroupStatsSnapshot, type ScopeStats } from "../../core/stats.js";
import type { ChainRequest, GroupStore, LeaseGrant, OpenOptions, RenewResult, SlotStore, SpecStatus, StoreAcquireResult } from "../../core/store.js";
import { unrefTimer } from "../../core/timers.js";
import { LuaCaller } from "./functions.js";
import { DEFAULT_PREFIX, groupBase, groupKeys } from "./keys.js";
import { REPLY, replyError, SCRIPTS, type ScriptDef, type ScriptName } from "./scripts/index.js";
import { toWire, wtf8Decode } from "./wtf8.js";

export interface RedisStoreOptions {
  /** An ioredis client: `new Redis(…)` or `new Cluster(…)`. The store registers its scripts on it. */
  redis: Redis | Cluster;
  /** Start of every key and channel name; must not contain `{` or `}`. @default "slotgate:" */
  prefix?: string;
  /**
   * Longest time between two sweeps of an open group (reclaiming expired leases, timing out
   * tickets) when no deadline is due sooner. A crashed holder's slots return within its lease TTL
   * plus this. @default 1000
   */
  sweepIntervalMs?: number;
  /** How often a queued acquire checks for an outcome whose wake-up message was lost. @default 1000 */
  safetyRecheckMs?: number;
  /** A command Redis has not answered within this fails with SLOTGATE_STORE_UNAVAILABLE. @default 5000 */
  commandTimeoutMs?: number;
  /**
   * Run the store's Lua as Redis Functions (FCALL of a library the store loads itself) where the
   * server has them (Redis ≥ 7, FCALL and FUNCTION LOAD allowed); false: always as scripts
   * (EVALSHA). Either way a server without functions gets scripts. @default true
   */
  functions?: boolean;
}

/** Background faults of a store instance: nothing throws from a timer, everything is counted. */
export interface RedisStoreFaults {
  /** Sweep calls that failed. */
  sweep: number;
  /** Errors of the subscriber connection and failed (un)subscribes. */
  subscriber: number;
  /** Safety re-checks that failed. */
  recheck: number;
  /** Background clean-ups that failed: releasing a grant that came too late, cancelling an abandoned ticket. */
  cleanup: number;
}

export interface RedisSlotStore extends SlotStore {
  readonly kind: "redis";
  /** This instance's id in wake-up channel names. */
  readonly nodeId: string;
  /** A snapshot of the background fault counters. */
  readonly faults: Readonly<RedisStoreFaults>;
}

/** Every default of {@link RedisStoreOptions}, in one place. */
export const REDIS_STORE_DEFAULTS = { prefix: DEFAULT_PREFIX, sweepIntervalMs: 1000, safetyRecheckMs: 1000, commandTimeoutMs: 5000, functions: true } as const;
const DEFAULTS = REDIS_STORE_DEFAULTS;

/** After its local queue deadline a waiter gives the store this long to time it out first. */
const DEADLINE_GRACE_MS = 25;
/** Wake-up messages for tickets not (yet) registered are kept this long: an acquire's reply can trail its ticket's grant. */
const EARLY_KEEP_MS = 60_000;
const CLAIM_BATCH = 500;

type Arg = string | Buffer | number;
type Reply = unknown[];
type Client = Redis | Cluster;
type CommandName = (typeof SCRIPTS)[ScriptName]["command"];

const OPTION_KEYS = ["redis", "prefix", "sweepIntervalMs", "safetyRecheckMs", "commandTimeoutMs", "functions"];

export function createRedisStore(options: RedisStoreOptions): RedisSlotStore {
  return new RedisStore(options);
}

// ── errors ─────────────────────────────────────────────────────────────────────────────────────

/** Redis replies that mean our script or our data is wrong, not that Redis is unreachable. */
const PROTOCOL_REPLY = /user_script|user_function|Error running script|WRONGTYPE|unknown command/i;

function toStoreError(error: unknown): SlotgateError {
  if (error instanceof SlotgateError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (PROTOCOL_REPLY.test(message)) return new SlotgateError("SLOTGATE_STORE_PROTOCOL", `redis: ${message}`, { cause: error });
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", `redis: ${message}`, { cause: error, retryable: true });
}

function unavailable(message: string): SlotgateError {
  return new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", message, { retryable: true });
}

function protocol(message: string): SlotgateError {
  return new SlotgateError("SLOTGATE_STORE_PROTOCOL", message);
}

function int(value: unknown, what: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  throw protocol(`redis store: expected an integer for ${what}, got ${typeof value}`);
}

/** A fence: an integer reply, or a decimal string where it went through cjson (14 significant digits). */
function fenceOf(value: unknown): number {
  if (typeof value === "string" && /^[0-9]{1,16}$/.test(value)) return Number(value);
  return int(value, "fence");
}

function str(value: unknown, what: string): string {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return wtf8Decode(value);
  throw protocol(`redis store: expected a string for ${what}, got ${typeof value}`);
}

/** What a lease's renewal sends so that the scripts can re-create it after a state loss (rule 12). */
interface LeaseRegistration {
  /** The group epoch the lease was granted, or last renewed by the general path, under. */
  epoch: number;
  fence: number;
  backend: string;
  server: string;
  /** Named and keyed scopes, as the acquire sent them. */
  scopes: readonly Arg[];
  /** Local time by which it expires unless renewed. */
  until: number;
}

// ── outcomes addressed to waiters ─────────────────────────────────────────────────────────────

/** A grant also says under which group epoch it was made (rule 12; 0 when the message has none). */
type Outcome = { granted: true; lease: LeaseGrant; epoch: number } | { granted: false };

/** Parses the JSON a script records and publishes for a ticket's waiter. */
function parseOutcome(raw: string): { ticketId: string; outcome: Outcome } {
  const m = JSON.parse(raw) as {
    k?: unknown;
    o?: unknown;
    l?: unknown;
    f?: unknown;
    x?: unknown;
    t?: unknown;
    w?: unknown;
    b?: unknown;
    s?: unknown;
    e?: unknown;
  };
  const ticketId = str(m.k, "ticket id");
  if (m.o === "t") return { ticketId, outcome: { granted: false } };
  if (m.o !== "g") throw protocol(`redis store: unknown outcome ${String(m.o)}`);
  const lease: LeaseGrant = {
    id: str(m.l, "lease id"),
    fence: fenceOf(m.f),
    expiresAt: int(m.x, "expiry"),
    ttlMs: int(m.t, "ttl"),
    waitedMs: int(m.w, "wait"),
  };
  if (typeof m.b === "string") lease.backend = m.b;
  if (typeof m.s === "string") lease.server = m.s;
  return { ticketId, outcome: { granted: true, lease, epoch: m.e === undefined ? 0 : fenceOf(m.e) } };
}

// ── the store ──────────────────────────────────────────────────────────────────────────────────

class RedisStore implements RedisSlotStore {
  readonly kind = "redis";
  readonly nodeId = crypto.randomUUID().replace(/-/g, "").slice(0, 16);
  readonly #faults: RedisStoreFaults = { sweep: 0, subscriber: 0, recheck: 0, cleanup: 0 };
  readonly client: Client;
  readonly sharded: boolean;
  readonly prefix: string;
  readonly sweepIntervalMs: number;
  readonly safetyRecheckMs: number;
  readonly #timeoutMs: number;
  /** What ioredis prepends to key arguments, and to SSUBSCRIBE channels (not to SUBSCRIBE ones). */
  readonly #keyPrefix: string;
  readonly #groups = new Map<string, RedisGroup>();
  /** Channel name as Redis reports it in messages → group. */
  readonly #byChannel = new Map<string, RedisGroup>();
  #subscriber: Client | undefined;
  /** Stops keeping a sharded subscriber on the command client's masters (see followTopology). */
  #unfollow: (() => void) | undefined;
  #connecting: Promise<void> | undefined;
  /**
   * The client has been ready at least once. Before that, a call waits for the first connection
   * (a cold start is not an outage: SPEC §2 rule 11); after it, a client that is not ready means
   * the connection was lost, and calls fail fast so that the outage policy decides.
   */
  #everReady = false;
  /** Settles when the client is first ready (or gives up); one pair of listeners however many calls wait. */
  #firstReady: Promise<void> | undefined;
  /** Sends the store's Lua as FCALL or EVALSHA. */
  readonly #lua: LuaCaller;

  constructor(options: RedisStoreOptions) {
    const issues: ConfigIssue[] = [];
    if (typeof options !== "object" || options === null)
      throw new SlotgateConfigError([{ path: "options", expected: "an object { redis, prefix?, … }", received: options }]);
    for (const key of Object.keys(options))
      if (!OPTION_KEYS.includes(key)) issues.push({ path: key, expected: `one of the keys ${OPTION_KEYS.join(", ")}`, received: key });
    const client = options.redis as Partial<Client> | undefined;
    if (typeof client?.defineCommand !== "function" || typeof client.duplicate !== "function") {
      issues.push({ path: "redis", expected: "an ioredis client (new Redis(…) or new Cluster(…))", received: options.redis });
    }
    const prefix = options.prefix ?? DEFAULTS.prefix;
    if (typeof prefix !== "string" || /[{}]/.test(prefix) || prefix.length > 256) {
      issues.push({ path: "prefix", expected: "a string of at most 256 characters without { or }", received: prefix });
    }
    const keyPrefix = (client as { options?: { keyPrefix?: unknown } } | undefined)?.options?.keyPrefix;
    if (typeof keyPrefix === "string" && /[{}]/.test(keyPrefix)) {
      issues.push({ path: "redis.options.keyPrefix", expected: "a key prefix without { or } (it would override the group's hash tag)", received: keyPrefix });
    }
    const positive = (path: keyof typeof DEFAULTS, value: unknown) => {
      if (value === undefined) return DEFAULTS[path] as number;
      if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 3_600_000) return value;
      issues.push({ path, expected: "an integer from 1 to 3600000 (ms)", received: value });
      return 1;
    };
    this.sweepIntervalMs = positive("sweepIntervalMs", options.sweepIntervalMs);
    this.safetyRecheckMs = positive("safetyRecheckMs", options.safetyRecheckMs);
    this.#timeoutMs = positive("commandTimeoutMs", options.commandTimeoutMs);
    if (options.functions !== undefined && typeof options.functions !== "boolean")
      issues.push({ path: "functions", expected: "a boolean", received: options.functions });
    if (issues.length > 0) throw new SlotgateConfigError(issues);

    this.client = options.redis;
    this.sharded = (options.redis as { isCluster?: boolean }).isCluster === true;
    this.prefix = prefix;
    this.#keyPrefix = typeof keyPrefix === "string" ? keyPrefix : "";
    // The scripts stay registered: the fallback where Redis has no functions (./functions.ts).
    for (const def of Object.values(SCRIPTS)) this.client.defineCommand(def.command, { lua: def.lua, numberOfKeys: def.numberOfKeys });
    this.#lua = new LuaCaller(this.client, options.functions ?? DEFAULTS.functions);
    if (this.client.status === "ready") this.#everReady = true;
    else {
      this.#firstReady = firstReady(this.client).then(() => {
        this.#everReady = true;
      });
      this.#firstReady.catch(() => undefined); // a call that waits on it sees the rejection
    }
  }

  get faults(): Readonly<RedisStoreFaults> {
    return { ...this.#faults };
  }

  fault(kind: keyof RedisStoreFaults): void {
    this.#faults[kind]++;
  }

  open(group: string, spec: GroupSpec, options: OpenOptions = {}): GroupStore {
    const version = options.version ?? null;
    let g = this.#groups.get(group);
    if (!g) {
      const channel = `${groupBase(this.prefix, group)}wake:${this.nodeId}`;
      // SSUBSCRIBE channels get ioredis' keyPrefix, SUBSCRIBE ones do not: scripts publish to the name Redis sees.
      g = new RedisGroup(this, group, groupKeys(this.prefix, group), channel, this.sharded ? this.#keyPrefix + channel : channel, spec, version);
      this.#groups.set(group, g);
      this.#byChannel.set(g.wireChannel, g);
      g.start();
    }
    g.handles++;
    // Each handle pushes its own spec (two guards of one process may be two nodes of different versions).
    return new RedisGroupHandle(g, spec, version);
  }

  /** Read-only: the stats script settles deadlines but never writes the spec; a group without one is undefined. */
  async readStats(group: string): Promise<GroupStatsSnapshot | undefined> {
    this.#groups.get(group)?.flushBatch(); // calls reach Redis in the order they were made
    const reply = await this.call(SCRIPTS.stats, groupKeys(this.prefix, group), [], { buffer: true });
    if (reply[0] === REPLY.NOT_CONFIGURED) return undefined;
    return parseStats(reply, undefined);
  }

  /** Called by a group when its last handle closed. The last group takes the subscriber connection with it. */
  dropGroup(g: RedisGroup, subscribed: boolean): void {
    this.#groups.delete(g.name);
    this.#byChannel.delete(g.wireChannel);
    const sub = this.#subscriber;
    if (!sub) return;
    if (this.#groups.size === 0) {
      this.#subscriber = undefined;
      this.#unfollow?.();
      this.#unfollow = undefined;
      sub.disconnect();
    } else if (subscribed) {
      (this.sharded ? sub.sunsubscribe(g.channel) : sub.unsubscribe(g.channel)).catch(() => this.fault("subscriber"));
    }
  }

  subscriber(): Client {
    if (this.#subscriber) return this.#subscriber;
    const sub = this.sharded
      ? (this.client as Cluster).duplicate([], { shardedSubscribers: true, lazyConnect: false })
      : (this.client as Redis).duplicate({ lazyConnect: false, enableOfflineQueue: true });
    sub.on("error", () => this.fault("subscriber"));
    sub.on(this.sharded ? "smessage" : "message", (channel: string, message: string) => {
      this.#byChannel.get(channel)?.onMessage(message);
    });
    // After a reconnect ioredis re-subscribes; wake-ups sent in the gap are picked up by a re-check.
    const reconnected = () => {
      for (const g of this.#groups.values()) g.onSubscriberReady();
    };
    sub.on("ready", reconnected);
    if (this.sharded) {
      sub.on("subscribersReady", reconnected);
      this.#unfollow = followTopology(this.client as Cluster, sub as Cluster);
    }
    this.#subscriber = sub;
    return sub;
  }

  /**
   * One script call. Fails fast with SLOTGATE_STORE_UNAVAILABLE when the client is not ready (no
   * waiting in ioredis' offline queue) or Redis does not answer within `commandTimeoutMs`. A reply
   * that arrives after the timeout goes to `late`, so the caller can undo what it did. A call made
   * `via` a group or a handle turns a reply that the group has no spec into a new push of it and one retry.
   */
  call(
    def: ScriptDef<CommandName>,
    keys: readonly string[],
    argv: readonly Arg[],
    options: CallOptions = NO_OPTIONS,
    via?: Reconfigurer | "retried",
  ): Promise<Reply> {
    const client = this.client;
    if (client.status !== "ready") {
      // A lazyConnect client connects on first use; calls made meanwhile wait for that one connect.
      if (client.status === "wait") {
        this.#connecting ??= this.#bounded(client.connect()).finally(() => {
          this.#connecting = undefined;
        });
      } else if (!this.#everReady && this.#firstReady && COLD_STATUSES.has(client.status)) {
        // Still making its first connection (`new Redis(url)` a moment ago): wait for it, within commandTimeoutMs.
        this.#connecting ??= this.#bounded(this.#firstReady).finally(() => {
          this.#connecting = undefined;
        });
      }
      if (this.#connecting)
        return this.#connecting.then(
          () => this.call(def, keys, argv, options, via),
          (error: unknown) => Promise.reject(toStoreError(error)),
        );
      return Promise.reject(unavailable(`redis is not connected (client status: ${client.status})`));
    }
    let sent: Promise<unknown>;
    try {
      sent = this.#lua.send(def, keys, argv, options.buffer === true);
    } catch (error) {
      return Promise.reject(toStoreError(error));
    }
    return new Promise<Reply>((resolve, reject) => {
      const deadline = this.#deadline(reject);
      sent.then(
        (reply) => {
          if (!this.#answered(deadline)) {
            if (Array.isArray(reply)) options.late?.(reply);
          } else if (!Array.isArray(reply)) {
            reject(protocol(`redis store: ${def.command} replied ${typeof reply}`));
          } else if (reply[0] === REPLY.NOT_CONFIGURED && via !== undefined) {
            // The group's data is gone: a call through a group pushes the spec again, once.
            if (via === "retried") reject(protocol("redis store: the group's spec vanished right after it was written"));
            else resolve(via.reconfigureAndRetry(def, argv, options));
          } else {
            resolve(reply);
          }
        },
        (error: unknown) => {
          if (this.#answered(deadline)) reject(toStoreError(error));
        },
      );
    });
  }

  // ── command timeouts: one timer for all pending calls ──────────────────────────────────────

  /** Calls awaiting a reply, oldest first (every call has the same timeout, so also by deadline: monotonic clock). */
  readonly #pending = new Set<Deadline>();
  #timeoutTimer: ReturnType<typeof setTimeout> | undefined;

  #deadline(reject: (error: unknown) => void): Deadline {
    const d: Deadline = { at: performance.now() + this.#timeoutMs, reject };
    this.#pending.add(d);
    if (this.#timeoutTimer === undefined) this.#armTimeouts(this.#timeoutMs);
    return d;
  }

  /** Settles a call's deadline; false when the call had already timed out. */
  #answered(d: Deadline): boolean {
    if (!this.#pending.delete(d)) return false;
    if (this.#pending.size === 0 && this.#timeoutTimer !== undefined) {
      clearTimeout(this.#timeoutTimer);
      this.#timeoutTimer = undefined;
    }
    return true;
  }

  #armTimeouts(ms: number): void {
    this.#timeoutTimer = setTimeout(() => this.#expireCalls(), ms);
  }

  #expireCalls(): void {
    this.#timeoutTimer = undefined;
    const now = performance.now();
    for (const d of this.#pending) {
      if (d.at > now) return this.#armTimeouts(d.at - now);
      this.#pending.delete(d);
      d.reject(unavailable(`redis did not answer within ${this.#timeoutMs} ms (commandTimeoutMs)`));
    }
  }

  #bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = this.#deadline(reject);
      promise.then(
        (value) => {
          if (this.#answered(deadline)) resolve(value);
        },
        (error: unknown) => {
          if (this.#answered(deadline)) reject(error);
        },
      );
    });
  }
}

const CLUSTER_SLOTS = 16384;
const FOLLOW_TRIES = 5;
const FOLLOW_RETRY_MS = 100;

/**
 * Keeps a sharded subscriber on the masters that the command client uses. The subscriber is a
 * duplicate Cluster that only learns of a failover at its own periodic slots refresh (ioredis'
 * `slotsRefreshInterval`, 5 s by default): meanwhile its SSUBSCRIBE connection stays on the old
 * master, which has dropped the shard channels with the slots, and wake-ups go missing. The
 * command client learns at once, from a MOVED reply. So every refresh of the command client that
 * shows a master the subscriber does not have makes the subscriber refresh too, a few times while
 * the node it asks may still name the old owner. The subscriber then moves its connections,
 * subscribes again and emits `subscribersReady`, on which the groups re-check what they missed.
 */
function followTopology(client: Cluster, sub: Cluster): () => void {
  let following = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const follow = (tries: number) => {
    timer = undefined;
    if (tries <= 0 || sameMasters(client.slots, sub.slots)) {
      following = false;
      return;
    }
    sub.refreshSlotsCache(() => {
      if (!following) return;
      timer = setTimeout(() => follow(tries - 1), FOLLOW_RETRY_MS);
      unrefTimer(timer);
    });
  };
  const onRefresh = () => {
    if (following) return;
    following = true;
    follow(FOLLOW_TRIES);
  };
  client.on("refresh", onRefresh);
  return () => {
    following = false;
    client.off("refresh", onRefresh);
    clearTimeout(timer);
  };
}

/** Whether two slot maps (ioredis' `slots`: node keys per slot, master first) name the same master for every slot. */
function sameMasters(a: readonly (readonly string[] | undefined)[], b: readonly (readonly string[] | undefined)[]): boolean {
  for (let slot = 0; slot < CLUSTER_SLOTS; slot++) if (a[slot]?.[0] !== b[slot]?.[0]) return false;
  return true;
}

/** Client states of a connection being made; `reconnecting` too, when the first attempt failed (Redis still starting). */
const COLD_STATUSES = new Set(["connecting", "connect", "reconnecting"]);

/** Resolves when the client is first ready; rejects if it gives up (`end`) first. */
function firstReady(client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      client.off("end", onEnd);
      resolve();
    };
    const onEnd = () => {
      client.off("ready", onReady);
      reject(unavailable("redis: the client gave up connecting"));
    };
    client.once("ready", onReady);
    client.once("end", onEnd);
  });
}

interface Deadline {
  readonly at: number;
  readonly reject: (error: unknown) => void;
}

interface CallOptions {
  buffer?: boolean;
  late?: (reply: Reply) => void;
}

const NO_OPTIONS: CallOptions = {};

/**
 * The most ops in one call of the batch script. A script blocks its Redis shard while it runs
 * (about 15 µs per op on a 2-core machine), so a burst is cut into calls of a few ms at most.
 */
const MAX_BATCH = 128;

/** The scripts whose calls a group batches, with their code in the batch script's op list. */
const BATCHED = new Map<string, string>([
  [SCRIPTS.acquire.command, "a"],
  [SCRIPTS.release.command, "r"],
  [SCRIPTS.renew.command, "n"],
  [SCRIPTS.cancel.command, "c"],
]);

/** A call that can join a batch. */
interface BatchedCall {
  readonly code: string;
  readonly def: ScriptDef<CommandName>;
  readonly argv: readonly Arg[];
  readonly options: CallOptions;
  /** Who pushes the spec again if a lone call finds it gone (a batch: the group). */
  readonly via: Reconfigurer;
}

/** Who pushes a spec again when a call finds the group without one (its data was lost). */
interface Reconfigurer {
  reconfigureAndRetry(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions): Promise<Reply>;
}

// ── one group, shared by every handle of this store instance ──────────────────────────────────

class RedisGroup {
  readonly store: RedisStore;
  readonly name: string;
  readonly keys: readonly string[];
  /** The wake-up channel as we subscribe to it ... */
  readonly channel: string;
  /** ... and as Redis names it, which is where the scripts publish. */
  readonly wireChannel: string;
  handles = 0;
  readonly waiters = new Map<string, Waiter>();
  /** Outcomes for tickets this node has not registered (yet): ticket id → outcome, time. */
  readonly #early = new Map<string, { outcome: Outcome; at: number }>();
  /** The spec last pushed through this group without refusal (by any handle): what a group-level call pushes again after a data loss. */
  #spec: GroupSpec;
  #version: number | null;
  #subscribed = false;
  #subscribing: Promise<void> | undefined;
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;
  #sweeping = false;
  #recheckTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  // ── rule 12: what this node knows of the group, so that the scripts notice a lost or replaced state
  /** The group epoch of the last reply that carried one (0: none yet). */
  epoch = 0;
  /** The highest fence this node was granted. */
  fenceSeen = 0;
  /** The longest lease TTL this node asked for: the learning window it starts. */
  maxTtlMs = 0;
  /** Every lease granted through this group and not ended: what its renewal needs to re-create it. */
  readonly leases = new Map<string, LeaseRegistration>();

  constructor(store: RedisStore, name: string, keys: string[], channel: string, wireChannel: string, spec: GroupSpec, version: number | null) {
    this.store = store;
    this.name = name;
    this.keys = keys;
    this.channel = channel;
    this.wireChannel = wireChannel;
    this.#spec = spec;
    this.#version = version;
  }

  get subscribed(): boolean {
    return this.#subscribed;
  }

  start(): void {
    this.subscribe().catch(() => undefined);
    this.arm(-1);
  }

  // ── script calls ─────────────────────────────────────────────────────────────────────────

  /**
   * Pushes a spec with its version. Installed or kept (a newer stored spec, which then decides
   * the pushing handle's calls), it resolves with the status; refused (the same version, another
   * spec), it throws SLOTGATE_SPEC_CONFLICT naming what differs.
   */
  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    this.flushBatch(); // calls reach Redis in the order they were made
    const reply = await this.store.call(SCRIPTS.configure, this.keys, [canonicalSpecJson(spec), version === null ? "" : String(version)]);
    const status = int(reply[0], "configure status");
    this.arm(int(reply[1], "next deadline"));
    if (status === REPLY.SPEC_CONFLICT) {
      let stored: GroupSpec | undefined;
      try {
        stored = JSON.parse(str(reply[3], "stored spec")) as GroupSpec;
      } catch {
        stored = undefined;
      }
      throw specConflictError(this.name, version!, stored, spec);
    }
    if (status !== REPLY.INSTALLED && status !== REPLY.KEPT) throw replyError(status, "configure");
    this.#spec = spec;
    this.#version = version;
    const storedVersion = status === REPLY.INSTALLED ? version : Number(str(reply[2], "stored version"));
    return { installed: status === REPLY.INSTALLED, storedVersion: isSpecVersion(storedVersion) ? storedVersion : null };
  }

  /**
   * A group-level call (release, claim, cancel: they follow a grant or a ticket, so some handle
   * has pushed a spec). A group whose data was lost is configured again, once.
   */
  exec(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions = NO_OPTIONS): Promise<Reply> {
    return this.run(def, argv, options, this);
  }

  // ── batching ─────────────────────────────────────────────────────────────────────────────

  /** Acquires, releases, renewals and cancels, batched by the rule of `core/batcher.ts`. */
  readonly #batcher = new Batcher<BatchedCall>(
    { one: (op) => this.store.call(op.def, this.keys, op.argv, op.options, op.via), many: (ops) => this.#sendBatch(ops) },
    { max: MAX_BATCH },
  );

  /**
   * Runs a script of this group. An acquire, release, renewal or cancel goes through the batcher:
   * alone at once while none of this group's calls is in flight, else with the others of this
   * turn as one call of the batch script (the same ops, in the same order, one atomic step). Any
   * other script first sends what waits, so calls reach Redis in the order they were made (a
   * release followed by an acquire, a release followed by stats, are never reordered).
   */
  run(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions, via: Reconfigurer): Promise<Reply> {
    const code = BATCHED.get(def.command);
    if (code === undefined) {
      this.flushBatch();
      return this.store.call(def, this.keys, argv, options, via);
    }
    return this.#batcher.add<Reply>({ code, def, argv, options, via });
  }

  /** Sends what waits to be batched, now. */
  flushBatch(): void {
    this.#batcher.flush();
  }

  /** Sends two or more ops as one call of the batch script; a fault of the call fails each op. */
  #sendBatch(ops: readonly Pending<BatchedCall>[]): Promise<void> {
    const argv: Arg[] = [this.wireChannel];
    for (const { op } of ops) argv.push(op.code, op.argv.length, ...op.argv);
    // A reply after the call timed out (each op was rejected) is undone op by op, as each op's own would be.
    const late = (reply: Reply) => {
      if (reply[0] !== REPLY.DONE) return;
      this.#deliverLocal(reply, ops.length);
      ops.forEach(({ op }, i) => {
        const r = reply[1 + i];
        if (Array.isArray(r)) op.options.late?.(r);
      });
    };
    return this.store.call(SCRIPTS.batch, this.keys, argv, { late }, this).then((reply) => {
      if (reply[0] !== REPLY.DONE) throw replyError(int(reply[0], "batch status"), typeof reply[1] === "string" ? reply[1] : "batch");
      this.#deliverLocal(reply, ops.length);
      ops.forEach((p, i) => {
        const r = reply[1 + i];
        if (Array.isArray(r)) p.resolve(r);
        else p.reject(protocol(`redis store: the batch replied ${typeof r} for op ${i + 1}`));
      });
    });
  }

  /** The batch reply's outcomes for this node's own waiters, after the ops' replies. */
  #deliverLocal(reply: Reply, ops: number): void {
    for (let i = 1 + ops; i < reply.length; i++) this.onMessage(str(reply[i], "outcome"));
  }

  /** A call found the group without a spec (its data was lost): push the last spec again, and retry once. */
  reconfigureAndRetry(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions): Promise<Reply> {
    return this.configure(this.#spec, this.#version).then(() => this.store.call(def, this.keys, argv, options, "retried"));
  }

  // ── sweeping ─────────────────────────────────────────────────────────────────────────────

  /** Schedules the next sweep `nextIn` ms from now (a script's reply), or within the sweep interval. */
  arm(nextIn: number): void {
    if (this.#closed) return;
    const max = this.store.sweepIntervalMs;
    const delay = nextIn < 0 ? max : Math.min(nextIn + 1, max);
    const at = Date.now() + delay;
    if (this.#sweepTimer !== undefined && this.#sweepAt <= at) return;
    if (this.#sweepTimer !== undefined) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(() => this.#sweep(), delay);
    // Sweeping alone must not keep a process alive; a waiter's own timer does.
    unrefTimer(this.#sweepTimer);
  }

  #sweep(): void {
    this.#sweepTimer = undefined;
    this.#sweepAt = Infinity;
    if (this.#closed) return;
    this.#forgetStale();
    if (this.#sweeping) return this.arm(-1);
    this.#sweeping = true;
    this.run(SCRIPTS.sweep, [], NO_OPTIONS, this).then(
      (reply) => {
        this.#sweeping = false;
        this.arm(int(reply[0], "next deadline"));
      },
      () => {
        this.#sweeping = false;
        this.store.fault("sweep");
        this.arm(-1);
      },
    );
  }

  // ── wake-ups ─────────────────────────────────────────────────────────────────────────────

  subscribe(): Promise<void> {
    if (this.#subscribed) return Promise.resolve();
    this.#subscribing ??= Promise.resolve()
      .then(() => {
        if (this.#closed) return;
        const sub = this.store.subscriber();
        return this.store.sharded ? sub.ssubscribe(this.channel) : sub.subscribe(this.channel);
      })
      .then(
        () => {
          this.#subscribing = undefined;
          this.#subscribed = !this.#closed;
        },
        (error: unknown) => {
          this.#subscribing = undefined;
          this.store.fault("subscriber");
          throw toStoreError(error);
        },
      );
    return this.#subscribing;
  }

  onSubscriberReady(): void {
    if (this.#closed) return;
    this.subscribe().catch(() => undefined);
    this.recheck();
  }

  onMessage(raw: string): void {
    let parsed: ReturnType<typeof parseOutcome>;
    try {
      parsed = parseOutcome(raw);
    } catch {
      this.store.fault("subscriber");
      return;
    }
    const waiter = this.waiters.get(parsed.ticketId);
    if (waiter) waiter.deliver(parsed.outcome, "message");
    else this.#keepEarly(parsed.ticketId, parsed.outcome);
  }

  #keepEarly(ticketId: string, outcome: Outcome): void {
    const now = Date.now();
    for (const [id, e] of this.#early) {
      if (now - e.at < EARLY_KEEP_MS) break;
      this.#early.delete(id);
    }
    this.#early.set(ticketId, { outcome, at: now });
  }

  takeEarly(ticketId: string): Outcome | undefined {
    const e = this.#early.get(ticketId);
    if (e) this.#early.delete(ticketId);
    return e?.outcome;
  }

  // ── rule 12: leases this node holds ─────────────────────────────────────────────────────────

  /** An epoch from a reply (a number, or absent in replies that do not carry it). */
  sawEpoch(value: unknown): void {
    if (typeof value === "number" && value > 0) this.epoch = value;
  }

  /** Remembers a grant, so that its renewal can re-create it if the group's state is lost. `scopes`: as the acquire sent them. */
  track(lease: LeaseGrant, epoch: number, scopes: readonly Arg[]): void {
    if (lease.fence > this.fenceSeen) this.fenceSeen = lease.fence;
    this.leases.set(lease.id, {
      epoch: epoch > 0 ? epoch : this.epoch,
      fence: lease.fence,
      backend: lease.backend ?? "",
      server: lease.backend !== undefined ? (lease.server ?? "") : "",
      scopes,
      until: Date.now() + lease.ttlMs,
    });
  }

  /**
   * Drops what no renewal will ask for any more: a lease its holder let go without a release
   * reaching us (lost on its own deadline while the store was unreachable) is past its TTL.
   */
  #forgetStale(): void {
    if (this.leases.size === 0) return;
    const now = Date.now();
    for (const [id, reg] of this.leases) if (reg.until < now - 2 * this.maxTtlMs) this.leases.delete(id);
  }

  // ── waiters ──────────────────────────────────────────────────────────────────────────────

  addWaiter(w: Waiter): void {
    this.waiters.set(w.ticketId, w);
    if (this.#recheckTimer === undefined) this.#scheduleRecheck();
  }

  removeWaiter(w: Waiter): void {
    if (this.waiters.get(w.ticketId) === w) this.waiters.delete(w.ticketId);
    if (this.waiters.size === 0 && this.#recheckTimer !== undefined) {
      clearTimeout(this.#recheckTimer);
      this.#recheckTimer = undefined;
    }
  }

  #scheduleRecheck(): void {
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = undefined;
      this.recheck();
      if (this.waiters.size > 0 && !this.#closed) this.#scheduleRecheck();
    }, this.store.safetyRecheckMs);
    unrefTimer(this.#recheckTimer);
  }

  /** The safety re-check: claims outcomes whose wake-up message did not arrive. */
  recheck(only?: Waiter[]): void {
    const waiting = (only ?? [...this.waiters.values()]).filter((w) => w.waiting);
    for (let i = 0; i < waiting.length; i += CLAIM_BATCH) {
      const batch = waiting.slice(i, i + CLAIM_BATCH);
      this.exec(
        SCRIPTS.claim,
        batch.flatMap((w) => [w.ticketId, w.leaseId]),
      )
        .then((reply) => {
          this.arm(int(reply[0], "next deadline"));
          batch.forEach((w, j) => {
            const code = int(reply[1 + 2 * j], "claim status");
            if (code === REPLY.OUTCOME) w.deliver(parseOutcome(str(reply[2 + 2 * j], "outcome")).outcome, "claim");
            else if (code === REPLY.NOT_FOUND) w.lost();
          });
        })
        .catch(() => this.store.fault("recheck"));
    }
  }

  /** Ends a lease; wake-ups for this node's own waiters come back in the reply instead of by pub/sub. */
  release(leaseId: string): Promise<boolean> {
    this.leases.delete(leaseId);
    return this.exec(SCRIPTS.release, [leaseId, this.wireChannel]).then((reply) => {
      this.arm(int(reply[1], "next deadline"));
      for (let i = 2; i < reply.length; i++) this.onMessage(str(reply[i], "outcome"));
      return int(reply[0], "release status") === REPLY.RELEASED;
    });
  }

  /** Gives back a grant nobody will use; a failure is counted, and the lease TTL reclaims the slot. */
  releaseQuietly(leaseId: string): void {
    this.release(leaseId).catch(() => this.store.fault("cleanup"));
  }

  /** One handle closed; the last one stops this group's timers and subscription. */
  detach(): void {
    if (--this.handles > 0) return;
    this.#closed = true;
    if (this.#sweepTimer !== undefined) clearTimeout(this.#sweepTimer);
    if (this.#recheckTimer !== undefined) clearTimeout(this.#recheckTimer);
    this.#sweepTimer = this.#recheckTimer = undefined;
    const subscribed = this.#subscribed || this.#subscribing !== undefined;
    this.#subscribed = false;
    this.store.dropGroup(this, subscribed);
  }
}

// ── a queued acquire ─────────────────────────────────────────────────────────────────────────

class Waiter {
  readonly group: RedisGroup;
  /** The acquire's scopes as sent, for the lease's re-registration. */
  readonly scopes: readonly Arg[];
  readonly ticketId: string;
  /** The lease id the ticket is granted under: a claim or cancel finds a grant through it. */
  readonly leaseId: string;
  #done = false;
  /** Set while a cancel runs: `aborted` (signal or close) or `timeout` (the local deadline passed). */
  #settling: "aborted" | "timeout" | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #resolve: (result: StoreAcquireResult) => void;
  readonly #reject: (error: unknown) => void;
  readonly #onDone: (w: Waiter) => void;
  readonly settled: Promise<void>;
  #markSettled!: () => void;

  constructor(
    group: RedisGroup,
    scopes: readonly Arg[],
    ticketId: string,
    leaseId: string,
    timeoutMs: number,
    resolve: (r: StoreAcquireResult) => void,
    reject: (e: unknown) => void,
    onDone: (w: Waiter) => void,
  ) {
    this.group = group;
    this.scopes = scopes;
    this.ticketId = ticketId;
    this.leaseId = leaseId;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#onDone = onDone;
    this.settled = new Promise<void>((r) => (this.#markSettled = r));
    // The store times the ticket out at its deadline; this is the fallback if that word is lost.
    this.#timer = setTimeout(() => this.#expire(), timeoutMs + DEADLINE_GRACE_MS);
  }

  /** Neither done nor in the middle of a cancel: a re-check may claim for it. */
  get waiting(): boolean {
    return !this.#done && this.#settling === undefined;
  }

  deliver(outcome: Outcome, source: "message" | "claim" | "cancel"): void {
    if (this.#done) return;
    if (this.#settling === "aborted") {
      // A message leaves the outcome in Redis, where the abort's cancel will find it. A claim or
      // the cancel itself took it out: a grant handed over that way is ours to give back.
      if (source === "message") return;
      if (outcome.granted) this.group.releaseQuietly(outcome.lease.id);
      return this.#finish({ ok: false, reason: "aborted" });
    }
    if (!outcome.granted) return this.#finish({ ok: false, reason: "queue-timeout" });
    this.group.track(outcome.lease, outcome.epoch, this.scopes);
    this.#finish({ ok: true, lease: outcome.lease });
  }

  /** The store knows neither the ticket nor an outcome for it: its state was lost. */
  lost(): void {
    if (this.#done || this.#settling) return;
    this.#fail(unavailable(`redis store: ticket ${this.ticketId} of group ${this.group.name} was lost (data flushed or server restarted?)`));
  }

  /** Signal aborted or handle closed: leave the queue; resolves `aborted` whatever raced it. */
  abort(): Promise<void> {
    if (this.#done || this.#settling === "aborted") return this.settled;
    this.#settling = "aborted";
    this.#cancel("aborted").catch(() => {
      this.group.store.fault("cleanup");
      this.#finish({ ok: false, reason: "aborted" });
    });
    return this.settled;
  }

  #expire(): void {
    this.#timer = undefined;
    if (this.#done || this.#settling) return;
    this.#settling = "timeout";
    this.#cancel("queue_timeouts").catch((error: unknown) => this.#fail(error));
  }

  async #cancel(how: "aborted" | "queue_timeouts"): Promise<void> {
    const reply = await this.group.exec(SCRIPTS.cancel, [this.ticketId, how, this.leaseId]);
    this.group.arm(int(reply[2], "next deadline"));
    const code = int(reply[0], "cancel status");
    if (code === REPLY.OUTCOME) return this.deliver(parseOutcome(str(reply[1], "outcome")).outcome, "cancel");
    this.#finish({ ok: false, reason: how === "aborted" ? "aborted" : "queue-timeout" });
  }

  #finish(result: StoreAcquireResult): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop();
    this.#resolve(result);
  }

  #fail(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop();
    this.#reject(error);
  }

  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.group.removeWaiter(this);
    this.#onDone(this);
    this.#markSettled();
  }
}

// ── the handle a guard holds ─────────────────────────────────────────────────────────────────

class RedisGroupHandle implements GroupStore, Reconfigurer {
  readonly #g: RedisGroup;
  #closed = false;
  /** Waiters opened through this handle, so close() can end exactly those. */
  readonly #mine = new Set<Waiter>();
  #spec: GroupSpec;
  #version: number | null;
  /** What the push of this handle's spec found (SPEC §2 rule 13). */
  #status: SpecStatus | undefined;
  #configured = false;
  #configuring: Promise<void> | undefined;

  constructor(g: RedisGroup, spec: GroupSpec, version: number | null) {
    this.#g = g;
    this.#spec = spec;
    this.#version = version;
    // Push now; calls made before it lands wait for it. A failure (or a refusal) is retried by the next call.
    this.#ensureConfigured()?.catch(() => undefined);
  }

  /** Pushes this handle's spec if it has not gone through yet; undefined when it has (then calls go out synchronously). */
  #ensureConfigured(): Promise<void> | undefined {
    if (this.#configured) return undefined;
    this.#configuring ??= this.#push(this.#spec, this.#version).then(
      () => {
        this.#configuring = undefined;
      },
      (error: unknown) => {
        this.#configuring = undefined;
        throw error;
      },
    );
    return this.#configuring;
  }

  async #push(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    const status = await this.#g.configure(spec, version);
    this.#spec = spec;
    this.#version = version;
    this.#status = status;
    this.#configured = true;
    return status;
  }

  /**
   * Runs a script once this handle's spec went through. When it has, the command is sent
   * synchronously, so calls reach Redis in the order they were made (a release followed by an
   * acquire cannot be reordered).
   */
  exec(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions = NO_OPTIONS): Promise<Reply> {
    const g = this.#g;
    const pending = this.#ensureConfigured();
    if (!pending) return g.run(def, argv, options, this);
    return pending.then(() => g.run(def, argv, options, this));
  }

  /** A call found the group without a spec (its data was lost): push this handle's again, and retry once. */
  reconfigureAndRetry(def: ScriptDef<CommandName>, argv: readonly Arg[], options: CallOptions): Promise<Reply> {
    const g = this.#g;
    this.#configured = false;
    return this.#ensureConfigured()!.then(() => g.store.call(def, g.keys, argv, options, "retried"));
  }

  #open(): RedisGroup {
    if (this.#closed) throw new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed");
    return this.#g;
  }

  // acquire, release and renew are not async functions: when the group is configured their
  // call joins the group's batch before they return, which keeps calls in the order they were made.
  acquire(request: ChainRequest, signal?: AbortSignal): Promise<StoreAcquireResult> {
    if (this.#closed) return Promise.reject(new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed"));
    const g = this.#g;
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "aborted" });
    const leaseId = crypto.randomUUID();
    const subscribedBefore = g.subscribed;
    const scopes = request.scopes.map(toWire);
    const argv: Arg[] = [
      leaseId,
      g.wireChannel,
      g.store.sharded ? 1 : 0,
      request.priorityClass,
      request.priorityOffsetMs,
      request.queueTimeoutMs,
      request.leaseTtlMs,
      request.backend ?? "",
      request.backend !== undefined && request.server !== undefined ? request.server : "",
      g.epoch,
      g.fenceSeen,
      Math.max(g.maxTtlMs, request.leaseTtlMs),
    ];
    // Rules F and E (acquire.lua): a '\0' (no scope name is) announces the flow and early rejection.
    if (request.flow !== undefined || request.early === true)
      argv.push("\0", request.flow === undefined ? "" : toWire(request.flow), request.early === true ? 1 : 0);
    for (const scope of scopes) argv.push(scope);
    if (request.leaseTtlMs > g.maxTtlMs) g.maxTtlMs = request.leaseTtlMs;
    // A reply that comes after we gave up is undone: its grant released, its ticket cancelled
    // (and released, if it was granted meanwhile).
    const late = (reply: Reply) => {
      if (reply[0] === REPLY.GRANTED) g.releaseQuietly(String(reply[1]));
      else if (reply[0] === REPLY.QUEUED) {
        g.exec(SCRIPTS.cancel, [String(reply[1]), "aborted", leaseId])
          .then((r) => {
            if (r[0] === REPLY.OUTCOME) {
              const { outcome } = parseOutcome(str(r[1], "outcome"));
              if (outcome.granted) g.releaseQuietly(outcome.lease.id);
            }
          })
          .catch(() => g.store.fault("cleanup"));
      }
    };
    return this.exec(SCRIPTS.acquire, argv, { late }).then((reply) => this.#acquired(g, request, scopes, leaseId, reply, signal, subscribedBefore));
  }

  #acquired(
    g: RedisGroup,
    request: ChainRequest,
    scopes: readonly Arg[],
    leaseId: string,
    reply: Reply,
    signal: AbortSignal | undefined,
    subscribedBefore: boolean,
  ): Promise<StoreAcquireResult> | StoreAcquireResult {
    const status = int(reply[0], "acquire status");
    switch (status) {
      case REPLY.GRANTED: {
        g.arm(int(reply[7], "next deadline"));
        g.sawEpoch(reply[8]);
        const lease: LeaseGrant = {
          id: str(reply[1], "lease id"),
          fence: fenceOf(reply[2]),
          expiresAt: int(reply[5], "expiry"),
          ttlMs: int(reply[6], "ttl"),
          waitedMs: 0,
        };
        const backend = str(reply[3], "backend");
        const server = str(reply[4], "server");
        if (backend !== "") lease.backend = backend;
        if (server !== "") lease.server = server;
        g.track(lease, g.epoch, scopes);
        return { ok: true, lease };
      }
      case REPLY.REJECTED: {
        g.arm(int(reply[2], "next deadline"));
        g.sawEpoch(reply[3]);
        const reason = str(reply[1], "reason");
        if (reason !== "full" && reason !== "queue-full") throw protocol(`redis store: unknown rejection ${reason}`);
        return { ok: false, reason };
      }
      case REPLY.REJECTED_EARLY:
        g.arm(int(reply[2], "next deadline"));
        g.sawEpoch(reply[3]);
        return { ok: false, reason: "queue-timeout", retryAfterMs: int(reply[1], "retry after") };
      case REPLY.QUEUED:
        g.arm(int(reply[3], "next deadline"));
        g.sawEpoch(reply[4]);
        return this.#wait(g, scopes, str(reply[1], "ticket id"), leaseId, int(reply[2], "queue timeout"), signal, subscribedBefore);
      case REPLY.UNKNOWN_SCOPE: {
        const name = request.scopes[int(reply[1], "scope index") - 1] ?? "";
        throw replyError(status, name.length > 80 ? `${name.slice(0, 80)}…` : name);
      }
      default:
        throw replyError(status, typeof reply[1] === "string" ? reply[1] : "");
    }
  }

  #wait(
    g: RedisGroup,
    scopes: readonly Arg[],
    ticketId: string,
    leaseId: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    subscribedBefore: boolean,
  ): Promise<StoreAcquireResult> {
    return new Promise<StoreAcquireResult>((resolve, reject) => {
      const onAbort = () => void waiter.abort();
      const waiter = new Waiter(g, scopes, ticketId, leaseId, timeoutMs, resolve, reject, (w) => {
        signal?.removeEventListener("abort", onAbort);
        this.#mine.delete(w);
      });
      this.#mine.add(waiter);
      g.addWaiter(waiter);
      const early = g.takeEarly(ticketId);
      if (early) return waiter.deliver(early, "message");
      // Closed or aborted while the acquire was on its way: leave the queue at once.
      if (this.#closed || signal?.aborted) return void waiter.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      // Not subscribed when the ticket was queued: a wake-up may have been missed.
      if (!subscribedBefore)
        g.subscribe().then(
          () => g.recheck([waiter]),
          () => undefined,
        );
    });
  }

  /** Works after close() (the store contract): a grant that raced close() is given back at once, not held until its TTL. */
  release(leaseId: string): Promise<boolean> {
    return this.#g.release(leaseId);
  }

  renew(leaseId: string, ttlMs: number): Promise<RenewResult> {
    if (this.#closed) return Promise.reject(new SlotgateError("SLOTGATE_CLOSED", "this store handle is closed"));
    const g = this.#g;
    if (ttlMs > g.maxTtlMs) g.maxTtlMs = ttlMs;
    const reg = g.leases.get(leaseId);
    // What re-creates the lease if the group's state lost it (rule 12); the fast path reads only the id and TTL.
    const argv: Arg[] =
      reg === undefined ? [leaseId, ttlMs, 0, 0, 0, "", ""] : [leaseId, ttlMs, reg.epoch, reg.fence, g.maxTtlMs, reg.backend, reg.server, ...reg.scopes];
    return this.exec(SCRIPTS.renew, argv).then((reply): RenewResult => {
      const status = int(reply[0], "renew status");
      if (status === REPLY.NOT_FOUND || status === REPLY.LEASE_LOST) {
        g.arm(int(reply[1], "next deadline"));
        g.sawEpoch(reply[2]);
        g.leases.delete(leaseId);
        return status === REPLY.LEASE_LOST ? { ok: false, stateLost: true } : { ok: false };
      }
      if (status !== REPLY.RENEWED && status !== REPLY.REREGISTERED) throw replyError(status, "renew");
      g.arm(int(reply[2], "next deadline"));
      g.sawEpoch(reply[3]);
      const expiresAt = int(reply[1], "expiry");
      if (reg !== undefined) {
        reg.until = Date.now() + ttlMs;
        // Alive in the group's current state: a later loss is measured from this epoch.
        if (typeof reply[3] === "number" && reply[3] > 0) reg.epoch = reply[3];
      }
      return status === REPLY.REREGISTERED ? { ok: true, expiresAt, reregistered: true } : { ok: true, expiresAt };
    });
  }

  async ready(): Promise<SpecStatus> {
    this.#open();
    await this.#ensureConfigured();
    return this.#status!;
  }

  async configure(spec: GroupSpec, version: number | null): Promise<SpecStatus> {
    this.#open();
    // After this handle's own push, so the two cannot overtake each other.
    await this.#ensureConfigured()?.catch(() => undefined);
    return this.#push(spec, version);
  }

  async setServerState(backend: string, server: string, up: boolean): Promise<void> {
    const g = this.#open();
    const reply = await this.exec(SCRIPTS.serverState, [backend, server, up ? 1 : 0]);
    const status = int(reply[0], "status");
    if (status !== REPLY.DONE) throw replyError(status, str(reply[1], "detail"));
    g.arm(int(reply[2], "next deadline"));
  }

  async stats(): Promise<GroupStatsSnapshot> {
    this.#open();
    const reply = await this.exec(SCRIPTS.stats, [], { buffer: true });
    return parseStats(reply, this.#spec);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#mine].map((w) => w.abort()));
    this.#g.detach();
  }
}

/** Parses the stats script's reply (exported for the differential test). */
export function parseStats(reply: Reply, spec: GroupSpec | undefined): GroupStatsSnapshot {
  let i = 1;
  const next = (what: string) => int(reply[i++], what);
  const now = next("now");
  const fence = next("fence");
  const holders = next("holders");
  const tickets = next("tickets");
  const count = next("wait count");
  const sumMs = next("wait sum");
  const buckets = next("bucket count");
  if (buckets !== WAIT_BUCKETS_MS.length + 1) throw protocol(`redis store: ${buckets} histogram buckets, expected ${WAIT_BUCKETS_MS.length + 1}`);
  const counts: number[] = [];
  for (let b = 0; b < buckets; b++) counts.push(next("bucket"));
  const rows = next("row count");
  // Scope names are user input ("tenant:__proto__"): rows go into objects without a prototype.
  const scopes = Object.create(null) as Record<string, ScopeStats>;
  const limit = (v: number) => (v < 0 ? null : v);
  for (let r = 0; r < rows; r++) {
    const name = str(reply[i++], "scope name");
    const flag = next("flag");
    const max = limit(next("max"));
    const maxqueue = limit(next("maxqueue"));
    const up = next("up");
    const s: ScopeStats = {
      in_use: next("in_use"),
      max,
      maxqueue,
      queued: next("queued"),
      peak_in_use: next("peak_in_use"),
      peak_queued: next("peak_queued"),
      granted: next("granted"),
      rejected_full: next("rejected_full"),
      rejected_queue_full: next("rejected_queue_full"),
      queue_timeouts: next("queue_timeouts"),
      aborted: next("aborted"),
      expired: next("expired"),
      released: next("released"),
    };
    const keys = next("keys");
    s.rejected_early = next("rejected_early");
    s.codel_dropped = next("codel_dropped");
    if (flag === 1) s.keys = keys;
    if (flag === 2) s.up = up === 1;
    scopes[name] = s;
  }
  const snapshot: GroupStatsSnapshot = {
    now,
    fence,
    scopes: spec === undefined ? sortedRows(scopes) : inSpecOrder(scopes, spec),
    queueWait: { bounds: WAIT_BUCKETS_MS, counts, count, sumMs },
    holders,
    tickets,
  };
  if (i < reply.length) {
    const reregistered = next("reregistered");
    const lost = next("lost");
    const learn = next("learning until");
    snapshot.stateLoss = { reregistered, lost, learningUntil: learn > now ? learn : null };
    next("epoch");
  }
  if (i < reply.length) {
    const discipline = str(reply[i++], "discipline");
    const standing = next("standing") === 1;
    if (discipline === "fifo" || discipline === "codel" || discipline === "lifo") snapshot.queue = { discipline, standing };
    else if (discipline !== "") throw protocol(`redis store: unknown discipline ${discipline}`);
    const count = next("flow count");
    // Flow names are client data ("__proto__"): no prototype.
    const flows = Object.create(null) as Record<string, FlowStats>;
    for (let f = 0; f < count; f++) {
      const name = str(reply[i++], "flow name");
      flows[name] = { waiting: next("waiting"), granted: next("granted") };
    }
    if (count > 0) snapshot.flows = flows;
  }
  return snapshot;
}

/** Rows by name, for a reader that has no spec of its own. */
function sortedRows(scopes: Record<string, ScopeStats>): Record<string, ScopeStats> {
  const sorted = Object.create(null) as Record<string, ScopeStats>;
  for (const name of Object.keys(scopes).sort()) sorted[name] = scopes[name]!;
  return sorted;
}

/**
 * Rows in a stable order, as the memory store lists them: limits as declared, each keyed limit
 * followed by its live keys (sorted), then each backend followed by its servers, then the rest.
 */
function inSpecOrder(scopes: Record<string, ScopeStats>, spec: GroupSpec): Record<string, ScopeStats> {
  const keyedRows = new Map<string, string[]>();
  const rest: string[] = [];
  for (const name of Object.keys(scopes).sort()) {
    if (Object.hasOwn(spec.limits, name) || name.startsWith("backend:") || name.startsWith("server:")) continue;
    let parent: string | undefined;
    for (let i = name.indexOf(":"); i > 0 && parent === undefined; i = name.indexOf(":", i + 1)) {
      const limit = name.slice(0, i);
      if (Object.hasOwn(spec.limits, limit) && spec.limits[limit]!.keyed) parent = limit;
    }
    if (parent === undefined) rest.push(name);
    else keyedRows.set(parent, [...(keyedRows.get(parent) ?? []), name]);
  }
  const order: string[] = [];
  for (const name of Object.keys(spec.limits)) order.push(name, ...(keyedRows.get(name) ?? []));
  for (const [b, backend] of Object.entries(spec.backends)) order.push(backendScope(b), ...backend.servers.map((sv) => serverScope(b, sv.name)));
  const sorted = Object.create(null) as Record<string, ScopeStats>;
  for (const name of [...order, ...rest, ...Object.keys(scopes).sort()]) {
    const row = Object.hasOwn(scopes, name) ? scopes[name] : undefined;
    if (row && !Object.hasOwn(sorted, name)) sorted[name] = row;
  }
  return sorted;
}
