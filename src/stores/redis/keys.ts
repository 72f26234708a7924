/**
 * Key names. Every key of a group shares one hash tag, `{<groupTag>}`, so that all of them live in
 * one Redis Cluster slot and one script can change them atomically. The tag is the group name
 * escaped so that no name can produce a brace or collide with another group's tag. User-supplied
 * strings (scope values, lease ids) never appear in key names: only in hash fields, zset members
 * and ARGV.
 */
import { wtf8Encode } from "./wtf8.js";

/** Every key a script touches, in KEYS order (the scripts' contract), with what it holds. */
export const KEY_LAYOUT = [
  [
    "cfg",
    "hash    the spec, pushed by configure: `s<scope>` -> 'kind|max|maxqueue', `b<backend>` -> its spec (JSON), `\\0spec` -> the GroupSpec (canonical JSON), `\\0ver` -> its version (absent: unversioned), `\\0nd`/`\\0ng` -> deadline hints (set while configured), `\\0q` -> 'discipline|targetMs|intervalMs' (absent: fifo), `f<flow>` -> a flow's weight (rule F)",
  ],
  [
    "sc",
    "hash    counters: `<scope>\\0<stat>` -> in_use, queued, peaks, counters, keys; group-wide `\\0fence`, `\\0seq`, `\\0base` (queue score origin), wait histogram `\\0w<bucket>` and `\\0wsum`, state loss (rule 12) `\\0epoch`, `\\0blind`, `\\0learn`/`\\0lstart` (learning window), `\\0reregistered`, `\\0lost`; fair queuing `\\0vt` (virtual time V), the standing detector `\\0above` (aboveSince, -1: unset); per scope the hand-off rate `<scope>\\0ho` (last hand-off) and `<scope>\\0hm` (its EWMA, ms, a float)",
  ],
  ["srv", "hash    `<backend>\\0last` -> leastconn cursor; `<backend>/<server>\\0up|sd|cw` -> up, spec down, rr weight"],
  ["leases", "zset    lease id -> expiry (store ms)"],
  ["lease", "hash    lease id -> JSON {c: chain, b, s, f: fence, g: grantedAt, t: ttl, k: ticket, w: waited} (k, w: granted from a queue, until renewed)"],
  ["queue", "zset    ticket id -> its arrival (store ms); equal scores sort by id = padded seq: the oldest ticket first (CoDel drops)"],
  [
    "tickets",
    "hash    ticket id -> JSON {s: scopes, b, p, e: enqueuedAt, d: deadline, t: ttl, l: lease id, ch, sh, w: wait key, o: order (see waits), f: flow}",
  ],
  ["tdl", "zset    ticket id -> queue deadline (store ms)"],
  ["grants", "hash    ticket id -> outcome JSON kept for its waiter (a time-out, or the grant of a lease that expired unrenewed), until claimed"],
  ["gexp", "zset    ticket id -> when its `grants` entry is dropped unclaimed"],
  [
    "waits",
    "zset    the queue by what each ticket waits on: members `<wait key><order><ticket id>` (order: class, fair tag, arrival+offset-base, 16 bytes of base 127, see includes/dispatch.lua; id: 16 digits), all at score 0 (byte order); wait key `s<length>:<scope>` (a scope without room), `u<backend>/<server>/` (a pinned server, down), `p<backend>/` (the backend's servers, none eligible), `l` (a learning window); the ticket's `tickets` entry names it (w, o)",
  ],
  ["flows", "hash    rule F: flow name -> 'F n g' (finish tag, waiting tickets, granted since it began waiting), while the flow has tickets queued"],
] as const;

export const KEY_SUFFIXES: readonly string[] = KEY_LAYOUT.map(([suffix]) => suffix);

export const NUMBER_OF_KEYS = KEY_SUFFIXES.length;

export const DEFAULT_PREFIX = "slotgate:";

/**
 * The group name as it appears inside the hash tag: characters of guard-validated names
 * ([A-Za-z0-9_.~:@-]) stay as they are, every other byte of its WTF-8 form becomes `%XX` (`%`
 * included), so the mapping is one-to-one and the result never contains `{` or `}`.
 */
export function groupTag(group: string): string {
  let out = "";
  for (const byte of wtf8Encode(group)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~:@-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `${prefix}{${tag}}:` — the common start of every key and channel of a group. */
export function groupBase(prefix: string, group: string): string {
  return `${prefix}{${groupTag(group)}}:`;
}

export function groupKeys(prefix: string, group: string): string[] {
  const base = groupBase(prefix, group);
  return KEY_SUFFIXES.map((suffix) => base + suffix);
}

/** The channel on which a node hears about its own tickets of one group. */
export function wakeChannel(prefix: string, group: string, nodeId: string): string {
  return `${groupBase(prefix, group)}wake:${nodeId}`;
}
