/**
 * The edge node's stats listener: `/stats` (HTML), `/stats.json` and `/metrics` (Prometheus).
 * See server.ts for the HTTP behaviour, render-html.ts for the page and metrics.ts for the metric
 * names.
 */
export type { NodeStats } from "./model.js";
export { createStatsListener } from "./server.js";
