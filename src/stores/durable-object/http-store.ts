/**
 * The Durable Object store over HTTPS: the {@link SlotStore} contract for processes outside
 * Cloudflare (a Node edge node: `store: { type: durable-object, url, token }`), backed by the
 * `SlotGroup` objects the slotgate Worker serves through its slot API. Node edge nodes and
 * Workers then take slots from the same objects: one fleet, two runtimes.
 *
 * It is the client of `client.ts` (spec push, retries, cold start, abort versus grant, close)
 * over the HTTP transport of `http-transport.ts` (token, lease secrets, faults); this module
 * checks the options. Runtime-neutral: only `fetch`, `AbortSignal`, `crypto` and timers.
 *
 * - Cost: one HTTPS request per uncontended acquire and one per release when alone; the calls a
 *   handle makes in one turn of the event loop go as one `batch` request. A queued acquire is one
 *   open request (its own long poll, or a `wait` after its batch), with no polling. Each `open()`
 *   sends one `configure`.
 * - Bounds: each attempt of an idempotent call gives up after `timeoutMs`; an acquire after its
 *   queue timeout plus `timeoutMs`. Until the slot API has answered once (a cold start), idempotent
 *   calls retry for up to `timeoutMs` rather than `retries` times.
 * - Security: the token goes only to the configured origin (redirects are not followed), and only
 *   over https, or plain http to a loopback address. Errors never include it.
 * - Permissions: with a token that may lease but not configure (a `lease` token of
 *   `SLOTGATE_API_TOKENS`), the spec `open()` pushes is refused (403); the handle then uses the
 *   spec the object has (pushed by the Worker or an admin). An explicit `configure()` still fails.
 */
import { redactCredentials } from "../../core/redact.js";
import type { GroupSpec } from "../../core/spec.js";
import type { GroupStatsSnapshot } from "../../core/stats.js";
import type { GroupStore, OpenOptions, SlotStore } from "../../core/store.js";
import { int, isPlainObject, object, optional, parse, report, rule } from "../../core/validate.js";
import { DurableObjectGroup, readStats, type RetryPolicy } from "./client.js";
import { SlotApiClient, type FetchLike } from "./http-transport.js";
import { unwrap } from "./protocol.js";

export type { FetchLike } from "./http-transport.js";
export { ABORT_GRACE_MS } from "./client.js";

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

const TOKEN = /^[\x21-\x7e]{16,4096}$/;
const URL_EXPECTED = "the slotgate Worker's https:// URL (http:// only for a loopback address), without credentials, query or fragment";

const httpStoreOptions = object(
  {
    url: rule((value, addIssue) => baseUrl(value) ?? report(addIssue, URL_EXPECTED, typeof value === "string" ? redactCredentials(value) : value)),
    token: rule((value, addIssue) =>
      typeof value === "string" && TOKEN.test(value)
        ? value
        : report(
            addIssue,
            "the slot API token: 16 to 4096 printable ASCII characters without spaces",
            typeof value === "string" ? `(${value.length} characters, not shown)` : value,
          ),
    ),
    fetch: rule((value, addIssue) => {
      if (typeof value === "function") return value as FetchLike;
      if (value !== undefined) return report(addIssue, "a fetch function", value);
      if (typeof globalThis.fetch !== "function") return report(addIssue, "a fetch function (this runtime has no global fetch)", undefined);
      return ((input, init) => globalThis.fetch(input, init)) as FetchLike;
    }),
    retries: optional(int({ min: 0, max: 10 }), 3),
    retryDelayMs: optional(int({ min: 0, max: 60_000 }), 50),
    timeoutMs: optional(int({ min: 100, max: 600_000 }), 10_000),
  },
  "an object { url, token, fetch?, retries?, retryDelayMs?, timeoutMs? }",
);

export function createDurableObjectHttpStore(options: DurableObjectHttpStoreOptions): DurableObjectHttpStore {
  const { url: base, token, fetch, retries, retryDelayMs, timeoutMs } = parse(httpStoreOptions, options, isPlainObject(options) ? "" : "options");
  const policy: RetryPolicy = { retries, delayMs: retryDelayMs, timeoutMs };
  const api = new SlotApiClient(base, token, fetch, timeoutMs);
  return {
    kind: "durable-object",
    open: (group: string, spec: GroupSpec, openOptions: OpenOptions = {}): GroupStore =>
      new DurableObjectGroup(api.group(group), group, spec, openOptions.version ?? null, policy),
    // Read-only: the stats route writes no spec (and a lease token may call it).
    readStats: (group: string): Promise<GroupStatsSnapshot | undefined> => readStats(group, policy, (g) => api.group(g)),
    ping: (signal?: AbortSignal) => api.call<unknown>(null, "ping", undefined, signal).then((reply) => void unwrap(reply)),
  };
}

/** The URL without a trailing slash; http only to loopback; no credentials, query or fragment. */
function baseUrl(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length > 2048) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (
    (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) ||
    url.username !== "" ||
    url.password !== "" ||
    url.search !== "" ||
    url.hash !== "" ||
    value.includes("#")
  )
    return undefined;
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}
