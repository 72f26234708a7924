import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/*.case.ts", "node_modules/**", "dist/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Unhandled rejections fail the run (vitest's default); keep it that way on purpose.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
