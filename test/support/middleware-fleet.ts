// Parent side of ./middleware-app.ts: forks app processes (`node --import tsx`), each killed when
// the test process exits; an app exits by itself when its parent's IPC channel closes.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { AppConfig } from "./middleware-app.js";

const APP = fileURLToPath(new URL("./middleware-app.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const READY_TIMEOUT_MS = 30_000;

const live = new Set<ChildProcess>();
let hooked = false;

export interface AppProcess {
  readonly pid: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** The tail of its stdout and stderr, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export async function startApp(config: AppConfig): Promise<AppProcess> {
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const child of live) child.kill("SIGKILL");
    });
  }
  const child = fork(APP, [JSON.stringify(config)], { cwd: ROOT, execArgv: ["--import", "tsx"], silent: true });
  live.add(child);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-16_384);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => (live.delete(child), resolve())));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${config.framework} app did not start within ${READY_TIMEOUT_MS} ms\n${output}`));
    }, READY_TIMEOUT_MS);
    child.once("message", (message: { port: number }) => {
      clearTimeout(timer);
      resolve(message.port);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${config.framework} app exited during start-up\n${output}`));
    });
  });
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
