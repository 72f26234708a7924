/**
 * The proxy case suite against the Worker, inside workerd: the Worker's own `fetch`
 * (src/worker/handler.ts, with the runtime's `fetch` to the servers) and the `SlotGroup` object of
 * the deployable bundle (SLOT_GROUP_BUNDLE), in front of the same test origin the Node edge
 * node's cases use: a real server on 127.0.0.1, started per case by
 * proxy-origins.global-setup.ts and reached over loopback. Each case runs on a group of its own.
 *
 * The client is what Cloudflare's front end hands a Worker: a `Request` with an absolute URL (the
 * Host it names), `CF-Connecting-IP` set to the client's address (127.0.0.1, what the Node edge
 * node sees of a loopback client), and a signal that aborts when the client goes away.
 */
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { createDurableObjectStore, type SlotGroupNamespace, type SlotGroupRpc } from "../../src/cloudflare/index.js";
import { createGuard, type Guard } from "../../src/index.js";
import { parseWorkerConfig } from "../../src/worker/config.js";
import { createSlotgateHandler, type SlotgateEnv } from "../../src/worker/handler.js";
import { caseConfig, type CaseConfig, type CaseRequest, type CaseResponse, type CaseServer, type InFlight, type SeenRequest } from "../proxy-cases/cases.js";
import { runProxyCases, type StartedEdge } from "../proxy-cases/proxy.case.js";

const control = inject("proxyCaseControl");

interface OriginHandle {
  id: string;
  address: string;
  refused: string;
}

async function controlCall<T>(method: string, path: string): Promise<T> {
  const res = await fetch(`${control}${path}`, { method });
  if (!res.ok) throw new Error(`origin control ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json<T>();
}

/** The bundle's SlotGroup objects behind a switch: while `state.down`, every call fails as an unreachable object's would. */
function switchable(real: SlotGroupNamespace, state: { down: boolean }): SlotGroupNamespace {
  const lost = () => Promise.reject(Object.assign(new Error("Network connection lost."), { retryable: false }));
  return {
    idFromName: (name) => real.idFromName(name),
    get: (id) => {
      const stub = real.get(id);
      const gated: SlotGroupRpc = {
        acquire: (...a) => (state.down ? lost() : stub.acquire(...a)),
        cancel: (...a) => (state.down ? lost() : stub.cancel(...a)),
        release: (...a) => (state.down ? lost() : stub.release(...a)),
        renew: (...a) => (state.down ? lost() : stub.renew(...a)),
        configure: (...a) => (state.down ? lost() : stub.configure(...a)),
        setServerState: (...a) => (state.down ? lost() : stub.setServerState(...a)),
        stats: (...a) => (state.down ? lost() : stub.stats(...a)),
      };
      return gated;
    },
  };
}

function clientRequest(r: CaseRequest, signal?: AbortSignal): Request {
  const url = /^https?:\/\//i.test(r.target) ? r.target : `http://${r.host ?? "edge.test"}${r.target}`;
  return new Request(url, {
    method: r.method ?? "GET",
    headers: { ...r.headers, "cf-connecting-ip": "127.0.0.1" },
    ...(r.body === undefined ? {} : { body: r.body }),
    ...(signal === undefined ? {} : { signal }),
  });
}

async function readAll(res: Response, start: string, reader?: ReadableStreamDefaultReader<Uint8Array>): Promise<CaseResponse> {
  let body = start;
  if (reader) {
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += decoder.decode(value, { stream: true });
    }
  } else {
    body = await res.text();
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body };
}

