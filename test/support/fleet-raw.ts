// Raw HTTP/1.1 over net.Socket for the request-path fuzz test (test/node/fuzz.test.ts): send bytes
// exactly as given (in timed pieces), read whatever comes back, and check that it is a well-formed
// sequence of HTTP responses — or nothing at all (a closed socket).

import net from "node:net";

export interface Piece {
  data: Buffer;
  /** Wait this long before writing the piece. */
  delayMs: number;
}

export interface Exchange {
  pieces: Piece[];
  /** Complete requests in `pieces`: the exchange ends early once that many responses are complete. */
  requests: number;
  /** `abort`: destroy the socket `abortAfterMs` after the last piece (an abrupt close). */
  after: "wait" | "abort";
  abortAfterMs?: number;
  /** Hard bound of the whole exchange (the client gives up: a slowloris that stops). */
  timeoutMs: number;
  localAddress?: string;
}

export interface ExchangeResult {
  data: Buffer;
  /** The server ended or reset the connection. */
  serverClosed: boolean;
  /** We ended it: `abort`, the timeout, or enough responses. */
  clientClosed: "abort" | "timeout" | "done" | null;
  /** A socket error seen (ECONNRESET, EPIPE…); not a failure by itself. */
  error: string | undefined;
  ms: number;
}

export function exchange(port: number, ex: Exchange): Promise<ExchangeResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, ...(ex.localAddress === undefined ? {} : { localAddress: ex.localAddress }) });
    const chunks: Buffer[] = [];
    let serverClosed = false;
    let clientClosed: ExchangeResult["clientClosed"] = null;
    let error: string | undefined;
    let settled = false;
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    const finish = () => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), serverClosed, clientClosed, error, ms: performance.now() - t0 });
    };
    const closeBy = (why: NonNullable<ExchangeResult["clientClosed"]>) => {
      if (settled || serverClosed) return;
      clientClosed ??= why;
      finish();
    };
    timers.push(setTimeout(() => closeBy("timeout"), ex.timeoutMs));
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (ex.after === "wait" && ex.requests > 0 && parseResponses(Buffer.concat(chunks), false).complete >= ex.requests) closeBy("done");
    });
    socket.on("error", (e: Error & { code?: string }) => {
      error ??= e.code ?? e.message;
    });
    socket.once("close", () => {
      if (clientClosed === null) serverClosed = true;
      finish();
    });
    socket.once("end", () => {
      // The server half-closed: we have everything it will send.
      if (clientClosed === null) serverClosed = true;
      finish();
    });
    socket.once("connect", () => {
      void (async () => {
        for (const piece of ex.pieces) {
          if (piece.delayMs > 0) await new Promise((r) => timers.push(setTimeout(r, piece.delayMs)));
          if (settled || socket.destroyed) return;
          socket.write(piece.data);
        }
        if (ex.after === "abort") timers.push(setTimeout(() => closeBy("abort"), ex.abortAfterMs ?? 0));
      })();
    });
  });
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  complete: boolean;
}

export interface ParseResult {
  responses: ParsedResponse[];
  /** Final responses (not 1xx) complete, head and body. */
  complete: number;
  /** A problem that no truncation explains: bytes that are not HTTP. */
  error: string | undefined;
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses a byte stream of HTTP/1.x responses (to requests that are not HEAD). `closed`: the stream
 * ended there, so a body without length is complete. An incomplete last response is not an error.
 */
export function parseResponses(buf: Buffer, closed: boolean): ParseResult {
  const responses: ParsedResponse[] = [];
  let at = 0;
  const result = (error?: string): ParseResult => ({ responses, complete: responses.filter((r) => r.complete && r.status >= 200).length, error });
  while (at < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", at);
    if (headEnd === -1) {
      const partial = buf.toString("latin1", at, Math.min(buf.length, at + 12));
      if (!"HTTP/1.1 ".startsWith(partial.slice(0, 9)) && !"HTTP/1.0 ".startsWith(partial.slice(0, 9)))
        return result(`not a status line: ${JSON.stringify(partial)}`);
      if (buf.length - at > 64 * 1024) return result("a response head longer than 64 KiB");
      responses.push({ status: 0, headers: {}, complete: false });
      break;
    }
    const lines = buf.toString("latin1", at, headEnd).split("\r\n");
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) return result(`not a status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon);
      if (colon <= 0 || !TOKEN.test(name)) return result(`not a header line: ${JSON.stringify(line.slice(0, 80))}`);
      const key = name.toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
    at = headEnd + 4;
    const response: ParsedResponse = { status, headers, complete: false };
    responses.push(response);
    if (status < 200 || status === 204 || status === 304) {
      response.complete = true;
      continue;
    }
    const te = headers["transfer-encoding"];
    const cl = headers["content-length"];
    if (te !== undefined) {
      if (te.toLowerCase() !== "chunked") return result(`transfer-encoding ${te}`);
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", at);
        if (lineEnd === -1) return result();
        const sizeText = buf.toString("latin1", at, lineEnd).split(";")[0]!.trim();
        if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) return result(`bad chunk size ${JSON.stringify(sizeText.slice(0, 20))}`);
        const size = parseInt(sizeText, 16);
        if (size === 0) {
          const end = buf.indexOf("\r\n\r\n", lineEnd);
          const bare = buf.toString("latin1", lineEnd, lineEnd + 4) === "\r\n\r\n";
          if (!bare && end === -1) return result();
          at = bare ? lineEnd + 4 : end + 4;
          response.complete = true;
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) return result();
        if (buf.toString("latin1", lineEnd + 2 + size, lineEnd + 4 + size) !== "\r\n") return result("a chunk not followed by CRLF");
        at = lineEnd + 4 + size;
      }
      continue;
    }
    if (cl !== undefined) {
      if (!/^\d{1,12}$/.test(cl)) return result(`bad content-length ${JSON.stringify(cl)}`);
      const n = Number(cl);
      if (buf.length - at < n) break;
      at += n;
      response.complete = true;
      continue;
    }
    // No framing: the body runs to the end of the connection.
    at = buf.length;
    response.complete = closed;
  }
  return result();
}
