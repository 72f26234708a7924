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
 * Fairness flow names (a frontend's `fair_by` value, client input too) get the same digest under
 * a key of the group alone ({@link flowDigest}): flows belong to the group, not to one limit.
 *
 * {@link publicStats} is the one place where a snapshot becomes displayable: the stats listener
 * calls it for `/stats`, `/stats.json` and `/metrics`, and `slotgate stats` for its table and
 * `--json` (when it reads the store directly; through a stats listener it gets digests already).
 */
import { createHash, createHmac } from "node:crypto";
import type { Guard, GuardStats } from "../../core/guard.js";
import type { FlowStats, ScopeStats } from "../../core/stats.js";
import type { EdgeConfig } from "../../edge/config/schema.js";
import { flowShares } from "./model.js";

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
 * The context of flow digests in place of a keyed limit's scope: flows belong to the group, not to
 * a limit, and no scope name can hold parentheses, so no keyed limit shares this HMAC key.
 */
const FLOW_DIGEST_SCOPE = "(flow)";

/** The displayed form of a fairness flow's name (a `fair_by` value): `#` + 12 hex, as a key value's. */
export function flowDigest(group: string, flow: string): string {
  return keyDigest(group, FLOW_DIGEST_SCOPE, flow);
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

/**
 * The snapshot as it may be shown: key values and flow names digested unless `stats.show_keys` is
 * set, and each flow with its `share` of the grants (model.ts).
 */
export function publicStats(stats: GuardStats, config: EdgeConfig): GuardStats {
  const raw = config.stats?.showKeys === true;
  const flows = publicFlows(stats.flows, config.group, raw);
  if (raw) return flows === undefined ? stats : { ...stats, flows };
  const scopes = Object.create(null) as Record<string, ScopeStats>;
  for (const [scope, row] of Object.entries(stats.scopes)) {
    const start = keyValueStart(scope, stats.scopes);
    const name = start < 0 ? scope : `${scope.slice(0, start)}${keyDigest(config.group, scope.slice(0, start - 1), scope.slice(start))}`;
    // Two values with one digest (about 1 in 2^48 per pair): the first row stays rather than one
    // silently overwriting the other under a name that looks unique.
    if (!Object.hasOwn(scopes, name)) scopes[name] = row;
  }
  return flows === undefined ? { ...stats, scopes } : { ...stats, scopes, flows };
}

/** The flows of a snapshot by their displayed name, with their share of grants. */
function publicFlows(flows: GuardStats["flows"], group: string, raw: boolean): Record<string, FlowStats & { share: number }> | undefined {
  if (flows === undefined) return undefined;
  const out = Object.create(null) as Record<string, FlowStats & { share: number }>;
  for (const row of flowShares(flows)) {
    const name = raw ? row.flow : flowDigest(group, row.flow);
    // As for key rows: on a digest collision the first flow stays.
    if (!Object.hasOwn(out, name)) out[name] = { waiting: row.waiting, granted: row.granted, share: row.share };
  }
  return out;
}

/** `guard.stats()` made displayable: what every stats output reads. */
export async function readPublicStats(guard: Pick<Guard, "stats">, config: EdgeConfig): Promise<GuardStats> {
  return publicStats(await guard.stats(), config);
}
