/**
 * The edge node of SPEC §5 (`slotgate serve`): one guard on the config's store, one listener per
 * frontend (HTTP reverse proxy or TCP proxy), and the stats listener when the config has `stats`.
 *
 * ```ts
 * const node = await createEdgeNode(await loadEdgeConfig("edge.yaml"), { logger });
 * await node.start();
 * // …
 * await node.stop(10_000); // stop accepting, drain up to 10 s, release every lease, close the store
 * ```
 *
 * Shutdown (`stop`): every listener stops accepting (idle keep-alive connections are closed,
 * responses in progress say `Connection: close`), in-flight requests and connections get up to
 * `graceMs` to finish, then whatever is left is destroyed, `guard.close()` ends waiting acquires
 * and releases every lease this node holds, and the store connections close.
 */
import { isSlotgateError } from "../core/errors.js";
import type { Guard, GuardEvent } from "../core/guard.js";
import { createGuard } from "../index.js";
import type { SlotStore } from "../core/store.js";
import type { EdgeConfig } from "../edge/config/schema.js";
import { createRequestPlanner, toGuardOptions } from "../edge/config/to-guard.js";
import { NodeLimit } from "../edge/node-limit.js";
import { LeaseWatch, type FrontendListener, type NodeStats } from "./frontend.js";
import { createHttpFrontend, type HttpFrontendOptions } from "./http-proxy.js";
import { errorFields, silentLogger, type Logger } from "./logger.js";
import { createStatsListener } from "./stats/index.js";
import { openStore, type OpenedStore } from "./store.js";
import { createTcpFrontend } from "./tcp-proxy.js";

export const DEFAULT_GRACE_MS = 10_000;
/** How long start() waits for a Redis connection before it goes on (and logs) without one. */
const STORE_READY_WAIT_MS = 5_000;
/** Fallback decisions logged one by one per second, at most; the rest are summed up. */
const FALLBACK_LOGS_PER_SECOND = 10;

export interface EdgeNodeOptions {
  /** Use this store instead of the config's `store` (tests, embedding). It is not closed by stop(). */
  store?: SlotStore;
  /** @default a silent logger */
  logger?: Logger;
  /** Limits of the HTTP listeners. */
  http?: HttpFrontendOptions;
}

export interface EdgeNode {
  readonly config: EdgeConfig;
  readonly guard: Guard;
  /** Bound address of each frontend (the real port when the config says 0); empty before start(). */
  readonly addresses: Readonly<Record<string, { host: string; port: number }>>;
  /** Bound address of the stats listener, or null (no `stats` in the config, or not started). */
  readonly statsAddress: { host: string; port: number } | null;
  /** Binds every listener. On failure, whatever was bound is closed again and the error rethrown. */
  start(): Promise<void>;
  /** Graceful stop; see the module comment. Idempotent. @param graceMs default 10 000 */
  stop(graceMs?: number): Promise<void>;
  /** This process's numbers (the stats listener's `NodeStats`). */
  nodeStats(): NodeStats;
}

interface StatsListenerHandle {
  start(): Promise<void>;
  stop(): Promise<void>;
  address(): { host: string; port: number } | null;
}

/**
 * Builds an edge node: opens the store (ioredis is loaded only for Redis configs) and the guard.
 * Nothing listens until `start()`. Throws a SlotgateError for a store
 * type this build cannot use.
 */
export async function createEdgeNode(config: EdgeConfig, options: EdgeNodeOptions = {}): Promise<EdgeNode> {
  const logger = options.logger ?? silentLogger();
  const opened: OpenedStore | undefined = options.store ? undefined : await openStore(config.store, logger);
  const store = options.store ?? opened!.store;
  const leases = new LeaseWatch();
  const log = guardEventLogger(logger);
  const onEvent = (event: GuardEvent) => {
    log(event);
    if (event.type === "lease-lost") leases.lost(event.leaseId);
  };
  const guard = createGuard({ ...toGuardOptions(config), store, onEvent });
  return new EdgeNodeImpl(config, guard, opened, logger, options.http ?? {}, leases);
}

class EdgeNodeImpl implements EdgeNode {
  readonly config: EdgeConfig;
  readonly guard: Guard;
  readonly #opened: OpenedStore | undefined;
  readonly #logger: Logger;
  readonly #limit: NodeLimit;
  readonly #frontends: FrontendListener[] = [];
  #stats: StatsListenerHandle | undefined;
  #started: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(config: EdgeConfig, guard: Guard, opened: OpenedStore | undefined, logger: Logger, http: HttpFrontendOptions, leases: LeaseWatch) {
    this.config = config;
    this.guard = guard;
    this.#opened = opened;
    this.#logger = logger;
    this.#limit = new NodeLimit(config.node.maxconn);
    const planner = createRequestPlanner(config);
    const ctx = { guard, planner, limit: this.#limit, logger, config, leases };
    for (const f of Object.values(config.frontends)) {
      const backend = config.backends[f.defaultBackend]!; // the schema checked the reference
      this.#frontends.push(f.mode === "tcp" ? createTcpFrontend(f, backend, ctx) : createHttpFrontend(f, backend, ctx, http));
    }
    if (config.stats) {
      this.#stats = createStatsListener({ bind: config.stats.bind, token: config.stats.token, guard, config, node: () => this.nodeStats(), logger });
    }
  }

  get addresses(): Record<string, { host: string; port: number }> {
    const out = Object.create(null) as Record<string, { host: string; port: number }>;
    for (const f of this.#frontends) {
      const a = f.address();
      if (a) out[f.name] = a;
    }
    return out;
  }

