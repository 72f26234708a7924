// The cost of slotgate's framework middleware: for hono (@hono/node-server), express and fastify,
// the same one-route app with the middleware (memory store, a limit never reached) and without it,
// each loaded by wrk for one run. Prints requests/s, the ratio, and the added time per request at
// saturation (1/rps with − 1/rps without: one core serves the app, so this is CPU time).
// Usage: npm run bench:middleware [-- --seconds 5 --connections 50]   (needs wrk)
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runWrk, type WrkResult } from "./proxy/wrk.js";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" }, connections: { type: "string", default: "50" } } });
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const APP = fileURLToPath(new URL("./middleware/app.ts", import.meta.url));
const FRAMEWORKS = ["hono", "express", "fastify"] as const;

async function measure(framework: string, mode: "bare" | "guarded"): Promise<WrkResult> {
  const child = fork(APP, [framework, mode], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${framework} ${mode}: no port within 30 s`)), 30_000);
      child.once("message", (m: { port: number }) => (clearTimeout(timer), resolve(m.port)));
      child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${framework} ${mode} exited (${code})`))));
    });
    const url = `http://127.0.0.1:${port}/api/x`;
    await runWrk({ url, threads: 1, connections, durationS: 1 }); // warm-up: JIT, connections
    return await runWrk({ url, threads: 1, connections, durationS: seconds });
  } finally {
    child.kill("SIGTERM");
  }
}

console.log(`wrk -t1 -c${connections} -d${seconds}s per run, one run each, app in its own process (Node ${process.version})`);
console.log("framework  without (req/s)  with (req/s)  ratio   added per request   p99 without / with");
for (const framework of FRAMEWORKS) {
  const bare = await measure(framework, "bare");
  const guarded = await measure(framework, "guarded");
  const addedUs = (1 / guarded.rps - 1 / bare.rps) * 1e6;
  console.log(
    `${framework.padEnd(9)}  ${bare.rps.toFixed(0).padStart(15)}  ${guarded.rps.toFixed(0).padStart(12)}  ${(guarded.rps / bare.rps).toFixed(2).padStart(5)}×  ` +
      `${addedUs.toFixed(1).padStart(12)} µs      ${bare.p99Ms.toFixed(2)} / ${guarded.p99Ms.toFixed(2)} ms` +
      (bare.non2xx + guarded.non2xx > 0 ? `  (non-2xx: ${bare.non2xx} / ${guarded.non2xx})` : ""),
  );
}
