/** Every script of the Redis store, registered on a client with ioredis `defineCommand`. */
import { acquire } from "./acquire.js";
import { cancel } from "./cancel.js";
import { claim } from "./claim.js";
import { configure } from "./configure.js";
import type { ScriptDef } from "./define.js";
import { release } from "./release.js";
import { renew } from "./renew.js";
import { serverState } from "./server-state.js";
import { stats } from "./stats.js";
import { sweep } from "./sweep.js";

export type { ScriptDef } from "./define.js";
export { GRANT_KEEP_MS, NOT_CONFIGURED } from "./lib.js";

export const SCRIPTS = { acquire, release, renew, cancel, claim, sweep, configure, serverState, stats } as const satisfies Record<string, ScriptDef>;
export type ScriptName = keyof typeof SCRIPTS;
