/**
 * @module
 * slotgate/node: the Node edge node (HTTP and TCP proxy, stats listener, CLI). Only Node-specific
 * code lives under src/node.
 *
 * ```ts
 * import { createEdgeNode, loadEdgeConfig, createLogger } from "slotgate/node";
 *
 * const node = await createEdgeNode(await loadEdgeConfig("edge.yaml"), { logger: createLogger() });
 * await node.start();
 * process.once("SIGTERM", () => void node.stop(10_000));
 * ```
 */
export { createEdgeNode, DEFAULT_GRACE_MS } from "./edge-node.js";
export type { EdgeNode, EdgeNodeOptions } from "./edge-node.js";
export type { HttpFrontendOptions } from "./http-proxy.js";
export type { FrontendCounters, NodeStats } from "./frontend.js";
export { loadEdgeConfig, parseEdgeConfig } from "./config/load.js";
export { validateEdgeConfig } from "../edge/config/schema.js";
export type { EdgeConfig, FrontendConfig, BackendConfig, ServerConfig, StoreConfig, BindAddress } from "../edge/config/schema.js";
export { toGuardOptions, createRequestPlanner } from "../edge/config/to-guard.js";
export type { AcquirePlan, RequestPlanner, RequestFacts } from "../edge/config/to-guard.js";
export { createStatsListener } from "./stats/index.js";
export { createLogger, redactUrl } from "./logger.js";
export type { Logger, LogLevel } from "./logger.js";
export { formatStatsTable } from "./stats-table.js";
export { runCli } from "./cli.js";
