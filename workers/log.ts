/**
 * One structured line per event, for Workers Logs / `wrangler tail`. The Worker logs faults,
 * fallback decisions and lost leases, not every rejection: at the edge, rejections are traffic,
 * and the object counts them (slot API `stats`).
 */
export type LogLevel = "info" | "warn" | "error";

export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  const line = { level, msg, ...fields };
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
