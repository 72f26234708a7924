/**
 * What a `SlotGroup` keeps in its SQLite storage: the group's spec, the fence counter, and every
 * live lease. Tickets are not stored, because a queued acquire is a pending RPC call and cannot
 * outlive the object.
 *
 * ```sql
 * slotgate_group  (id = 1, fence, spec, version) -- one row: the highest fence issued, the spec as
 *                                                -- canonical JSON, its version (NULL: unversioned)
 * slotgate_leases (id, fence, chain, backend, server, expires_at, ttl_ms, granted_at, secret_hash)
 * slotgate_servers (backend, server, up)     -- servers marked up/down at run time (setServerState)
 * ```
 *
 * `chain` is a JSON array of scope names. Key values are user input and may hold lone
 * surrogates, NULs, or newlines. `JSON.stringify` escapes all of these to ASCII, so a name
 * round-trips exactly, where a bare TEXT column would turn a lone surrogate into U+FFFD.
 * `secret_hash` is the SHA-256 of the secret the slot API handed out with the lease (NULL for a
 * lease granted over RPC inside the account). It is stored, not kept in memory only, so that a
 * restarted object still knows who may release or renew its leases. Objects created before the
 * column existed get it added (as NULL) when they load, and so do those created before `version`.
 * All statements take bound parameters. No SQL is built from input.
 */
import type { GroupSpec } from "../core/spec.js";
import type { GroupStateSnapshot } from "../core/state/group-state.js";
import type { LeaseGrant } from "../core/store.js";

/** The part of `ctx.storage.sql` this module uses. */
export interface SqlLike {
  exec(query: string, ...bindings: (string | number | null)[]): { toArray(): Record<string, unknown>[] };
}

type LeaseRow = GroupStateSnapshot["leases"][number];

export interface ServerStateRow {
  backend: string;
  server: string;
  up: boolean;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS slotgate_group (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     fence INTEGER NOT NULL DEFAULT 0,
     spec TEXT
   )`,
  `INSERT OR IGNORE INTO slotgate_group (id, fence, spec) VALUES (1, 0, NULL)`,
  `CREATE TABLE IF NOT EXISTS slotgate_leases (
     id TEXT PRIMARY KEY,
     fence INTEGER NOT NULL,
     chain TEXT NOT NULL,
     backend TEXT,
     server TEXT,
     expires_at INTEGER NOT NULL,
     ttl_ms INTEGER NOT NULL,
     granted_at INTEGER NOT NULL,
     secret_hash TEXT
   )`,
  `CREATE TABLE IF NOT EXISTS slotgate_servers (
     backend TEXT NOT NULL,
     server TEXT NOT NULL,
     up INTEGER NOT NULL,
     PRIMARY KEY (backend, server)
   )`,
];

export class GroupTables {
  readonly #sql: SqlLike;

  constructor(sql: SqlLike) {
    this.#sql = sql;
    for (const statement of SCHEMA) sql.exec(statement);
    // Tables created by an earlier version lack the column; their leases carry no secret.
    const columns = sql
      .exec("PRAGMA table_info(slotgate_leases)")
      .toArray()
      .map((c) => c.name);
    if (!columns.includes("secret_hash")) sql.exec("ALTER TABLE slotgate_leases ADD COLUMN secret_hash TEXT");
    const groupColumns = sql
      .exec("PRAGMA table_info(slotgate_group)")
      .toArray()
      .map((c) => c.name);
    if (!groupColumns.includes("version")) sql.exec("ALTER TABLE slotgate_group ADD COLUMN version INTEGER");
  }

  load(): { spec: GroupSpec | undefined; specJson: string | undefined; version: number | null; snapshot: GroupStateSnapshot; servers: ServerStateRow[] } {
    const group = this.#sql.exec("SELECT fence, spec, version FROM slotgate_group WHERE id = 1").toArray()[0] ?? {};
    const specJson = typeof group.spec === "string" ? group.spec : undefined;
    const leases: LeaseRow[] = this.#sql
      .exec("SELECT id, fence, chain, backend, server, expires_at, ttl_ms, granted_at FROM slotgate_leases")
      .toArray()
      .map((r) => {
        const row: LeaseRow = {
          id: String(r.id),
          fence: Number(r.fence),
          chain: JSON.parse(String(r.chain)) as string[],
          expiresAt: Number(r.expires_at),
          ttlMs: Number(r.ttl_ms),
          grantedAt: Number(r.granted_at),
        };
        if (typeof r.backend === "string") row.backend = r.backend;
        if (typeof r.server === "string") row.server = r.server;
        return row;
      });
    // The fence row is written with every grant. The max over the leases only guards against a
    // table edited by hand.
    const fence = Math.max(Number(group.fence ?? 0), ...leases.map((l) => l.fence));
    const servers = this.#sql
      .exec("SELECT backend, server, up FROM slotgate_servers")
      .toArray()
      .map((r) => ({ backend: String(r.backend), server: String(r.server), up: r.up === 1 }));
    return {
      spec: specJson === undefined ? undefined : (JSON.parse(specJson) as GroupSpec),
      specJson,
      version: typeof group.version === "number" && group.version >= 1 ? group.version : null,
      snapshot: { fence, seq: 0, leases },
      servers,
    };
  }

  saveSpec(specJson: string, version: number | null): void {
    this.#sql.exec("UPDATE slotgate_group SET spec = ?, version = ? WHERE id = 1", specJson, version);
  }

  /** Records a grant: the lease row and the group's fence, in the same implicit transaction. */
  insertLease(lease: LeaseGrant, chain: readonly string[], grantedAt: number, secretHash: string | undefined): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO slotgate_leases (id, fence, chain, backend, server, expires_at, ttl_ms, granted_at, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      lease.id,
      lease.fence,
      JSON.stringify(chain),
      lease.backend ?? null,
      lease.server ?? null,
      lease.expiresAt,
      lease.ttlMs,
      grantedAt,
      secretHash ?? null,
    );
    this.#sql.exec("UPDATE slotgate_group SET fence = max(fence, ?) WHERE id = 1", lease.fence);
  }

  /** The stored secret hash of a lease: null when it has none, undefined when there is no such lease. */
  leaseSecretHash(leaseId: string): string | null | undefined {
    const row = this.#sql.exec("SELECT secret_hash FROM slotgate_leases WHERE id = ?", leaseId).toArray()[0];
    if (row === undefined) return undefined;
    return typeof row.secret_hash === "string" ? row.secret_hash : null;
  }

  renewLease(leaseId: string, expiresAt: number, ttlMs: number): void {
    this.#sql.exec("UPDATE slotgate_leases SET expires_at = ?, ttl_ms = ? WHERE id = ?", expiresAt, ttlMs, leaseId);
  }

  deleteLease(leaseId: string): void {
    this.#sql.exec("DELETE FROM slotgate_leases WHERE id = ?", leaseId);
  }

  saveServerState(backend: string, server: string, up: boolean): void {
    this.#sql.exec("INSERT OR REPLACE INTO slotgate_servers (backend, server, up) VALUES (?, ?, ?)", backend, server, up ? 1 : 0);
  }

  deleteServerState(backend: string, server: string): void {
    this.#sql.exec("DELETE FROM slotgate_servers WHERE backend = ? AND server = ?", backend, server);
  }
}
