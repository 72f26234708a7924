// Lint rules that carry architecture: the core stays runtime-neutral (Web-standard APIs only),
// so Workers and Node can run the very same code. Runtime imports belong in their adapters.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** What runtime-neutral code (Web-standard APIs only) may not import. */
const RUNTIME_IMPORTS = [
  { group: ["node:*"], message: "src/core knows only Web-standard APIs; put Node code in src/node." },
  { group: ["ioredis", "ioredis/*"], message: "ioredis belongs to src/stores/redis only." },
  { group: ["cloudflare:*"], message: "cloudflare:* belongs to src/cloudflare only." },
];

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
  {
    files: ["src/core/**/*.ts", "src/index.ts", "src/stores/memory/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: RUNTIME_IMPORTS,
      }],
    },
  },
  {
    // The Durable Object store client runs in Workers and in Node alike (its RPC stub type is
    // structural): src/cloudflare imports it and its protocols, never the other way round.
    files: ["src/stores/durable-object/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [
          ...RUNTIME_IMPORTS,
          { regex: "(^|/)cloudflare(/|$)", message: "src/stores/durable-object imports nothing from src/cloudflare: src/cloudflare imports the client and its protocols from here." },
          { regex: "(^|/)node(/|$)", message: "src/stores/durable-object imports nothing from src/node." },
        ],
      }],
    },
  },
  {
    files: ["bin/**/*.js", "scripts/**/*.{js,mjs,ts}", "test/**/*.ts", "examples/**/*.mjs"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
);
