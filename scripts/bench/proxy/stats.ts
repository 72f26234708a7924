/** Small statistics and Redis read-outs shared by the phases of the proxy benchmark. */
import { sendCommand } from "../../../test/harness/redis.js";

/** The median of the finite values of `xs` (NaN when there are none). */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface RedisCommandStat {
  command: string;
  calls: number;
  callsPerRequest: number;
  usecPerCall: number;
}

/** `INFO commandstats` as rows (the commands Redis ran since the last CONFIG RESETSTAT). */
export async function redisCommandStats(port: number, requests: number): Promise<RedisCommandStat[]> {
  const info = String(await sendCommand(port, ["INFO", "commandstats"]));
  const rows: RedisCommandStat[] = [];
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/gm)) {
    // The benchmark's own read-outs, not the proxies' traffic.
    if (m[1] === "info" || m[1] === "config") continue;
    const calls = Number(m[2]);
    rows.push({ command: m[1]!, calls, callsPerRequest: calls / Math.max(1, requests), usecPerCall: Number(m[3]) });
  }
  return rows.sort((a, b) => b.calls - a.calls);
}

/**
 * redis-server's own CPU time (user + system, all its threads) from `INFO cpu`, in ms: the same
 * figure as /proc, but read through the server, so it also works for a Redis we did not spawn.
 */
export async function redisCpuMs(port: number): Promise<number> {
  const info = String(await sendCommand(port, ["INFO", "cpu"]));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  return (field("used_cpu_user") + field("used_cpu_sys")) * 1000;
}
