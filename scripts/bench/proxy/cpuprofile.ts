/**
 * A V8 `.cpuprofile` (node --cpu-prof) in a few text tables: self time by function and by
 * file/package, and inclusive time of the slotgate functions (those in dist/ or src/).
 *
 *   npx tsx scripts/bench/proxy/cpuprofile.ts FILE.cpuprofile [--top 25] [--from MS] [--to MS]
 *
 * Time is counted in samples (each worth the window's mean interval), not in V8's per-sample time
 * deltas: on a loaded machine a descheduled process shows up as one huge delta, which would be
 * charged to whatever function the next sample lands in. `--from`/`--to` (ms since the profile
 * started) keep only a window, e.g. the measured run without start-up and warm-up.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  ms: number;
  /** Share of the busy time (everything but `(idle)`), in %. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  /** The window kept, in ms since the profile started. */
  fromMs: number;
  toMs: number;
  samples: number;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  selfByFunction: ProfileRow[];
  selfByFile: ProfileRow[];
  inclusiveSlotgate: ProfileRow[];
}

function shortUrl(url: string): string {
  if (url === "") return "";
  let u = url.startsWith("file://") ? fileURLToPath(url) : url;
  const nm = u.lastIndexOf("/node_modules/");
  if (nm !== -1) return u.slice(nm + 1);
  const i = u.search(/\/(dist|src|scripts)\//);
  if (i !== -1) u = u.slice(i + 1);
  return u;
}

function fileGroup(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === "") return functionName.startsWith("(") ? functionName : "(native / V8 builtins)";
  const s = shortUrl(url);
  const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(s);
  if (pkg) return `node_modules/${pkg[1]}`;
  return s;
}

function functionKey(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (frame.url === "") return name;
  return `${name}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

const isSlotgate = (frame: CallFrame) => /\/(dist|src)\/(core|node|stores)\//.test(frame.url);

export function summarizeProfile(file: string, top = 25, fromMs = 0, toMs = Infinity): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Samples per node within the window, then each sample weighted with the window's mean interval.
  const count = new Map<number, number>();
  let t = 0;
  let first = NaN;
  let last = NaN;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += (profile.timeDeltas[i] ?? 0) / 1000;
    if (t < fromMs || t > toMs) continue;
    if (Number.isNaN(first)) first = t;
    last = t;
    samples++;
    const id = profile.samples[i]!;
    count.set(id, (count.get(id) ?? 0) + 1);
  }
  const interval = samples > 1 ? (last - first) / (samples - 1) : 0;
  const self = new Map<number, number>([...count].map(([id, n]) => [id, n * interval]));

  let totalMs = 0;
  let idleMs = 0;
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    totalMs += ms;
    if (node.callFrame.functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    const key = functionKey(node.callFrame);
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    const group = fileGroup(node.callFrame);
    byFile.set(group, (byFile.get(group) ?? 0) + ms);
    // Inclusive: every distinct slotgate function on this node's stack.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!isSlotgate(frame)) continue;
      const k = functionKey(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + ms);
    }
  }
  const busyMs = totalMs - idleMs;
  const rows = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms, pct: (100 * ms) / busyMs }));
  return {
    file,
    fromMs: Number.isNaN(first) ? fromMs : first,
    toMs: Number.isNaN(last) ? fromMs : last,
    samples,
    totalMs,
    idleMs,
    busyMs,
    selfByFunction: rows(byFunction),
    selfByFile: rows(byFile),
    inclusiveSlotgate: rows(inclusive),
  };
}

export function formatProfile(s: ProfileSummary, title: string): string {
  const section = (head: string, rows: ProfileRow[]) =>
    [`  ${head}`, ...rows.map((r) => `    ${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`)].join("\n");
  return [
    `${title}: ${s.file}`,
    `  window ${(s.fromMs / 1000).toFixed(1)}–${(s.toMs / 1000).toFixed(1)} s of the profile, ${s.samples} samples: ${(s.totalMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(1)} s (${((100 * s.busyMs) / s.totalMs).toFixed(0)}%); shares below are of the busy time`,
    section("self time by function", s.selfByFunction),
    section("self time by file / package", s.selfByFile),
    s.inclusiveSlotgate.length > 0 ? section("inclusive time of slotgate functions (dist/ or src/)", s.inclusiveSlotgate) : "",
  ]
    .filter((x) => x !== "")
    .join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error("usage: npx tsx scripts/bench/proxy/cpuprofile.ts FILE.cpuprofile [--top N]");
    process.exit(2);
  }
  const opt = (name: string, fallback: number) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? fallback : Number(process.argv[i + 1]);
  };
  console.log(formatProfile(summarizeProfile(file, opt("--top", 25), opt("--from", 0), opt("--to", Infinity)), "profile"));
}
