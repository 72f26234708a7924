#!/usr/bin/env node
// The `slotgate` command. The CLI is TypeScript compiled to dist/ by `npm run build`.
let cli;
try {
  cli = await import("../dist/node/cli.js");
} catch (error) {
  if (error && error.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist")) {
    process.stderr.write("slotgate: dist/node/cli.js is missing; run `npm run build` first\n");
    process.exit(3);
  }
  throw error;
}
const code = await cli.runCli(process.argv.slice(2));
process.exit(code);
