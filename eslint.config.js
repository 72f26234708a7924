// Lint rules that carry architecture. The zones run core → stores → edge → runtimes: each folder
// imports only from the ones before it (docs/architecture.md), and everything but the runtime
// adapters (src/node, src/cloudflare, src/worker, workers) and the Redis store is runtime-neutral
// (Web-standard APIs only), so that Workers and Node run the very same code. The framework
// middleware (src/middleware) build on core and edge, runtime-neutral too: the hono entry runs in
// Workers, and the guard (with whatever store) is the caller's.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** What runtime-neutral code may not import. */
const RUNTIME_IMPORTS = [
  { group: ["node:*"], message: "runtime-neutral code knows only Web-standard APIs; put Node code in src/node." },
  { group: ["ioredis", "ioredis/*"], message: "ioredis belongs to src/stores/redis only." },
  { group: ["cloudflare:*"], message: "cloudflare:* belongs to src/cloudflare only." },
];

/** Our own folders, as relative import paths name them. */
const FOLDER = {
  stores: "(^|/)stores(/|$)",
  edge: "(^|/)edge(/|$)",
  node: "(^|/)node(/|$)",
  cloudflare: "(^|/)cloudflare(/|$)",
  workers: "(^|/)workers(/|$)",
  worker: "(^|/)worker(/|$)",
  middleware: "(^|/)middleware(/|$)",
};

/** A zone: `files` may not import from the `forbidden` folders (nor runtime modules, when `neutral`). */
function zone(files, forbidden, message, neutral) {
  const patterns = forbidden.map((name) => ({ regex: FOLDER[name], message }));
  if (neutral) patterns.push(...RUNTIME_IMPORTS);
  return { files, rules: { "no-restricted-imports": ["error", { patterns }] } };
}

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".wrangler/**", "coverage/**", ".tmp/**", "workers/worker-configuration.d.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  zone(
    ["src/core/**/*.ts"],
    ["stores", "edge", "node", "cloudflare", "workers", "worker", "middleware"],
    "src/core imports nothing else of ours: stores, the edge logic and the runtimes build on it.",
    true,
  ),
  zone(
    ["src/index.ts", "src/stores/memory/**/*.ts"],
    ["edge", "node", "cloudflare", "workers", "worker", "middleware"],
    "a store builds on src/core only.",
    true,
  ),
  // The Durable Object store client runs in Workers and in Node alike (its RPC stub type is
  // structural): src/cloudflare imports it and its protocols, never the other way round.
  zone(
    ["src/stores/durable-object/**/*.ts"],
    ["edge", "node", "cloudflare", "workers", "worker", "middleware"],
    "src/stores/durable-object builds on src/core only: src/cloudflare imports the client and its protocols from here.",
    true,
  ),
  zone(["src/stores/redis/**/*.ts"], ["edge", "node", "cloudflare", "workers", "worker", "middleware"], "a store builds on src/core only.", false),
  zone(
    ["src/edge/**/*.ts"],
    ["stores", "node", "cloudflare", "workers", "worker", "middleware"],
    "src/edge is the runtime-neutral edge logic: it builds on src/core; the runtimes build on it.",
    true,
  ),
  zone(
    ["src/node/**/*.ts"],
    ["cloudflare", "workers", "worker", "middleware"],
    "src/node is the Node adapter: shared code belongs in src/edge or src/core.",
    false,
  ),
  // The middleware take the caller's guard: they import no store, and no runtime adapter.
  zone(
    ["src/middleware/**/*.ts"],
    ["stores", "node", "cloudflare", "workers", "worker"],
    "src/middleware builds on src/core and src/edge only, runtime-neutral: the hono entry must bundle for Workers.",
    true,
  ),
  zone(
    ["src/cloudflare/**/*.ts", "src/worker/**/*.ts", "workers/**/*.ts"],
    ["node", "middleware"],
    "the Worker and the Durable Object never import the Node adapter: shared code belongs in src/edge or src/core.",
    false,
  ),
  {
    files: ["bin/**/*.js", "scripts/**/*.{js,mjs,ts}", "test/**/*.ts", "examples/**/*.{mjs,ts}"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
);
