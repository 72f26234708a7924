/**
 * Keyed-limit values out of everything the stats listener and `slotgate stats` show. A keyed
 * limit's value is what a client sent (an API key header, a query token, a path, an address), so
 * by default each one is replaced by a short digest: `frontend:web:apikey:#3fa9c1d2e4b5`.
 *
 * The digest is the first 12 hex characters (48 bits) of HMAC-SHA-256(key, value), the HMAC key
 * being SHA-256 of `slotgate/stats-key/v1`, the group and the keyed limit's scope. It depends on
 * nothing but the config, so every node of a fleet (same file, same store) and every restart
 * shows the same digest for the same value, and operators can correlate the HTML page, JSON,
 * metrics, CLI table and logs. Keying by group and limit means one value gets unrelated digests
 * under two limits or two fleets, and no table precomputed for "SHA-256 of common API keys"
 * applies. It is a pseudonym, not encryption: whoever knows the group and limit names can test a
 * guess, so low-entropy values (a client address under `key: { src }`) can be recovered by trying
 * them all. `stats.show_keys: true` shows raw values instead.
 *
 * {@link publicStats} is the one place where a snapshot becomes displayable: the stats listener
 * calls it for `/stats`, `/stats.json` and `/metrics`, and `slotgate stats` for its table and
 * `--json` (when it reads the store directly; through a stats listener it gets digests already).
 */
import { createHash, createHmac } from "node:crypto";
import type { Guard, GuardStats } from "../../core/guard.js";
import type { ScopeStats } from "../../core/stats.js";
import type { EdgeConfig } from "../../edge/config/schema.js";

/** Hex characters of the digest shown: 48 bits, so collisions stay negligible for any realistic key count. */
export const KEY_DIGEST_HEX = 12;
const KEY_DIGEST_CONTEXT = "slotgate/stats-key/v1";

const hmacKeys = new Map<string, Buffer>();

/** The displayed form of a key value of the keyed limit `limitScope` (`frontend:<f>:<limit>`): `#` + 12 hex. */
export function keyDigest(group: string, limitScope: string, value: string): string {
  const id = `${group}\0${limitScope}`;
  let key = hmacKeys.get(id);
  if (!key) {
    key = createHash("sha256").update(`${KEY_DIGEST_CONTEXT}\0${id}`, "utf8").digest();
    // Bounded: one entry per (group, limit) a process has displayed, and configs are small.
    if (hmacKeys.size < 10_000) hmacKeys.set(id, key);
  }
  return `#${createHmac("sha256", key).update(value, "utf8").digest("hex").slice(0, KEY_DIGEST_HEX)}`;
}

/**
 * Where the key value starts in a scope name, or -1 when the scope is not a key row. Two signs,
 * either suffices: the edge node's form `frontend:<f>:<limit>:<value>` (frontend and limit names
 * never hold ":"), even for a limit this config does not declare (a node running a newer file);
 * or a prefix whose own row is a keyed limit's aggregate (it has `keys`), for scopes written by
 * other users of the group.
 */
export function keyValueStart(scope: string, scopes: Readonly<Record<string, ScopeStats>>): number {
  if (scope.startsWith("frontend:")) {
    const second = scope.indexOf(":", "frontend:".length);
    const third = second < 0 ? -1 : scope.indexOf(":", second + 1);
    if (third >= 0) return third + 1;
  }
  for (let i = scope.indexOf(":"); i > 0; i = scope.indexOf(":", i + 1)) {
    const prefix = scope.slice(0, i);
    if (Object.hasOwn(scopes, prefix) && scopes[prefix]!.keys !== undefined) return i + 1;
  }
  return -1;
}

/** The snapshot as it may be shown: key values digested unless `stats.show_keys` is set. */
export function publicStats(stats: GuardStats, config: EdgeConfig): GuardStats {
  if (config.stats?.showKeys === true) return stats;
  const scopes = Object.create(null) as Record<string, ScopeStats>;
  for (const [scope, row] of Object.entries(stats.scopes)) {
    const start = keyValueStart(scope, stats.scopes);
    const name = start < 0 ? scope : `${scope.slice(0, start)}${keyDigest(config.group, scope.slice(0, start - 1), scope.slice(start))}`;
    // Two values with one digest (about 1 in 2^48 per pair): the first row stays rather than one
    // silently overwriting the other under a name that looks unique.
    if (!Object.hasOwn(scopes, name)) scopes[name] = row;
  }
  return { ...stats, scopes };
}

/** `guard.stats()` made displayable: what every stats output reads. */
export async function readPublicStats(guard: Pick<Guard, "stats">, config: EdgeConfig): Promise<GuardStats> {
  return publicStats(await guard.stats(), config);
}