runProxyCases({
  name: "Worker (workerd)",
  skip: [
    {
      reason: "a Worker never sees the client's bytes: the runtime parses the request and hands over a Request whose body framing is already decided",
      cases: ["Connection cannot remove the framing of a chunked body (raw bytes on the client's socket)"],
    },
    {
      reason: "a Worker's fetch derives Host from the server's URL and cannot send another (documented in src/worker/proxy.ts)",
      cases: ["a host:port server gets the client's Host"],
    },
    {
      reason: "a Worker's request is a URL: the asterisk-form (OPTIONS *) cannot reach it",
      cases: ["an asterisk-form target (OPTIONS *) reaches a URL server as its base path"],
    },
    {
      reason: "a Worker's request URL is parsed by the runtime (WHATWG URL), which resolves dot segments before the Worker sees the path",
      cases: ["dot segments in the path go through as the client wrote them (the origin resolves them, as HAProxy leaves them)"],
    },
  ],
  async start(c: CaseConfig): Promise<StartedEdge> {
    const origin = await controlCall<OriginHandle>("POST", "/origins");
    const address = (s: CaseServer) => (s.to === "origin" ? origin.address : origin.refused);
    const group = `proxy-cases-${crypto.randomUUID()}`;
    const pending: Promise<unknown>[] = [];
    let fleet: Guard | undefined;
    if (c.fleet) {
      const newer = parseWorkerConfig(caseConfig({ ...c, top: { ...c.top, version: c.fleet.version } }, group, address, c.fleet.frontend));
      fleet = createGuard({ ...newer.guardOptions, store: createDurableObjectStore({ namespace: env.SLOT_GROUP_BUNDLE }) });
      await fleet.open();
    }
    const state = { down: c.storeDown ?? false };
    const handler = createSlotgateHandler();
    const workerEnv: SlotgateEnv = {
      SLOT_GROUP: switchable(env.SLOT_GROUP_BUNDLE, state),
      SLOTGATE_CONFIG: JSON.stringify(caseConfig(c, group, address)),
    };
    const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p.catch(() => undefined)) };
    const stats = async () => {
      const ns = env.SLOT_GROUP_BUNDLE;
      const reply = await ns.get(ns.idFromName(group)).stats();
      if (reply.status !== 0) throw new Error(`stats failed: ${reply.detail}`);
      return reply.value;
    };
    const start = (r: CaseRequest): InFlight => {
      const ac = new AbortController();
      const response = handler.fetch(clientRequest(r, ac.signal), workerEnv, ctx);
      let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
      let first = "";
      const head = response.then((res) => ({ status: res.status, headers: Object.fromEntries(res.headers) }));
      head.catch(() => undefined);
      return {
        head,
        firstChunk: async () => {
          const res = await response;
          reader ??= res.body!.getReader();
          const { value } = await reader.read();
          first += new TextDecoder().decode(value);
        },
        rest: async () => readAll(await response, first, reader),
        abort: () => {
          // What the runtime does when the client disconnects: the request's signal aborts and the
          // response body is cancelled.
          ac.abort();
          void response.then(
            (res) => (reader ? reader.cancel() : res.body?.cancel()),
            () => undefined,
          );
        },
      };
    };
    return {
      send: async (r) => readAll(await handler.fetch(clientRequest(r), workerEnv, ctx), ""),
      start,
      setStoreDown: (down) => {
        state.down = down;
      },
      seen: async () => (await controlCall<{ requests: SeenRequest[] }>("GET", `/origins/${origin.id}`)).requests,
      originCurrent: async () => (await controlCall<{ current: number }>("GET", `/origins/${origin.id}`)).current,
      scope: async (name) => {
        if (state.down) return { in_use: 0, queued: 0, aborted: 0 };
        const s = (await stats()).scopes[name];
        return { in_use: s?.in_use ?? 0, queued: s?.queued ?? 0, aborted: s?.aborted ?? 0 };
      },
      idle: async () => {
        // With the store down, what the isolate holds is checked by the cases themselves (a next request gets the slot).
        if (state.down) return true;
        const s = await stats();
        return s.holders === 0 && s.tickets === 0;
      },
      close: async () => {
        await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, 5000))]);
        await fleet?.close();
        await controlCall("DELETE", `/origins/${origin.id}`);
      },
    };
  },
});
