/**
 * One structured line per event, for Workers Logs / `wrangler tail`. The Worker logs faults,
 * fallback decisions and lost leases, not every rejection: at the edge, rejections are traffic,
 * and the object counts them (slot API `stats`).
 */
import { safeText } from "../core/redact.js";

export type LogLevel = "info" | "warn" | "error";

/**
 * String fields (error details above all) go through the same scrubber as the Node logger's:
 * no URL credentials, no keyed-limit value (client input such as an API key).
 */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  const line: Record<string, unknown> = { level, msg };
  for (const [key, value] of Object.entries(fields)) line[key] = typeof value === "string" ? safeText(value) : value;
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
