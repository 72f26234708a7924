// A request written byte for byte on a plain TCP socket, so that a test controls every header
// (a forged Host, none at all, HTTP/1.0) the way an attacker's client would. Bounded in time.

import net from "node:net";

export interface RawReply {
  status: number;
  head: string;
  body: string;
}

/** Sends `request` (a complete request head, plus body) to 127.0.0.1:port and reads until the server closes. */
export function rawRequest(port: number, request: string, timeoutMs = 5_000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no complete answer within ${timeoutMs}ms`)), timeoutMs);
    socket.once("connect", () => socket.end(request));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      const head = split < 0 ? text : text.slice(0, split);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) {
        reject(new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      resolve({ status: Number(m[1]), head, body: split < 0 ? "" : text.slice(split + 4) });
    });
  });
}

/** `GET path` with the given Host header (`null`: none), `Connection: close`. */
export function getWithHost(port: number, path: string, host: string | null, extra: Record<string, string> = {}, version = "1.1"): Promise<RawReply> {
  const lines = [`GET ${path} HTTP/${version}`];
  if (host !== null) lines.push(`Host: ${host}`);
  for (const [name, value] of Object.entries(extra)) lines.push(`${name}: ${value}`);
  lines.push("Connection: close", "", "");
  return rawRequest(port, lines.join("\r\n"));
}
