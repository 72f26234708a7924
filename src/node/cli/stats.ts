/** `slotgate stats`: the fleet's live numbers, read from the store (never writing the spec) or from a memory-store node's stats listener. */
import http from "node:http";
import { readGroupStats, type GuardStats } from "../../core/guard.js";
import type { EdgeConfig } from "../../edge/config/schema.js";
import type { NodeStats } from "../frontend.js";
import { createLogger, errorMessage } from "../logger.js";
import { publicStats } from "../stats/keys.js";
import { formatStatsTable } from "../stats-table.js";
import { openStore } from "../store.js";
import { configPath, type Parsed } from "./args.js";
import { load } from "./shared.js";
import { EXIT, type CliIo } from "./io.js";

export async function stats(parsed: Parsed, io: CliIo): Promise<number> {
  const file = configPath(parsed);
  const config = await load(file, io);
  if (!config) return EXIT.invalidConfig;
  const json = parsed.flags.has("json");

  let snapshot: GuardStats;
  let node: NodeStats | undefined;
  if (config.store.type === "memory") {
    if (!config.stats) {
      io.stderr(
        `slotgate stats: ${file} uses the memory store, whose numbers live inside the serving process, and has no stats listener to ask (add stats: { bind: 127.0.0.1:8404 })\n`,
      );
      return EXIT.runtime;
    }
    try {
      ({ stats: snapshot, node } = await fetchStatsJson(config));
    } catch (error) {
      io.stderr(
        `slotgate stats: the memory store's numbers live inside the serving process, and its stats listener (${config.stats.bind.text}) did not answer: ${errorMessage(error)}\n`,
      );
      return EXIT.runtime;
    }
  } else {
    const logger = createLogger({ level: "silent" });
    let opened: Awaited<ReturnType<typeof openStore>>;
    try {
      opened = await openStore(config.store, logger);
    } catch (error) {
      io.stderr(`slotgate stats: ${errorMessage(error)}\n`);
      return EXIT.runtime;
    }
    try {
      if (!(await opened.ready(5_000))) {
        io.stderr(`slotgate stats: cannot reach the store (${opened.description})\n`);
        return EXIT.runtime;
      }
      // Read-only (SPEC §2 rule 13): the group is not opened, so FILE's limits are never pushed.
      const read = await readGroupStats(opened.store, config.group);
      if (read === undefined) {
        io.stderr(`slotgate stats: the store (${opened.description}) has no state for group ${config.group}: no node has opened it\n`);
        return EXIT.runtime;
      }
      snapshot = publicStats(read, config);
    } catch (error) {
      io.stderr(`slotgate stats: ${errorMessage(error)}\n`);
      return EXIT.runtime;
    } finally {
      await opened.close();
    }
  }
  io.stdout(json ? `${JSON.stringify({ stats: snapshot, ...(node ? { node } : {}) }, null, 2)}\n` : formatStatsTable(snapshot, config, node));
  return EXIT.ok;
}

function fetchStatsJson(config: EdgeConfig): Promise<{ stats: GuardStats; node: NodeStats | undefined }> {
  const bind = config.stats!.bind;
  const host = bind.wildcard ? (bind.family === 6 ? "::1" : "127.0.0.1") : bind.host;
  const headers: http.OutgoingHttpHeaders = config.stats!.token === null ? {} : { authorization: `Bearer ${config.stats!.token}` };
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: bind.port, path: "/stats.json", headers, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024 * 1024) req.destroy(new Error("answer too large"));
        else chunks.push(c);
      });
      res.once("end", () => {
        if (res.statusCode !== 200) {
          reject(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { stats?: GuardStats; node?: NodeStats };
          if (!body.stats || typeof body.stats !== "object") throw new Error("no stats in the answer");
          resolve({ stats: body.stats, node: body.node });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      res.on("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}
