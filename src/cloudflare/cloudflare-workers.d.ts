/**
 * The few Workers runtime types `src/cloudflare` and `src/worker` use, declared for the Node-side compile only
 * (root `tsconfig.json`, `tsconfig.build.json`). They are a strict subset of the real ones, with
 * the same names and shapes. `workers/tsconfig.json` excludes this file and checks the same
 * sources against the runtime types that `wrangler types` generates. This file is not emitted to
 * `dist/`: the emitted `.d.ts` files name these types, and a Worker project has the real ones.
 */

declare namespace Cloudflare {
  // A Worker's bindings. wrangler types fills it in. Augmentable, as in the runtime types.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Env {}
}

declare module "cloudflare:workers" {
  export abstract class DurableObject<Env = Cloudflare.Env> {
    protected ctx: DurableObjectState;
    protected env: Env;
    constructor(ctx: DurableObjectState, env: Env);
    alarm?(): void | Promise<void>;
  }
}

interface DurableObjectState {
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  abort(reason?: string): void;
}

interface DurableObjectStorage {
  readonly sql: SqlStorage;
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number | Date): Promise<void>;
  deleteAlarm(): Promise<void>;
}

type SqlStorageValue = ArrayBuffer | string | number | null;

interface SqlStorage {
  exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): { toArray(): T[] };
}

// The Worker's pass-through streams (src/worker/proxy.ts): native, no JavaScript per chunk.
declare class IdentityTransformStream extends TransformStream<Uint8Array, Uint8Array> {}
declare class FixedLengthStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(expectedLength: number | bigint);
}
