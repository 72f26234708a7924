/** Runs wrk (https://github.com/wg/wrk) with `--latency` and parses its report. */
import { spawnChild } from "./procs.js";

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationS: number;
  /** wrk's per-request timeout (a request slower than this counts as a timeout error). @default 10 */
  timeoutS?: number;
}

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Latency quantiles of wrk's `Latency Distribution`, in ms. */
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  non2xx: number;
  errors: { connect: number; read: number; write: number; timeout: number };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const threads = Math.max(1, Math.min(o.threads, o.connections));
  const args = ["-t", String(threads), "-c", String(o.connections), "-d", `${o.durationS}s`, "--timeout", `${o.timeoutS ?? 10}s`, "--latency", o.url];
  const child = spawnChild("wrk", "wrk", args);
  const code = await child.exited;
  const out = child.output();
  if (code !== 0) throw new Error(`wrk ${args.join(" ")} exited with ${String(code)}:\n${out.slice(-2000)}`);
  return parseWrk(out);
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function duration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return NaN;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const q = (pct: string) => {
    const m = new RegExp(`^\\s*${pct}%\\s+(\\S+)`, "m").exec(out);
    return m ? duration(m[1]!) : NaN;
  };
  const lat = /^\s*Latency\s+(\S+)\s+\S+\s+(\S+)/m.exec(out);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m.exec(out);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (!total || !rps) throw new Error(`cannot parse wrk's output:\n${out.slice(-2000)}`);
  return {
    requests: Number(total[1]),
    durationS: (Number(total[2]) * UNIT_MS[total[3]!]!) / 1000,
    rps: Number(rps[1]),
    p50Ms: q("50"),
    p75Ms: q("75"),
    p90Ms: q("90"),
    p99Ms: q("99"),
    meanMs: lat ? duration(lat[1]!) : NaN,
    maxMs: lat ? duration(lat[2]!) : NaN,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    errors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
  };
}

export function errorCount(r: WrkResult): number {
  return r.non2xx + r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
}
