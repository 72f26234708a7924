/**
 * The proxy case suite against the Node edge node: a real node (the memory store) in front of a
 * real test origin, every request over loopback sockets. Nothing is skipped: the node owns its
 * sockets, so every case can be expressed.
 */
import http from "node:http";
import { SlotgateError, createGuard, createMemoryStore, type GroupStore, type Guard, type SlotStore } from "../../src/index.js";
import { validateEdgeConfig } from "../../src/edge/config/schema.js";
import { toGuardOptions } from "../../src/edge/config/to-guard.js";
import { createEdgeNode } from "../../src/node/edge-node.js";
import { caseConfig, type CaseConfig, type CaseRequest, type CaseResponse, type CaseServer, type InFlight } from "./cases.js";
import { runProxyCases, type StartedEdge } from "./proxy.case.js";
import { rawExchange } from "../support/edge.js";
import { closedPort, flatHeaders, startOrigin } from "../support/origin.js";

let seq = 0;

/**
 * The memory store behind a switch: while `state.down`, every call fails as an unreachable
 * Redis's would (the outage policy decides); closing always works.
 */
function switchableStore(inner: SlotStore, state: { down: boolean }): SlotStore {
  const fault = () => Promise.reject(new SlotgateError("SLOTGATE_STORE_UNAVAILABLE", "connection refused (test)", { retryable: true }));
  const gate =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      state.down ? fault() : fn(...args);
  return {
    kind: "switchable",
    open(group, spec, options): GroupStore {
      const h = inner.open(group, spec, options);
      return {
        ready: gate(() => h.ready()),
        acquire: gate((request, signal) => h.acquire(request, signal)),
        release: gate((id) => h.release(id)),
        renew: gate((id, ttl) => h.renew(id, ttl)),
        configure: gate((spec, version) => h.configure(spec, version)),
        setServerState: gate((backend, server, up) => h.setServerState(backend, server, up)),
        stats: gate(() => h.stats()),
        close: () => h.close(),
      };
    },
    readStats: gate((group) => inner.readStats(group)),
  };
}

/** Every frontend of a config listens on a loopback port of its own choosing. */
function withBinds(config: Record<string, unknown>): Record<string, unknown> {
  const frontends = config.frontends as Record<string, Record<string, unknown>>;
  return { ...config, frontends: Object.fromEntries(Object.entries(frontends).map(([name, f]) => [name, { ...f, bind: "127.0.0.1:0" }])) };
}

function startRequest(port: number, r: CaseRequest): InFlight {
  const req = http.request({
    host: "127.0.0.1",
    port,
    method: r.method ?? "GET",
    path: r.target,
    headers: { ...r.headers, ...(r.host === undefined ? {} : { host: r.host }) },
    agent: false,
  });
  const chunks: Buffer[] = [];
  let status = 0;
  let headers: Record<string, string> = {};
  let gotChunk!: () => void;
  let ended!: () => void;
  let failed!: (error: Error) => void;
  const firstChunk = new Promise<void>((resolve) => (gotChunk = resolve));
  const end = new Promise<void>((resolve, reject) => {
    ended = resolve;
    failed = reject;
  });
  const head = new Promise<{ status: number; headers: Record<string, string> }>((resolve, reject) => {
    req.once("response", (res) => {
      status = res.statusCode ?? 0;
      headers = flatHeaders(res.headers);
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        gotChunk();
      });
      res.once("end", () => {
        gotChunk();
        ended();
      });
      res.once("error", failed);
      resolve({ status, headers });
    });
    req.once("error", (error) => {
      reject(error);
      failed(error);
    });
  });
  // The case may abort before awaiting either.
  head.catch(() => undefined);
  end.catch(() => undefined);
  req.end(r.body);
  return {
    head,
    firstChunk: async () => {
      await head;
      await firstChunk;
    },
    rest: async () => {
      await head;
      await end;
      return { status, headers, body: Buffer.concat(chunks).toString("latin1") };
    },
    abort: () => req.destroy(),
  };
}

runProxyCases({
  name: "Node edge node",
  async start(c: CaseConfig): Promise<StartedEdge> {
    const origin = await startOrigin();
    const refused = await closedPort();
    const address = (s: CaseServer) => (s.to === "origin" ? origin.address : `127.0.0.1:${refused}`);
    const group = `proxy-cases-${process.pid}-${++seq}`;
    const state = { down: false };
    const store = switchableStore(createMemoryStore(), state);
    let fleet: Guard | undefined;
    if (c.fleet) {
      const newer = caseConfig({ ...c, top: { ...c.top, version: c.fleet.version } }, group, address, c.fleet.frontend);
      fleet = createGuard({ ...toGuardOptions(validateEdgeConfig(withBinds(newer))), store });
      await fleet.open();
    }
    const node = await createEdgeNode(validateEdgeConfig(withBinds(caseConfig(c, group, address))), { store });
    await node.start();
    state.down = c.storeDown ?? false;
    const port = node.addresses.web!.port;
    const send = async (r: CaseRequest): Promise<CaseResponse> => startRequest(port, r).rest();
    return {
      send,
      start: (r) => startRequest(port, r),
      setStoreDown: (down) => {
        state.down = down;
      },
      seen: async () => origin.requests.map((r) => ({ method: r.method, url: r.url, headers: flatHeaders(r.headers) })),
      originCurrent: async () => origin.current,
      scope: async (name) => {
        if (state.down) return { in_use: 0, queued: 0, aborted: 0 };
        const s = (await node.guard.stats()).scopes[name];
        return { in_use: s?.in_use ?? 0, queued: s?.queued ?? 0, aborted: s?.aborted ?? 0 };
      },
      raw: async (bytes) => {
        const { responses } = await rawExchange(port, bytes, 1, 3000);
        return { status: responses[0]?.status ?? 0, body: responses[0]?.body ?? "" };
      },
      idle: async () => {
        if (state.down) return node.nodeStats().nodeInUse === 0;
        const s = await node.guard.stats();
        return s.holders === 0 && s.tickets === 0 && node.nodeStats().nodeInUse === 0;
      },
      close: async () => {
        await node.stop(0);
        await fleet?.close();
        await origin.close();
      },
    };
  },
});
