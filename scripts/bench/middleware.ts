// The cost of slotgate's framework middleware: for hono (@hono/node-server), express and fastify,
// the same one-route app with the middleware (memory store, a limit never reached) and without it,
// each loaded by wrk for one run, and beside them the same app with an async middleware that does
// nothing (what any async middleware costs there). Prints requests/s and their ratio, and the app process's CPU time
// per request with and without the middleware: the difference is the middleware's cost per
// request, a figure that holds on a busy machine (requests/s do not: compare them only when the
// machine is otherwise idle).
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

interface Run {
  wrk: WrkResult;
  /** The app's CPU time (user + system) per request during the run, in µs. */
  cpuUs: number;
}

async function measure(framework: string, mode: "bare" | "noop" | "guarded"): Promise<Run> {
  const child = fork(APP, [framework, mode], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${framework} ${mode}: no port within 30 s`)), 30_000);
      child.once("message", (m: { port: number }) => (clearTimeout(timer), resolve(m.port)));
      child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${framework} ${mode} exited (${code})`))));
    });
    const url = `http://127.0.0.1:${port}/api/x`;
    await runWrk({ url, threads: 1, connections, durationS: 1 }); // warm-up: JIT, connections
    const cpu = () =>
      new Promise<NodeJS.CpuUsage>((resolve) => {
        child.once("message", (m: { cpu: NodeJS.CpuUsage }) => resolve(m.cpu));
        child.send("cpu");
      });
    const before = await cpu();
    const wrk = await runWrk({ url, threads: 1, connections, durationS: seconds });
    const after = await cpu();
    return { wrk, cpuUs: (after.user - before.user + after.system - before.system) / wrk.requests };
  } finally {
    child.kill("SIGTERM");
  }
}

console.log(`wrk -t1 -c${connections} -d${seconds}s per run, one run each, app in its own process (Node ${process.version})`);
console.log("framework  req/s: without  async no-op  with   ratio   CPU/request: without  async no-op  with      added   ratio");
for (const framework of FRAMEWORKS) {
  const bare = await measure(framework, "bare");
  const noop = await measure(framework, "noop");
  const guarded = await measure(framework, "guarded");
  const errors = bare.wrk.non2xx + noop.wrk.non2xx + guarded.wrk.non2xx;
  const rps = (r: Run) => r.wrk.rps.toFixed(0);
  const us = (r: Run) => `${r.cpuUs.toFixed(1)} µs`;
  console.log(
    `${framework.padEnd(9)}  ${rps(bare).padStart(14)}  ${rps(noop).padStart(11)}  ${rps(guarded).padStart(5)}  ${(guarded.wrk.rps / bare.wrk.rps).toFixed(2).padStart(5)}×  ` +
      `${us(bare).padStart(21)}  ${us(noop).padStart(11)}  ${us(guarded).padStart(8)}  ${(guarded.cpuUs - bare.cpuUs).toFixed(1).padStart(6)} µs  ` +
      `${(guarded.cpuUs / bare.cpuUs).toFixed(2)}×` +
      (errors > 0 ? `  (non-2xx: ${bare.wrk.non2xx} / ${noop.wrk.non2xx} / ${guarded.wrk.non2xx})` : ""),
  );
}
