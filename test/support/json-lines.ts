/** Collects a child process's stdout as JSON log lines (pino); a line that is not JSON becomes `{ text }`. */
import type { Readable } from "node:stream";

export function collectJsonLines(stdout: Readable): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  let buffer = "";
  stdout.on("data", (c: Buffer) => {
    buffer += c.toString();
    let nl: number;
    while ((nl = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ text: line });
      }
    }
  });
  return lines;
}
