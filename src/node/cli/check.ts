/** `slotgate check`: validates a config file and prints what it sets up (or every problem, with its path). */
import { SlotgateConfigError, formatIssue } from "../../core/errors.js";
import { createGuard } from "../../index.js";
import { formatDuration } from "../../edge/config/duration.js";
import { createRequestPlanner, toGuardOptions } from "../../edge/config/to-guard.js";
import { errorMessage } from "../logger.js";
import { configPath, type Parsed } from "./args.js";
import { describeStore, load } from "./shared.js";
import type { LimitKey } from "../../edge/config/match.js";
import { EXIT, type CliIo } from "./io.js";

export async function check(parsed: Parsed, io: CliIo): Promise<number> {
  const file = configPath(parsed);
  const config = await load(file, io);
  if (!config) return EXIT.invalidConfig;
  // What serve would build next: the guard's spec and the request planner.
  try {
    const guard = createGuard(toGuardOptions(config));
    createRequestPlanner(config);
    await guard.close();
  } catch (error) {
    const lines = error instanceof SlotgateConfigError ? error.issues.map((i) => `  ${formatIssue(i)}\n`).join("") : `  ${errorMessage(error)}\n`;
    io.stderr(`${file}: the limits cannot be built:\n${lines}`);
    return EXIT.invalidConfig;
  }
  const out: string[] = [`ok: ${file}`];
  if (config.version === null && config.store.type !== "memory") {
    io.stderr(
      `warning: ${file}: store ${config.store.type} is shared by the fleet, and the config has no version: the last node to start sets the fleet's limits (a rolling deploy, or a node started with an old file, changes them for every node). Add a top-level version and raise it with every change of limits.\n`,
    );
  }
  out.push(
    `  group ${config.group}${config.version === null ? "" : ` · version ${config.version}`} · store ${describeStore(config)} · on_store_error ${config.onStoreError}${config.localShare === null ? "" : ` (local_share ${config.localShare})`}`,
  );
  if (config.global.maxconn !== null || config.node.maxconn !== null) {
    out.push(`  global maxconn ${config.global.maxconn ?? "-"} · node maxconn ${config.node.maxconn ?? "-"}`);
  }
  for (const f of Object.values(config.frontends)) {
    const extra = [
      f.mode === "http" ? `deny_status ${f.denyStatus}` : `delay_before_close ${formatDuration(f.delayBeforeCloseMs)}`,
      f.priority.length > 0 ? `${f.priority.length} priority rule${f.priority.length === 1 ? "" : "s"}` : "",
      f.limits.length > 0 ? `keyed limits ${f.limits.map((l) => `${l.name} (${l.maxconn})`).join(", ")}` : "",
      f.fairBy === null ? "" : `fair by ${describeKey(f.fairBy)}`,
      f.queueTimeoutEarly ? "queue timeout early" : "",
    ].filter((s) => s !== "");
    out.push(`  frontend ${f.name}: ${f.mode} on ${f.bind.text}, maxconn ${f.maxconn ?? "-"} → ${f.defaultBackend} · ${extra.join(" · ")}`);
  }
  for (const b of Object.values(config.backends)) {
    const servers = b.servers.map(
      (s) =>
        `${s.name} ${s.address.form === "url" ? s.address.url : `${s.address.host}:${s.address.port}`} (maxconn ${s.maxconn ?? "-"}${s.down ? ", down" : ""})`,
    );
    out.push(
      `  backend ${b.name}: ${b.balance}, maxconn ${b.maxconn ?? "-"}, maxqueue ${b.maxqueue ?? "-"}, timeout queue ${formatDuration(b.timeout.queueMs)} connect ${formatDuration(b.timeout.connectMs)} server ${formatDuration(b.timeout.serverMs)} · ${servers.join(", ")}`,
    );
  }
  if (config.queue !== null) {
    const q = config.queue;
    const weights = Object.keys(q.flowWeights).length;
    // Flow names may be API keys: only their number is printed.
    out.push(
      `  queue ${q.discipline}${q.discipline === "fifo" ? "" : ` (target ${formatDuration(q.targetMs)}, interval ${formatDuration(q.intervalMs)})`}${weights === 0 ? "" : ` · ${weights} flow weight${weights === 1 ? "" : "s"}`}`,
    );
  }
  if (config.stats)
    out.push(
      `  stats on ${config.stats.bind.text}${config.stats.token === null ? "" : " (token required)"}${config.stats.showKeys ? " · keyed values shown raw" : ""}`,
    );
  if (config.log.query) out.push("  log: request paths with their query strings");
  io.stdout(`${out.join("\n")}\n`);
  return EXIT.ok;
}

/** A key source as the config writes it: `header x-tenant`, `query key`, `path`, `src /32 /64`. */
function describeKey(key: LimitKey): string {
  switch (key.kind) {
    case "header":
    case "query":
      return `${key.kind} ${key.name}`;
    case "path":
      return "path";
    case "src":
      return `src /${key.ipv4Prefix} /${key.ipv6Prefix}`;
  }
}
