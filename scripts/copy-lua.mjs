#!/usr/bin/env node
// Part of `npm run build`: tsc compiles TypeScript only, and the Redis store reads its Lua scripts
// next to its compiled module (src/stores/redis/scripts/index.ts), so they are copied to dist.
import { cpSync, rmSync } from "node:fs";
import { URL, fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const from = `${root}src/stores/redis/lua`;
const to = `${root}dist/stores/redis/lua`;
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
