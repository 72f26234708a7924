/** Helpers of the Worker end-to-end tests: the origin's numbers, the group's numbers, fresh buckets. */
import { env } from "cloudflare:workers";
import type { GroupStatsSnapshot } from "../../src/index.js";
import { EDGE_CONFIGS, type EdgeConfigName } from "./edge-fixtures.js";

export interface OriginStats {
  current: number;
  max: number;
  count: number;
  hosts: Record<string, { current: number; max: number; count: number }>;
  arrivals: string[];
}

/** A fresh bucket of the origin's counters (header `x-test-bucket`). */
export const freshBucket = (label: string) => `${label}-${crypto.randomUUID()}`;

export async function originStats(bucket: string): Promise<OriginStats> {
  const res = await env.ORIGIN.fetch(`http://origin/__origin/stats?bucket=${encodeURIComponent(bucket)}`);
  return res.json<OriginStats>();
}

/** The group's numbers, straight from its object (the one the edge workers use). */
export async function groupStats(config: EdgeConfigName): Promise<GroupStatsSnapshot> {
  const ns = env.SLOT_GROUP_BUNDLE;
  const reply = await ns.get(ns.idFromName(EDGE_CONFIGS[config].group)).stats();
  if (reply.status !== 0) throw new Error(`stats failed: ${reply.detail}`);
  return reply.value;
}

/** A request to an edge worker, in a bucket. */
export function edge(worker: Fetcher, path: string, bucket: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  return worker.fetch(`https://edge.example${path}`, { ...init, headers: { "x-test-bucket": bucket, ...init.headers } });
}
