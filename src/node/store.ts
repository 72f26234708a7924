/**
 * The store of an edge node, built from the config's `store` section. ioredis and the Redis store
 * are imported only when the config asks for Redis, so a memory-only node never loads them.
 *
 * Connection settings for Redis (not in the config file; chosen for an edge node):
 * - a command fails after one retry instead of waiting for reconnects (`maxRetriesPerRequest: 1`),
 *   and the store bounds every command (5 s), so an outage turns into `on_store_error` quickly;
 * - reconnects back off from 100 ms to 2 s, forever: the node keeps serving under its outage
 *   policy and picks the store up again when it is back;
 * - connection errors are logged at most once per {@link ERROR_LOG_INTERVAL_MS}, without the URL's
 *   password.
 */
import type { Cluster, Redis, RedisOptions } from "ioredis";
import type { SlotStore } from "../core/store.js";
import { createMemoryStore } from "../stores/memory/memory-store.js";
import type { StoreConfig } from "../edge/config/schema.js";
import { errorFields, redactUrl, type Logger } from "./logger.js";

export interface OpenedStore {
  readonly store: SlotStore;
  /** For logs and `slotgate check`: `memory`, `redis redis://:***@host:6379`. */
  readonly description: string;
  /** Resolves true once the store's connection is ready, false after `timeoutMs` (memory: at once). */
  ready(timeoutMs: number): Promise<boolean>;
  /** Closes the connections this module opened. Idempotent. */
  close(): Promise<void>;
}

export const ERROR_LOG_INTERVAL_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
const QUIT_TIMEOUT_MS = 1_000;

/** Opens the store a config names. */
export async function openStore(config: StoreConfig, logger: Logger): Promise<OpenedStore> {
  switch (config.type) {
    case "memory":
      return { store: createMemoryStore(), description: "memory", ready: () => Promise.resolve(true), close: () => Promise.resolve() };
    case "redis":
    case "redis-cluster":
      return openRedis(config, logger);
    case "durable-object":
      return openDurableObject(config);
  }
}

/**
 * The Worker's slot API. `ready` waits until it answers `ping` with the token (a wrong token or
 * URL never becomes ready); there is nothing to close (fetch's own connection pool).
 */
async function openDurableObject(config: Extract<StoreConfig, { type: "durable-object" }>): Promise<OpenedStore> {
  const { createDurableObjectHttpStore } = await import("../stores/durable-object/index.js");
  const store = createDurableObjectHttpStore({ url: config.url, token: config.token });
  return {
    store,
    description: `durable-object ${redactUrl(config.url)}`,
    async ready(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        try {
          await store.ping(AbortSignal.timeout(Math.max(1, Math.min(left, 5_000))));
          return true;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(0, deadline - Date.now()))));
        }
      }
    },
    close: () => Promise.resolve(),
  };
}

function retryStrategy(times: number): number {
  return Math.min(100 * 2 ** Math.min(times - 1, 5), 2_000);
}

/** ioredis options from a `redis://` / `rediss://` URL, for the nodes of a cluster. */
function nodeOptions(url: string): { host: string; port: number; options: RedisOptions } {
  const u = new URL(url);
  const options: RedisOptions = { connectTimeout: CONNECT_TIMEOUT_MS };
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === "rediss:") options.tls = { servername: u.hostname.replace(/^\[|\]$/g, "") };
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port === "" ? 6379 : Number(u.port), options };
}

async function openRedis(config: Extract<StoreConfig, { type: "redis" | "redis-cluster" }>, logger: Logger): Promise<OpenedStore> {
  const [{ Redis, Cluster }, { createRedisStore }] = await Promise.all([import("ioredis"), import("../stores/redis/index.js")]);
  let client: Redis | Cluster;
  let description: string;
  if (config.type === "redis") {
    description = `redis ${redactUrl(config.url)}`;
    client = new Redis(config.url, {
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      retryStrategy,
    });
  } else {
    description = `redis-cluster ${config.urls.map(redactUrl).join(",")}`;
    const nodes = config.urls.map(nodeOptions);
    client = new Cluster(
      nodes.map((n) => ({ host: n.host, port: n.port })),
      {
        redisOptions: { ...nodes[0]!.options, maxRetriesPerRequest: 1 },
        enableOfflineQueue: true,
        clusterRetryStrategy: retryStrategy,
        scaleReads: "master",
      },
    );
  }

  let lastLogged = 0;
  let wasReady = false;
  client.on("error", (error: unknown) => {
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return;
    lastLogged = now;
    logger.warn({ store: description, err: errorFields(error) }, "store connection error");
  });
  client.on("ready", () => {
    if (wasReady) logger.info({ store: description }, "store connection ready again");
    wasReady = true;
    lastLogged = 0;
  });

  const store = config.prefix === null ? createRedisStore({ redis: client }) : createRedisStore({ redis: client, prefix: config.prefix });
  let closed: Promise<void> | undefined;
  return {
    store,
    description,
    ready(timeoutMs) {
      if (client.status === "ready") return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          client.off("ready", onReady);
          resolve(ok);
        };
        const onReady = () => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        client.on("ready", onReady);
      });
    },
    close() {
      closed ??= (async () => {
        // QUIT lets pending replies arrive; a store that is down would hold it, so it is bounded.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([client.quit().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, QUIT_TIMEOUT_MS)))]);
        clearTimeout(timer);
        client.disconnect();
      })();
      return closed;
    },
  };
}
