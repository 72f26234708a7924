// Test origins for the edge node tests: real servers on 127.0.0.1, port 0, that record what they
// see (their own current and highest concurrency, every request's head, their TCP connections).
//
// HTTP routes (any method):
//   /hang                  never answers (until the client goes away)
//   /stream?chunks=N&interval=MS&size=B
//                          answers 200 at once, then N chunks of B bytes every MS ms
//   /echo                  streams the request body back
//   /upload                reads the whole request body, then answers 200 with its length
//   /hop                   answers with hop-by-hop headers that a proxy must drop
//   anything else          waits `delayMs` (or ?delay=MS), then answers 200 with a JSON body
//                          describing the request ({ path, method, headers, concurrency })

import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Local port of the client socket: the same value for requests over one kept-alive connection. */
  remotePort: number;
  /** Concurrency right after this request arrived. */
  concurrency: number;
}

export interface Origin {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:PORT`, as a config address. */
  readonly address: string;
  readonly current: number;
  readonly max: number;
  /** Requests answered completely. */
  readonly served: number;
  /** TCP connections accepted since start. */
  readonly connections: number;
  readonly requests: readonly RecordedRequest[];
  /** Resolves when `current` has dropped to `n` (or rejects after `timeoutMs`). */
  waitForCurrent(n: number, timeoutMs?: number): Promise<void>;
  resetCounters(): void;
  close(): Promise<void>;
}

export interface OriginOptions {
  /** Delay of the default route in ms, or a function of the request. @default 0 */
  delayMs?: number | ((req: http.IncomingMessage) => number);
  /** Node's keepAliveTimeout of the origin. @default 5000 */
  keepAliveTimeoutMs?: number;
}

export async function startOrigin(options: OriginOptions = {}): Promise<Origin> {
  let current = 0;
  let max = 0;
  let served = 0;
  let connections = 0;
  const requests: RecordedRequest[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const sockets = new Set<net.Socket>();

  const settle = () => {
    for (const w of [...waiters]) {
      if (current <= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };

  const server = http.createServer((req, res) => {
    current++;
    max = Math.max(max, current);
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, remotePort: req.socket.remotePort ?? 0, concurrency: current });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      current--;
      settle();
    };
    res.once("finish", () => {
      served++;
      end();
    });
    res.once("close", end);
    const url = new URL(req.url ?? "/", "http://origin");
    const param = (name: string, fallback: number) => {
      const v = url.searchParams.get(name);
      return v === null ? fallback : Number(v);
    };

    switch (url.pathname) {
      case "/hang":
        req.resume();
        return;
      case "/stream": {
        const chunks = param("chunks", 10);
        const interval = param("interval", 50);
        const size = param("size", 1024);
        res.writeHead(200, { "content-type": "application/octet-stream" });
        let sent = 0;
        const timer = setInterval(() => {
          if (sent >= chunks) {
            clearInterval(timer);
            res.end();
            return;
          }
          sent++;
          res.write(Buffer.alloc(size, 0x61));
        }, interval);
        res.once("close", () => clearInterval(timer));
        req.resume();
        return;
      }
      case "/echo":
        res.writeHead(200, { "content-type": "application/octet-stream" });
        req.pipe(res);
        return;
      case "/upload": {
        let length = 0;
        req.on("data", (c: Buffer) => (length += c.length));
        req.once("end", () => res.end(JSON.stringify({ length })));
        return;
      }
      case "/hop":
        req.resume();
        res.writeHead(200, {
          connection: "keep-alive, x-hop-secret",
          "keep-alive": "timeout=5",
          "x-hop-secret": "must-not-pass",
          "proxy-authenticate": "Basic",
          trailer: "x-trailer",
          "x-end-to-end": "kept",
          "content-type": "text/plain",
        });
        res.end("hop\n");
        return;
      default: {
        req.resume();
        const delay = url.searchParams.has("delay") ? param("delay", 0) : typeof options.delayMs === "function" ? options.delayMs(req) : (options.delayMs ?? 0);
        const timer = setTimeout(() => {
          const body = JSON.stringify({ path: req.url, method: req.method, headers: req.headers, concurrency: current });
          res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-origin-concurrency": String(current) });
          res.end(body);
        }, delay);
        res.once("close", () => clearTimeout(timer));
      }
    }
  });
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
  server.on("connection", (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    get current() {
      return current;
    },
    get max() {
      return max;
    },
    get served() {
      return served;
    },
    get connections() {
      return connections;
    },
    requests,
    waitForCurrent(n, timeoutMs = 5000) {
      if (current <= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`origin concurrency still ${current} > ${n} after ${timeoutMs}ms`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    resetCounters() {
      max = current;
      served = 0;
      connections = 0;
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Header values as one string each, repeated headers joined with `, `. */
export function flatHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  return out;
}

export interface TcpEchoOrigin {
  readonly port: number;
  readonly address: string;
  readonly current: number;
  readonly max: number;
  readonly accepted: number;
  close(): Promise<void>;
}

/** A TCP echo server that records its connection concurrency. */
export async function startTcpEcho(): Promise<TcpEchoOrigin> {
  let current = 0;
  let max = 0;
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    current++;
    accepted++;
    max = Math.max(max, current);
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => {
      current--;
      sockets.delete(socket);
    });
    socket.pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    get current() {
      return current;
    },
    get max() {
      return max;
    },
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Blackhole {
  /** `127.0.0.1:<port>`: a TCP connect to it hangs (SYNs go unanswered) until the caller gives up. */
  address: string;
  close(): Promise<void>;
}

/**
 * A loopback port whose connects time out: a child process listens with a backlog of 1 and is
 * then stopped (SIGSTOP), so it never accepts; once its accept queue is filled, the kernel drops
 * further SYNs. Everything stays on 127.0.0.1 — no traffic leaves the machine.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const { spawn } = await import("node:child_process");
  const child = spawn(
    process.execPath,
    ["-e", "const s=require('net').createServer();s.listen({host:'127.0.0.1',port:0,backlog:1},()=>console.log(s.address().port))"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim())));
    child.once("error", reject);
  });
  child.kill("SIGSTOP");
  // Fill the accept queue (backlog 1 admits up to 2 pending connections on Linux).
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    fillers.push(socket);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      for (const s of fillers) s.destroy();
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    },
  };
}
