/**
 * How the store's Lua runs on Redis: as the functions of one library (FCALL, Redis ≥ 7), or as
 * scripts (EVALSHA, ioredis `defineCommand`) where the server has no Redis Functions.
 *
 * Functions save the work a script repeats on every call (making the includes' local functions).
 * The library is loaded lazily: the first FCALL on a node that lacks it (never loaded there,
 * FUNCTION FLUSH, a restart without persistence, a failover to a node that never had it, a
 * cluster master that never saw it) fails with "Function not found" before anything runs. The
 * library is then loaded (on every master of a cluster) and the call sent once more, exactly once:
 * the path ioredis takes for EVALSHA on NOSCRIPT. A FUNCTION LOAD never uses REPLACE: the name
 * carries a digest of the code, so a library of that name is this very code, and "already exists"
 * means another node of ours loaded it first.
 *
 * Fallback: a server that does not know FCALL or FUNCTION (Redis < 7), or a user whose ACL denies
 * either, is told by its reply, again before anything ran. The call then goes out as EVALSHA, and
 * so does every later one on that connection (a cluster client: for the whole client). A new
 * connection (after a reconnect, perhaps to an upgraded server) tries functions again.
 */
import type { Cluster, Redis } from "ioredis";
import { LIBRARY, SCRIPTS, type ScriptDef, type ScriptName } from "./scripts/index.js";

type Client = Redis | Cluster;
type Arg = string | Buffer | number;
type ScriptCommand = (typeof SCRIPTS)[ScriptName]["command"];
/** What `defineCommand` adds to the client: one method per script, and its twin with Buffer replies. */
export type ScriptCommands = Record<ScriptCommand | `${ScriptCommand}Buffer`, (...keysThenArgv: Arg[]) => Promise<unknown>>;

/** The library function of each script, by the script's command name. */
const FUNCTION_OF = new Map<string, string>(Object.entries(SCRIPTS).map(([name, def]) => [def.command, LIBRARY.functions[name]!]));

/** FCALL replies that say the call did not run: the function is not on that node. */
const MISSING = /^ERR Function not found/;
/** Replies to FCALL or FUNCTION LOAD that say this server or user cannot use Redis Functions; nothing ran. */
const UNSUPPORTED = /^(ERR unknown command ['`](fcall|function)['`]|NOPERM [^\n]*'(fcall|function\|load)')/i;
/** FUNCTION LOAD: a library of this name, hence this code, is already there. */
const ALREADY_LOADED = /^ERR Library '[^']*' already exists/;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class LuaCaller {
  readonly #client: Client;
  /** Set when functions are off for good (the store option) or for the connection in `#fallbackOn`. */
  readonly #scriptsOnly: boolean;
  /** The connection (standalone: its socket; cluster: the client) on which functions were found unusable. */
  #fallbackOn: unknown;
  #loading: Promise<boolean> | undefined;

  constructor(client: Client, functions: boolean) {
    this.#client = client;
    this.#scriptsOnly = !functions;
  }

  /** Whether calls go out as FCALL now (false: EVALSHA). */
  #usesFunctions(): boolean {
    return !this.#scriptsOnly && (this.#fallbackOn === undefined || this.#fallbackOn !== this.#connection());
  }

  /** Runs `def` once: its library function, or its script where functions are unusable. May throw synchronously. */
  send(def: ScriptDef, keys: readonly string[], argv: readonly Arg[], buffer: boolean): Promise<unknown> {
    if (!this.#usesFunctions()) return this.#script(def, keys, argv, buffer);
    const fn = FUNCTION_OF.get(def.command)!;
    return this.#fcall(fn, keys, argv, buffer).catch((error: unknown) => {
      const message = messageOf(error);
      if (UNSUPPORTED.test(message)) {
        this.#fallBack();
        return this.#script(def, keys, argv, buffer);
      }
      if (!MISSING.test(message)) throw error;
      // It did not run: load the library on this node and send it again, once.
      return this.#load().then((loaded) => (loaded ? this.#fcall(fn, keys, argv, buffer) : this.#script(def, keys, argv, buffer)));
    });
  }

  #fcall(fn: string, keys: readonly string[], argv: readonly Arg[], buffer: boolean): Promise<unknown> {
    const c = this.#client;
    return buffer ? c.callBuffer("fcall", fn, keys.length, ...keys, ...argv) : c.call("fcall", fn, keys.length, ...keys, ...argv);
  }

  #script(def: ScriptDef, keys: readonly string[], argv: readonly Arg[], buffer: boolean): Promise<unknown> {
    const commands = this.#client as Client & ScriptCommands;
    const command = def.command as ScriptCommand;
    return buffer ? commands[`${command}Buffer`](...keys, ...argv) : commands[command](...keys, ...argv);
  }

  #connection(): unknown {
    const c = this.#client as { isCluster?: boolean; stream?: unknown };
    return c.isCluster === true ? c : c.stream;
  }

  #fallBack(): void {
    this.#fallbackOn = this.#connection();
  }

  /**
   * Loads the library where it is missing: the server, or every master of a cluster (the one
   * that answered "not found" among them). One load at a time; calls that meet "not found"
   * meanwhile wait for it. False when the server or user cannot load functions (fallen back).
   */
  #load(): Promise<boolean> {
    this.#loading ??= this.#loadEverywhere().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #loadEverywhere(): Promise<boolean> {
    const c = this.#client;
    const nodes: Redis[] = (c as { isCluster?: boolean }).isCluster === true ? (c as Cluster).nodes("master") : [c as Redis];
    const results = await Promise.allSettled(nodes.map((node) => node.call("function", "load", LIBRARY.code)));
    let loaded = false;
    let failure: unknown;
    for (const r of results) {
      const message = r.status === "fulfilled" ? "" : messageOf(r.reason);
      if (r.status === "fulfilled" || ALREADY_LOADED.test(message)) loaded = true;
      else if (UNSUPPORTED.test(message)) {
        this.#fallBack();
        return false;
      } else failure ??= r.reason;
    }
    // A cluster master that could not be reached keeps the call's own retry to tell.
    if (!loaded) throw failure ?? new Error("redis: no master to load the function library on");
    return true;
  }
}
