/**
 * Server choice inside the atomic acquire (SPEC §2 rule 2). `choose` only looks; `commit` moves
 * the balancing state once the grant is certain, so a failed fit test changes nothing.
 * The Redis Lua scripts implement the same three algorithms rule for rule.
 */
import type { BackendState, ServerState } from "./scopes.js";

export function chooseServer(backend: BackendState): ServerState | undefined {
  const servers = backend.servers;
  const n = servers.length;
  switch (backend.balance) {
    case "first":
      return servers.find((s) => s.eligible);
    case "leastconn": {
      // Fewest cluster-wide holders; among equals, the first at or after the one past the last pick.
      let best: ServerState | undefined;
      for (let k = 1; k <= n; k++) {
        const s = servers[(backend.lastPick + k + n) % n]!;
        if (s.eligible && (best === undefined || s.scope.inUse < best.scope.inUse)) best = s;
      }
      return best;
    }
    case "roundrobin": {
      // Smooth weighted round-robin over the eligible servers: add each weight, take the largest.
      let best: ServerState | undefined;
      let bestWeight = -Infinity;
      for (const s of servers) {
        if (!s.eligible) continue;
        const w = s.currentWeight + s.weight;
        if (w > bestWeight) {
          best = s;
          bestWeight = w;
        }
      }
      return best;
    }
  }
}

export function commitChoice(backend: BackendState, chosen: ServerState): void {
  backend.lastPick = backend.servers.indexOf(chosen);
  if (backend.balance !== "roundrobin") return;
  let total = 0;
  for (const s of backend.servers) {
    if (!s.eligible && s !== chosen) continue;
    s.currentWeight += s.weight;
    total += s.weight;
  }
  chosen.currentWeight -= total;
}
