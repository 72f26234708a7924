/** What the commands share: loading a config file with its problems printed, naming a store. */
import { SlotgateConfigError, formatIssue } from "../../core/errors.js";
import { loadEdgeConfig } from "../config/load.js";
import type { EdgeConfig } from "../../edge/config/schema.js";
import { redactUrl } from "../logger.js";
import { type CliIo } from "./io.js";

export async function load(file: string, io: CliIo): Promise<EdgeConfig | undefined> {
  try {
    return await loadEdgeConfig(file);
  } catch (error) {
    if (error instanceof SlotgateConfigError) {
      const n = error.issues.length;
      io.stderr(`${file}: invalid config (${n} problem${n === 1 ? "" : "s"}):\n${error.issues.map((i) => `  ${formatIssue(i)}\n`).join("")}`);
      return undefined;
    }
    throw error;
  }
}

export function describeStore(config: EdgeConfig): string {
  const s = config.store;
  switch (s.type) {
    case "memory":
      return "memory (this process only)";
    case "redis":
      return `redis ${redactUrl(s.url)}${s.prefix === null ? "" : ` prefix ${s.prefix}`}`;
    case "redis-cluster":
      return `redis-cluster ${s.urls.map(redactUrl).join(", ")}${s.prefix === null ? "" : ` prefix ${s.prefix}`}`;
    case "durable-object":
      return `durable-object ${redactUrl(s.url)}`;
  }
}