  get statsAddress(): { host: string; port: number } | null {
    return this.#stats?.address() ?? null;
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    if (this.#stopped) throw new Error("the edge node was stopped");
    let reachable = true;
    if (this.#opened) {
      reachable = await this.#opened.ready(STORE_READY_WAIT_MS);
      if (reachable) this.#logger.info({ store: this.#opened.description }, "store connected");
      else
        this.#logger.warn(
          { store: this.#opened.description, policy: this.config.onStoreError },
          `store not reachable yet; serving with on_store_error ${this.config.onStoreError}`,
        );
    }
    if (reachable) await this.#openGroup();
    try {
      for (const f of this.#frontends) {
        await f.listen();
        const a = f.address();
        this.#logger.info({ frontend: f.name, mode: f.mode, address: a ? formatAddress(a) : null }, "frontend listening");
      }
      if (this.#stats) {
        await this.#stats.start();
        const a = this.#stats.address();
        this.#logger.info({ address: a ? formatAddress(a) : null }, "stats listening");
      }
    } catch (error) {
      this.#logger.error({ err: errorFields(error) }, "cannot start");
      await Promise.all(this.#frontends.map((f) => f.close()));
      await this.#stats?.stop().catch(() => undefined);
      throw error;
    }
    this.#logger.info({ group: this.config.group, store: this.#opened?.description ?? "(given)", nodeMaxconn: this.config.node.maxconn }, "edge node started");
  }

  /**
   * Pushes this node's spec before anything listens (SPEC §2 rule 13): a spec the store refuses
   * (the same version, other limits) stops the start with a message that names what differs; a
   * newer stored spec is logged, and the node runs under it. A store fault here is not fatal: the
   * node serves under its outage policy, and the first call pushes the spec again.
   */
  async #openGroup(): Promise<void> {
    const version = this.config.version;
    try {
      const status = await this.guard.open();
      if (status.installed) {
        this.#logger.info({ group: this.config.group, version }, version === null ? "spec pushed (unversioned)" : `spec version ${version} in force`);
      } else {
        this.#logger.warn(
          { group: this.config.group, version, storedVersion: status.storedVersion },
          `the fleet runs spec version ${status.storedVersion ?? "(unversioned)"}, newer than this node's ${version ?? "(unversioned)"}: limits are the fleet's; scopes only this node has answer unavailable`,
        );
      }
    } catch (error) {
      if (!isSlotgateError(error, "SLOTGATE_STORE_UNAVAILABLE")) {
        this.#logger.error({ err: errorFields(error) }, "cannot start");
        throw error;
      }
      this.#logger.warn(
        { err: errorFields(error), policy: this.config.onStoreError },
        `could not push the spec; serving with on_store_error ${this.config.onStoreError}`,
      );
    }
  }

  stop(graceMs: number = DEFAULT_GRACE_MS): Promise<void> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    await this.#started?.catch(() => undefined);
    const inFlight = () => this.#frontends.reduce((n, f) => n + f.inFlight(), 0);
    this.#logger.info({ graceMs, inFlight: inFlight() }, "stopping: no new connections, draining");
    for (const f of this.#frontends) f.stopAccepting();

    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      Promise.all(this.#frontends.map((f) => f.whenIdle())).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, graceMs)))),
    ]);
    clearTimeout(timer);
    const cut = inFlight();
    if (!drained) this.#logger.warn({ inFlight: cut }, "grace period over: closing what is left");

    await Promise.all(this.#frontends.map((f) => f.close()));
    await this.guard.close().catch((error: unknown) => this.#logger.warn({ err: errorFields(error) }, "guard close failed"));
    await this.#stats?.stop().catch((error: unknown) => this.#logger.warn({ err: errorFields(error) }, "stats listener close failed"));
    await this.#opened?.close();
    this.#logger.info({ drained, cut }, "edge node stopped");
  }

  nodeStats(): NodeStats {
    const frontends = Object.create(null) as NodeStats["frontends"];
    for (const f of this.#frontends) frontends[f.name] = f.counters();
    return { nodeMaxconn: this.#limit.max, nodeInUse: this.#limit.inUse, frontends };
  }
}

function formatAddress(a: { host: string; port: number }): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The guard's events as log lines; fallback decisions are rate limited and summed up, never dropped silently. */
function guardEventLogger(logger: Logger): (event: GuardEvent) => void {
  let windowStart = 0;
  let inWindow = 0;
  let suppressed: Record<string, number> = {};
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    flushTimer = undefined;
    const total = Object.values(suppressed).reduce((a, b) => a + b, 0);
    if (total > 0) logger.warn({ event: "fallback", suppressed }, `store unavailable: ${total} more fallback decisions`);
    suppressed = {};
  };
  return (event) => {
    if (event.type === "scope-unavailable") {
      // Once per scope (the guard reports each scope once), never per request.
      logger.warn(
        { event: event.type, scope: event.scope },
        `scope ${event.scope} is not in the fleet's spec (a newer version removed or renamed it): requests that need it are answered unavailable`,
      );
      return;
    }
    if (event.type === "lease-reregistered") {
      logger.warn({ event: event.type, lease: event.leaseId }, "lease re-registered after the store lost its state");
      return;
    }
    if (event.type !== "fallback") {
      logger.warn({ event: event.type, lease: event.leaseId, err: event.error === undefined ? undefined : errorFields(event.error) }, `lease ${event.type}`);
      return;
    }
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    if (++inWindow <= FALLBACK_LOGS_PER_SECOND) {
      logger.warn({ event: "fallback", policy: event.policy, err: errorFields(event.error) }, `store unavailable: ${event.policy}`);
      return;
    }
    suppressed[event.policy] = (suppressed[event.policy] ?? 0) + 1;
    if (flushTimer === undefined) {
      flushTimer = setTimeout(flush, 1000);
      flushTimer.unref();
    }
  };
}
