import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { createGuard, SlotgateConfigError, SlotgateError } from "../../src/index.js";
import { formatDuration, parseDuration, toMilliseconds } from "../../src/edge/config/duration.js";
import { loadEdgeConfig, MAX_CONFIG_BYTES, parseConfigText, parseEdgeConfig } from "../../src/node/config/load.js";
import {
  compileConditions,
  compilePathRegex,
  formatIp,
  keyValue,
  MAX_REGEX_INPUT,
  parseCidr,
  parseIp,
  type Conditions,
  type RequestFacts,
} from "../../src/edge/config/match.js";
import { validateEdgeConfig, type EdgeConfig } from "../../src/edge/config/schema.js";
import { createRequestPlanner, toGuardOptions } from "../../src/edge/config/to-guard.js";
import { mulberry32, replayHint, testSeeds } from "../support/random.js";

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

let edgeText = "";
let base: { [key: string]: Json } = {};

beforeAll(async () => {
  edgeText = await readFile(join(EXAMPLES, "edge.yaml"), "utf8");
  base = parseYaml(edgeText) as { [key: string]: Json };
});

/**
 * The example as a freely writable value: the error cases put wrong types in on purpose, which a
 * precise type would forbid.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;

function clone(): Loose {
  return structuredClone(base) as Loose;
}

/** The issue lines of a failed load, or a failure if it loaded. */
function issueLines(input: string | Uint8Array): string[] {
  return rejection(() => parseEdgeConfig(input));
}

/** The issue lines of the config error `load` throws, or a failure if it returned. */
function rejection(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(SlotgateConfigError);
    expect((error as SlotgateConfigError).code).toBe("SLOTGATE_INVALID_CONFIG");
    return (error as Error).message.split("\n");
  }
  throw new Error("expected the config to be rejected");
}

describe("example configs", () => {
  it("examples/edge.yaml (SPEC §5) loads and normalises", async () => {
    const c = await loadEdgeConfig(join(EXAMPLES, "edge.yaml"));
    expect(c.store).toEqual({ type: "redis", url: "redis://127.0.0.1:6379", prefix: null });
    expect(c.group).toBe("shop");
    expect(c.version).toBe(1);
    expect(c.onStoreError).toBe("fail-closed");
    expect(c.localShare).toBe(0.34);
    expect(c.global.maxconn).toBe(60000);
    expect(c.node.maxconn).toBe(20000);
    const web = c.frontends.web!;
    expect(web.bind).toMatchObject({ host: "127.0.0.1", port: 8080, loopback: true });
    expect(web.denyStatus).toBe(503);
    expect(web.priority).toEqual([
      { if: { pathBeg: ["/checkout/"] }, class: 1, offsetMs: 0 },
      { if: null, class: 2, offsetMs: 0 },
    ]);
    expect(web.limits).toEqual([{ name: "apikey", key: { kind: "header", name: "x-api-key" }, maxconn: 20, maxqueue: null }]);
    const echo = c.frontends.echo!;
    expect(echo).toMatchObject({ mode: "tcp", maxconn: 1, delayBeforeCloseMs: 2000, denyStatus: null });
    const ws = c.backends.web_servers!;
    expect(ws).toMatchObject({ balance: "leastconn", maxconn: 800, maxqueue: 1000, leaseTtlMs: 30000 });
    expect(ws.timeout).toEqual({ queueMs: 30000, connectMs: 5000, serverMs: 60000 });
    expect(ws.servers.map((s) => [s.name, s.address.url, s.maxconn, s.weight])).toEqual([
      ["web1", "http://127.0.0.1:9001", 500, 1],
      ["web2", "http://127.0.0.1:9002", 500, 2],
    ]);
    expect(c.stats).toEqual({ bind: expect.objectContaining({ text: "127.0.0.1:8404", loopback: true }), token: null, showKeys: false });
    expect(c.log).toEqual({ query: false });
  });

  it("examples/demo.yaml loads", async () => {
    const c = await loadEdgeConfig(join(EXAMPLES, "demo.yaml"));
    expect(c.store).toEqual({ type: "memory" });
    expect(c.frontends.web).toMatchObject({ bind: { text: "127.0.0.1:8080" }, mode: "http" });
    expect(c.frontends.web!.maxconn).toBeLessThanOrEqual(20);
    const app = c.backends[c.frontends.web!.defaultBackend]!;
    expect(app.timeout.queueMs).toBe(5000);
    expect(app.servers.map((s) => [s.address.url, s.maxconn])).toEqual([
      ["http://127.0.0.1:9001", 2],
      ["http://127.0.0.1:9002", 2],
    ]);
    expect(c.stats?.bind.text).toBe("127.0.0.1:8404");
  });

  it("the same config as JSON loads to the same result", () => {
    expect(parseEdgeConfig(JSON.stringify(base))).toEqual(parseEdgeConfig(edgeText));
    expect(validateEdgeConfig(clone())).toEqual(parseEdgeConfig(edgeText));
  });

  it("YAML stays YAML 1.2 core: no 1.1 booleans or octals, no merge keys, whatever the directive", () => {
    expect(parseConfigText("%YAML 1.1\n---\na: yes\nb: 0777\nc: 2001-12-14\n")).toEqual({ a: "yes", b: 777, c: "2001-12-14" });
    expect(parseConfigText("x: &x {maxconn: 1}\ny: {<<: *x}\n")).toEqual({ x: { maxconn: 1 }, y: { "<<": { maxconn: 1 } } });
  });

  it("accepts bytes with a UTF-8 BOM", () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(edgeText)]);
    expect(parseEdgeConfig(bytes).group).toBe("shop");
  });

  it("the defaults of a minimal config", () => {
    const c = parseEdgeConfig(
      "frontends: { f: { bind: 'localhost:0', default_backend: b } }\nbackends: { b: { servers: { s: { address: 'api.internal:80' } } } }\n",
    );
    expect(c.store).toEqual({ type: "memory" });
    expect(c.group).toBe("default");
    expect(c.version).toBeNull();
    expect(c.onStoreError).toBe("fail-closed");
    expect(c.frontends.f).toMatchObject({ mode: "http", maxconn: null, denyStatus: 503, bind: { host: "127.0.0.1", port: 0 } });
    expect(c.backends.b).toMatchObject({ balance: "roundrobin", leaseTtlMs: 30000, timeout: { queueMs: 5000, connectMs: 5000, serverMs: 60000 } });
    expect(c.stats).toBeNull();
  });

  it("a top-level version goes to the guard options", () => {
    const c = parseEdgeConfig(
      "version: 7\nfrontends: { f: { bind: 'localhost:0', default_backend: b } }\nbackends: { b: { servers: { s: { address: 'api.internal:80' } } } }\n",
    );
    expect(c.version).toBe(7);
    expect(toGuardOptions(c).version).toBe(7);
    expect(toGuardOptions({ ...c, version: null })).not.toHaveProperty("version");
  });
});

describe("config errors name their path", () => {
  type Case = { name: string; input: string | Uint8Array | ((c: Loose) => void); expect: Array<string | RegExp> };
  const cases: Case[] = [
    {
      name: "negative server maxconn (the message of SPEC §5)",
      input: (c) => (c.backends.web_servers.servers.web1.maxconn = -1),
      expect: ["backends.web_servers.servers.web1.maxconn: expected a positive integer, got -1"],
    },
    {
      name: "maxconn 0 (HAProxy's unlimited) is refused",
      input: (c) => (c.frontends.web.maxconn = 0),
      expect: ["frontends.web.maxconn: expected a positive integer, got 0"],
    },
    { name: "fractional maxconn", input: (c) => (c.global.maxconn = 1.5), expect: ["global.maxconn: expected a positive integer, got 1.5"] },
    { name: "maxconn as a string", input: (c) => (c.node.maxconn = "10"), expect: ['node.maxconn: expected a positive integer, got "10"'] },
    {
      name: "maxconn too large",
      input: (c) => (c.backends.web_servers.maxconn = 2e9),
      expect: ["backends.web_servers.maxconn: expected a positive integer up to 1000000000, got 2000000000"],
    },
    { name: "version 0", input: (c) => (c.version = 0), expect: ["version: expected a positive integer, got 0"] },
    { name: "version not an integer", input: (c) => (c.version = "v2"), expect: ['version: expected a positive integer, got "v2"'] },
    { name: "version fractional", input: (c) => (c.version = 2.5), expect: ["version: expected a positive integer, got 2.5"] },
    {
      name: "unknown top-level key",
      input: (c) => (c.maxconn = 5),
      expect: [
        'maxconn: expected one of the keys store, group, version, on_store_error, local_share, global, node, frontends, backends, stats, log, queue, got "maxconn"',
      ],
    },
    {
      name: "typo in a frontend key",
      input: (c) => (c.frontends.web.maxcon = 5),
      expect: [/^frontends\.web\.maxcon: expected one of the keys bind, mode, maxconn, .*got "maxcon"$/],
    },
    {
      name: "typo in a server key",
      input: (c) => (c.backends.web_servers.servers.web2.max_conn = 5),
      expect: [/^backends\.web_servers\.servers\.web2\.max_conn: expected one of the keys address, maxconn, maxqueue, weight, down, got "max_conn"$/],
    },
    {
      name: "unknown condition",
      input: (c) => (c.frontends.web.priority[0].if.path_end = "/x"),
      expect: [/^frontends\.web\.priority\[0\]\.if\.path_end: expected one of the keys path_beg, path_reg, method, host, header, src/],
    },
    {
      name: "bad duration",
      input: (c) => (c.backends.web_servers.timeout.queue = "30x"),
      expect: ['backends.web_servers.timeout.queue: expected a duration such as 30s, 500ms, 2m, 1h, 1.5s or a whole number of milliseconds, got "30x"'],
    },
    {
      name: "duration below its range",
      input: (c) => (c.backends.web_servers.lease_ttl = "500ms"),
      expect: ['backends.web_servers.lease_ttl: expected a duration from 1s to 1d, got "500ms"'],
    },
    {
      name: "duration not a whole ms",
      input: (c) => (c.backends.web_servers.timeout.connect = "0.5ms"),
      expect: [/^backends\.web_servers\.timeout\.connect: expected a duration such as .*, got "0\.5ms"$/],
    },
    {
      name: "negative timeout",
      input: (c) => (c.backends.web_servers.timeout.server = -5),
      expect: ["backends.web_servers.timeout.server: expected a duration from 1ms to 1d, got -5"],
    },
    {
      name: "priority offset out of range",
      input: (c) => (c.frontends.web.priority[0].offset = "10m"),
      expect: ['frontends.web.priority[0].offset: expected a duration from -524287ms to 524287ms, got "10m"'],
    },
    {
      name: "priority class out of range",
      input: (c) => (c.frontends.web.priority[1].class = 3000),
      expect: ["frontends.web.priority[1].class: expected an integer from -2047 to 2047, got 3000"],
    },
    {
      name: "rule without class or offset",
      input: (c) => (c.frontends.web.priority[0] = { if: { method: "GET" } }),
      expect: ["frontends.web.priority[0]: expected a rule with a class and/or an offset, got an object"],
    },
    {
      name: "rule after a catch-all",
      input: (c) => c.frontends.web.priority.push({ if: { method: "GET" }, class: 3 }),
      expect: ['frontends.web.priority[2]: expected no rule after frontends.web.priority[1], which has no "if" and always matches, got an object'],
    },
    { name: "empty if", input: (c) => (c.frontends.web.priority[0].if = {}), expect: [/^frontends\.web\.priority\[0\]\.if: expected at least one condition/] },
    {
      name: "bad CIDR",
      input: (c) => (c.frontends.web.priority[0].if = { src: "10.0.0.300/8" }),
      expect: ['frontends.web.priority[0].if.src: expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32, got "10.0.0.300/8"'],
    },
    {
      name: "CIDR with host bits",
      input: (c) => (c.frontends.web.priority[0].if = { src: ["10.0.0.0/8", "192.168.1.7/24"] }),
      expect: ['frontends.web.priority[0].if.src[1]: expected a network address with its host bits zero, such as 192.168.1.0/24, got "192.168.1.7/24"'],
    },
    {
      name: "CIDR prefix too long",
      input: (c) => (c.frontends.web.priority[0].if = { src: "2001:db8::/129" }),
      expect: ['frontends.web.priority[0].if.src: expected a CIDR prefix length from 0 to 128, got "2001:db8::/129"'],
    },
    {
      name: "invalid regex",
      input: (c) => (c.frontends.web.priority[0].if = { path_reg: "^/api/(v1" }),
      expect: ['frontends.web.priority[0].if.path_reg: expected a regular expression in RE2 syntax (missing closing ): ^/api/(v1), got "^/api/(v1"'],
    },
    {
      name: "lookahead regex",
      input: (c) => (c.frontends.web.priority[0].if = { path_reg: "^/api/(?=v1)" }),
      expect: ['frontends.web.priority[0].if.path_reg: RE2 does not support lookahead (?=…), got "^/api/(?=v1)"'],
    },
    {
      name: "backreference regex",
      input: (c) => (c.frontends.web.priority[0].if = { path_reg: "(a)\\1" }),
      expect: ['frontends.web.priority[0].if.path_reg: RE2 does not support backreferences \\1, got "(a)\\\\1"'],
    },
    {
      name: "lookbehind in a later rule",
      input: (c) =>
        (c.frontends.web.priority = [
          { if: { path_beg: "/a" }, class: 1 },
          { if: { path_reg: "(?<!/admin)/x$" }, class: 2 },
        ]),
      expect: [/^frontends\.web\.priority\[1\]\.if\.path_reg: RE2 does not support negative lookbehind \(\?<!…\), got/],
    },
    {
      name: "regex too costly to match",
      input: (c) => (c.frontends.web.priority[0].if = { path_reg: "^/x[a-z]{500}$" }),
      expect: [/^frontends\.web\.priority\[0\]\.if\.path_reg: expected a smaller regular expression \(it compiles to \d+ RE2 instructions, at most 128;/],
    },
    {
      name: "overlong regex",
      input: (c) => (c.frontends.web.priority[0].if = { path_reg: "a".repeat(300) }),
      expect: [/^frontends\.web\.priority\[0\]\.if\.path_reg: expected a regular expression of 1 to 256 characters, got "a+…\(300 chars\)"$/],
    },
    {
      name: "bad method",
      input: (c) => (c.frontends.web.priority[0].if = { method: ["GET", "GE T"] }),
      expect: ['frontends.web.priority[0].if.method[1]: expected an HTTP method such as GET, got "GE T"'],
    },
    {
      name: "bad header condition",
      input: (c) => (c.frontends.web.priority[0].if = { header: { "x bad": "1", "x-ok": "" } }),
      expect: [
        'frontends.web.priority[0].if.header["x bad"]: expected a header name (an HTTP token of up to 128 characters), got "x bad"',
        /^frontends\.web\.priority\[0\]\.if\.header\.x-ok: expected a header value/,
      ],
    },
    {
      name: "bad host condition",
      input: (c) => (c.frontends.web.priority[0].if = { host: "exa mple.com" }),
      expect: [/^frontends\.web\.priority\[0\]\.if\.host: expected a host name or IP address, optionally with :port, got "exa mple.com"$/],
    },
    {
      name: "missing default_backend target",
      input: (c) => (c.frontends.web.default_backend = "nope"),
      expect: ['frontends.web.default_backend: expected the name of a backend declared under backends (web_servers, echo_servers), got "nope"'],
    },
    {
      name: "default_backend omitted",
      input: (c) => delete c.frontends.echo.default_backend,
      expect: ["frontends.echo.default_backend: expected the name of a backend, got undefined"],
    },
    {
      name: "stats off loopback needs a token",
      input: (c) => (c.stats = { bind: "0.0.0.0:8404" }),
      expect: ["stats.token: expected a token of 16 to 4096 printable ASCII characters when stats.bind is not a loopback address, got undefined"],
    },
    {
      name: "short stats token, never echoed",
      input: (c) => (c.stats.token = "hunter2"),
      expect: ['stats.token: expected a token of 16 to 4096 printable ASCII characters without spaces, got "(7 characters, not shown)"'],
    },
    {
      name: "local policy needs local_share",
      input: (c) => {
        c.on_store_error = "local";
        delete c.local_share;
      },
      expect: ['local_share: expected a number in (0, 1] when on_store_error is "local" (each node\'s share of every maxconn), got undefined'],
    },
    { name: "local_share out of range", input: (c) => (c.local_share = 1.5), expect: ["local_share: expected a number in (0, 1], got 1.5"] },
    {
      name: "unknown store error policy",
      input: (c) => (c.on_store_error = "retry"),
      expect: ['on_store_error: expected one of "fail-closed", "fail-open", "local", got "retry"'],
    },
    {
      name: "bind to a host name",
      input: (c) => (c.frontends.web.bind = "example.com:8080"),
      expect: [/^frontends\.web\.bind: expected an address such as 127\.0\.0\.1:8080, .*, got "example\.com:8080"$/],
    },
    {
      name: "implicit all-interfaces bind",
      input: (c) => (c.frontends.web.bind = ":8080"),
      expect: [/^frontends\.web\.bind: expected an address such as .*, got ":8080"$/],
    },
    {
      name: "bind port out of range",
      input: (c) => (c.frontends.echo.bind = "[::1]:70000"),
      expect: [/^frontends\.echo\.bind: expected an address such as .*, got "\[::1\]:70000"$/],
    },
    {
      name: "two listeners on one address",
      input: (c) => (c.frontends.echo.bind = "127.0.0.1:8080"),
      expect: ['frontends.echo.bind: expected an address not already used by frontends.web.bind, got "127.0.0.1:8080"'],
    },
    {
      name: "wildcard overlaps",
      input: (c) => (c.stats = { bind: "0.0.0.0:8080", token: "0123456789abcdef" }),
      expect: ['stats.bind: expected an address not already used by frontends.web.bind, got "0.0.0.0:8080"'],
    },
    { name: "deny_status not 429/503", input: (c) => (c.frontends.web.deny_status = 404), expect: ["frontends.web.deny_status: expected 429 or 503, got 404"] },
    {
      name: "deny_status on tcp",
      input: (c) => (c.frontends.echo.deny_status = 503),
      expect: ["frontends.echo.deny_status: expected no deny_status in a tcp frontend (a rejected connection is closed), got 503"],
    },
    {
      name: "delay_before_close on http",
      input: (c) => (c.frontends.web.delay_before_close = "1s"),
      expect: ['frontends.web.delay_before_close: expected no delay_before_close in an http frontend (it applies to tcp), got "1s"'],
    },
    {
      name: "frontend timeouts: bad duration, unknown key",
      input: (c) => (c.frontends.web.timeout = { client: "soon", http_request: 0, connect: "1s" }),
      expect: [
        'frontends.web.timeout.connect: expected one of the keys client, http_request, got "connect"',
        /^frontends\.web\.timeout\.client: expected a duration .*, got "soon"$/,
        "frontends.web.timeout.http_request: expected a duration from 1ms to 1d, got 0",
      ],
    },
    {
      name: "client-side settings on tcp",
      input: (c) => {
        c.frontends.echo.timeout = { client: "1s" };
        c.frontends.echo.buffer_request = "1k";
        c.frontends.echo.forwarded_for = { trusted: ["10.0.0.0/8"] };
      },
      expect: [
        /^frontends\.echo\.timeout: expected no timeout in a tcp frontend/,
        /^frontends\.echo\.buffer_request: expected no buffer_request in a tcp frontend/,
        /^frontends\.echo\.forwarded_for: expected no forwarded_for in a tcp frontend/,
      ],
    },
    {
      name: "buffer_request: not a size, too large",
      input: (c) => (c.frontends.web.buffer_request = "lots"),
      expect: [/^frontends\.web\.buffer_request: expected a size such as 64k, 1m or a whole number of bytes, from 0 bytes to 16m, got "lots"$/],
    },
    {
      name: "buffer_request over 16m",
      input: (c) => (c.frontends.web.buffer_request = "17m"),
      expect: [/^frontends\.web\.buffer_request: expected a size .* to 16m, got "17m"$/],
    },
    {
      name: "forwarded_for.trusted: not CIDRs",
      input: (c) => (c.frontends.web.forwarded_for = { trusted: ["10.0.0.1/8", "proxy.example"] }),
      expect: [/^frontends\.web\.forwarded_for\.trusted\[0\]: /, /^frontends\.web\.forwarded_for\.trusted\[1\]: /],
    },
    { name: "unknown mode", input: (c) => (c.frontends.web.mode = "udp"), expect: ['frontends.web.mode: expected one of "http", "tcp", got "udp"'] },
    {
      name: "http conditions in tcp",
      input: (c) => (c.frontends.echo.priority = [{ if: { path_beg: "/x" }, class: 1 }]),
      expect: ['frontends.echo.priority[0].if.path_beg: expected only src conditions in a tcp frontend, got "/x"'],
    },
    {
      name: "header key in tcp",
      input: (c) => (c.frontends.echo.limits = [{ name: "k", key: { header: "x" }, maxconn: 1 }]),
      expect: ['frontends.echo.limits[0].key.header: expected only a src key in a tcp frontend, got "x"'],
    },
    {
      name: "tcp frontend on URL servers",
      input: (c) => (c.backends.echo_servers.servers.echo1.address = "https://echo.example.com"),
      expect: [
        'frontends.echo.default_backend: expected a backend whose servers have host:port addresses (a tcp frontend cannot use URLs), got "echo_servers"',
      ],
    },
    {
      name: "keyed limit without maxconn, two key kinds",
      input: (c) => (c.frontends.web.limits = [{ name: "k", key: { header: "x", src: true } }]),
      expect: [
        "frontends.web.limits[0].maxconn: expected a positive integer (per key value), got undefined",
        /^frontends\.web\.limits\[0\]\.key: expected one of \{ header: <name> \}/,
      ],
    },
    {
      name: "src key prefixes out of range, unknown, or not a number",
      input: (c) =>
        (c.frontends.web.limits = [
          { name: "a", key: { src: { ipv4: 33, ipv6: 129 } }, maxconn: 1 },
          { name: "b", key: { src: { ipv6: "64" } }, maxconn: 1 },
          { name: "c", key: { src: { v6: 64 } }, maxconn: 1 },
          { name: "d", key: { src: "yes" }, maxconn: 1 },
        ]),
      expect: [
        "frontends.web.limits[0].key.src.ipv4: expected an IPv4 prefix length from 0 to 32, got 33",
        "frontends.web.limits[0].key.src.ipv6: expected an IPv6 prefix length from 0 to 128, got 129",
        'frontends.web.limits[1].key.src.ipv6: expected an IPv6 prefix length from 0 to 128, got "64"',
        /^frontends\.web\.limits\[2\]\.key\.src\.v6: expected one of the keys ipv4, ipv6/,
        'frontends.web.limits[3].key.src: expected true, or { ipv4: <prefix length>, ipv6: <prefix length> }, got "yes"',
      ],
    },
    {
      name: "duplicate keyed limit names",
      input: (c) => c.frontends.web.limits.push({ name: "apikey", key: { query: "key" }, maxconn: 2 }),
      expect: ['frontends.web.limits[1].name: expected a name not used by another limit of this frontend, got "apikey"'],
    },
    {
      name: "name with a colon",
      input: (c) => (c.frontends["a:b"] = c.frontends.web),
      expect: ['frontends["a:b"]: expected a frontend name of 1–48 characters from [A-Za-z0-9_.-], starting with a letter or _, got "a:b"'],
    },
    {
      name: "__proto__ as a name",
      input:
        '{"frontends": {"web": {"bind": "127.0.0.1:1", "default_backend": "b"}}, "backends": {"__proto__": {"servers": {"s": {"address": "h:1"}}}, "b": {"servers": {"s": {"address": "h:1"}}}}}',
      expect: ['backends.__proto__: expected a backend name of 1–48 characters from [A-Za-z0-9_.-], starting with a letter or _, got "__proto__"'],
    },
    {
      name: "integer-like server name",
      input: (c) => (c.backends.echo_servers.servers = { "1": { address: "h:1" } }),
      expect: [/^backends\.echo_servers\.servers\["1"\]: expected a server name/],
    },
    {
      name: "server address without port",
      input: (c) => (c.backends.web_servers.servers.web1.address = "127.0.0.1"),
      expect: [/^backends\.web_servers\.servers\.web1\.address: expected host:port .* or an http:\/\/ or https:\/\/ URL, got "127\.0\.0\.1"$/],
    },
    {
      name: "server address with another scheme or credentials",
      input: (c) => {
        c.backends.web_servers.servers.web1.address = "ftp://x:21";
        c.backends.web_servers.servers.web2.address = "https://u:p@x.example";
      },
      expect: [/servers\.web1\.address: expected host:port/, /servers\.web2\.address: expected host:port/],
    },
    {
      name: "server weight out of range, down not boolean",
      input: (c) => {
        c.backends.web_servers.servers.web1.weight = 0;
        c.backends.web_servers.servers.web2.down = "yes";
      },
      expect: [
        "backends.web_servers.servers.web1.weight: expected an integer from 1 to 256, got 0",
        'backends.web_servers.servers.web2.down: expected a boolean, got "yes"',
      ],
    },
    {
      name: "unknown balance",
      input: (c) => (c.backends.web_servers.balance = "random"),
      expect: ['backends.web_servers.balance: expected one of "leastconn", "roundrobin", "first", got "random"'],
    },
    {
      name: "backend without servers",
      input: (c) => (c.backends.echo_servers.servers = {}),
      expect: ["backends.echo_servers.servers: expected at least one server, got an object"],
    },
    { name: "no frontends", input: (c) => (c.frontends = {}), expect: ["frontends: expected at least one frontend, got an object"] },
    {
      name: "unknown store type",
      input: (c) => (c.store = { type: "postgres" }),
      expect: ['store.type: expected one of "memory", "redis", "redis-cluster", "durable-object", got "postgres"'],
    },
    {
      name: "redis without a url, with a token",
      input: (c) => (c.store = { type: "redis", token: "0123456789abcdef" }),
      expect: [
        'store.token: expected no token with store type "redis" (put a Redis password in the URL), got "(16 characters, not shown)"',
        "store.url: expected a Redis URL such as redis://127.0.0.1:6379 or rediss://…, got undefined",
      ],
    },
    {
      name: "redis url credentials are not echoed",
      input: (c) => (c.store = { type: "redis", url: "http://:secret@h:6379" }),
      expect: ['store.url: expected a Redis URL such as redis://127.0.0.1:6379 or rediss://…, got "http://***@h:6379"'],
    },
    {
      name: "durable-object needs a token",
      input: (c) => (c.store = { type: "durable-object", url: "https://w.example/slots" }),
      expect: [/^store\.token: expected a token of 16 to 4096 .*, got undefined$/],
    },
    {
      name: "redis prefix with braces",
      input: (c) => (c.store.prefix = "{x}"),
      expect: ['store.prefix: expected a key prefix of 1–64 characters from [A-Za-z0-9_.:-], got "{x}"'],
    },
    {
      name: "YAML with duplicate keys",
      input: "group: a\nstore: { type: memory }\ngroup: b\n",
      expect: ['group: expected each key once per mapping (again at line 3, column 1), got "group"'],
    },
    {
      name: "JSON with duplicate keys",
      input: '{"group": "a", "group": "b"}',
      expect: ['group: expected each key once per mapping (again at line 1, column 16), got "group"'],
    },
    {
      name: "nested duplicate keys name their path",
      input: "frontends:\n  web:\n    maxconn: 1\n    priority:\n      - { class: 1, class: 2 }\n    maxconn: 2\n",
      expect: [
        'frontends.web.priority[0].class: expected each key once per mapping (again at line 5, column 21), got "class"',
        'frontends.web.maxconn: expected each key once per mapping (again at line 6, column 5), got "maxconn"',
      ],
    },
    { name: "custom tag", input: "group: !env GROUP\n", expect: [/^line 1, column 8: expected no tags/] },
    { name: "YAML 1.1 tag", input: "group: !!binary aGVsbG8=\n", expect: [/^line 1, column 8: expected no tags/] },
    { name: "syntax error", input: "frontends: { web: [\n", expect: [/^line \d+, column \d+: expected valid YAML or JSON \(/] },
    { name: "two documents", input: "group: a\n---\ngroup: b\n", expect: ['line 2, column 1: expected a single document (no ---), got "another document"'] },
    { name: "non-object root", input: "- a\n- b\n", expect: ["(root): expected a mapping of settings (store, group, frontends, backends, …), got an array"] },
    { name: "scalar root", input: "hello", expect: ['(root): expected a mapping of settings (store, group, frontends, backends, …), got "hello"'] },
    { name: "empty file", input: "", expect: ["(root): expected a mapping of settings (store, group, frontends, backends, …), got null"] },
    {
      name: "2 MiB file",
      input: new Uint8Array(2 * 1024 * 1024).fill(0x20),
      expect: [`(file): expected a file of at most ${MAX_CONFIG_BYTES} bytes (1 MiB), got 2097152`],
    },
    {
      name: "non-UTF-8 bytes",
      input: new Uint8Array([0x67, 0x72, 0x6f, 0x75, 0x70, 0x3a, 0x20, 0xff, 0xfe, 0x0a]),
      expect: ['(file): expected UTF-8 text, got "bytes that are not UTF-8"'],
    },
    { name: "control characters", input: "group: a\u0000b\n", expect: ['line 1, column 9: expected text without control characters, got "U+0000"'] },
    {
      name: "deep flow nesting",
      input: "[".repeat(2000) + "]".repeat(2000),
      expect: ['(file): expected mappings and lists nested at most 64 deep, got "deeper nesting"'],
    },
    {
      name: "deep flow nesting again (once crashed V8)",
      input: "{a: ".repeat(3000) + "1" + "}".repeat(3000),
      expect: ['(file): expected mappings and lists nested at most 64 deep, got "deeper nesting"'],
    },
    {
      name: "deep block nesting",
      input: Array.from({ length: 200 }, (_, i) => `${" ".repeat(i)}a:`).join("\n"),
      expect: ['(file): expected mappings and lists nested at most 64 deep, got "deeper nesting"'],
    },
    {
      name: "deep compact sequences",
      input: `${"- ".repeat(500)}x`,
      expect: ['(file): expected mappings and lists nested at most 64 deep, got "deeper nesting"'],
    },
    {
      name: "too many tokens",
      input: `a: [${"1,".repeat(300_000)}]`,
      expect: ['(file): expected at most 200000 YAML tokens (keys, values and punctuation), got "more"'],
    },
    {
      name: "alias bomb",
      input: "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
      expect: ['(file): expected at most 32 alias expansions, got "more (an alias bomb?)"'],
    },
  ];

  it.each(cases)("$name", ({ input, expect: expected }) => {
    let text: string | Uint8Array;
    if (typeof input === "function") {
      const c = clone();
      input(c);
      text = JSON.stringify(c);
    } else {
      text = input;
    }
    const lines = issueLines(text);
    for (const e of expected) {
      if (typeof e === "string") expect(lines).toContain(e);
      else
        expect(
          lines.some((l) => e.test(l)),
          `no line matches ${e}:\n${lines.join("\n")}`,
        ).toBe(true);
    }
  });

  it("has at least 25 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it("reports every problem at once, not only the first", () => {
    const c = clone();
    c.backends.web_servers.servers.web1.maxconn = -1;
    c.frontends.web.bind = "nowhere";
    c.frontends.echo.default_backend = "missing";
    c.typo = true;
    c.backends.web_servers.timeout.queue = "forever";
    let error: unknown;
    try {
      validateEdgeConfig(c);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SlotgateConfigError);
    const paths = (error as SlotgateConfigError).issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "typo",
        "frontends.web.bind",
        "frontends.echo.default_backend",
        "backends.web_servers.servers.web1.maxconn",
        "backends.web_servers.timeout.queue",
      ]),
    );
    expect(paths).toHaveLength(5);
  });

  it("cuts long paths built from hostile keys", () => {
    const c = clone();
    c.frontends.web[`k${"{:\n".repeat(5000)}`] = 1;
    const lines = issueLines(JSON.stringify(c));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.length).toBeLessThan(600);
    expect(lines[0]).toMatch(/^frontends\.web\["k\{:\\n.*…: expected one of the keys bind/);
  });

  it("names at their longest still make valid scopes", async () => {
    const f = `f${"x".repeat(47)}`;
    const l = `l${"y".repeat(47)}`;
    const c = clone();
    c.frontends = { [f]: { ...c.frontends.web, limits: [{ name: l, key: { header: "x-k" }, maxconn: 1 }] } };
    const config = validateEdgeConfig(c);
    const guard = createGuard(toGuardOptions(config));
    try {
      const p = createRequestPlanner(config)(f, { path: "/", headers: { "x-k": "v" } });
      if (!p.ok) throw new Error("expected a plan");
      const r = await guard.acquire(p.options);
      expect(r.ok).toBe(true);
      if (r.ok) await r.lease.release();
    } finally {
      await guard.close();
    }
    c.frontends = { [`${f}z`]: c.frontends[f] };
    expect(issueLines(JSON.stringify(c)).some((line) => /^frontends\.fx+z: expected a frontend name of 1–48/.test(line))).toBe(true);
  });

  it("caps the number of reported problems", () => {
    const c = clone();
    for (let i = 0; i < 500; i++) c[`bad${i}`] = i;
    const issues = (() => {
      try {
        validateEdgeConfig(c);
      } catch (e) {
        return (e as SlotgateConfigError).issues;
      }
      return [];
    })();
    expect(issues).toHaveLength(101);
    expect(issues[100]).toMatchObject({ path: "(root)", received: "400 more" });
  });

  describe("loading files", () => {
    let dir = "";
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "slotgate-config-"));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("a missing file is a config error", async () => {
      await expect(loadEdgeConfig(join(dir, "nope.yaml"))).rejects.toMatchObject({ code: "SLOTGATE_INVALID_CONFIG", path: "(file)" });
    });

    it("a directory is a config error", async () => {
      await expect(loadEdgeConfig(dir)).rejects.toBeInstanceOf(SlotgateConfigError);
    });

    it("a 2 MiB file is refused without being parsed", async () => {
      const file = join(dir, "big.yaml");
      await writeFile(file, Buffer.alloc(2 * 1024 * 1024, "#"));
      await expect(loadEdgeConfig(file)).rejects.toThrow(`(file): expected a file of at most ${MAX_CONFIG_BYTES} bytes (1 MiB), got 2097152`);
    });

    it("a JSON file loads", async () => {
      const file = join(dir, "edge.json");
      await writeFile(file, JSON.stringify(base, null, 2));
      expect((await loadEdgeConfig(file)).group).toBe("shop");
    });
  });
});

describe("durations", () => {
  it.each([
    ["30s", 30_000],
    ["500ms", 500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1500],
    ["0.25m", 15_000],
    [" 5s ", 5000],
    ["500", 500],
    [500, 500],
    [0, 0],
    ["-250ms", -250],
  ] as const)("%j is %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    ["30S"],
    ["1m30s"],
    ["0.5ms"],
    ["1.0001s"],
    ["s"],
    [""],
    ["1e3"],
    [1.5],
    [Number.NaN],
    [Infinity],
    [null],
    [true],
    [{}],
    ["9".repeat(41)],
    ["99999999999999d"],
  ])("%j is not a duration", (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });

  it("toMilliseconds throws a config error naming the path and range", () => {
    expect(toMilliseconds("2s", "x")).toBe(2000);
    expect(() => toMilliseconds("2x", "a.b")).toThrow(/^a\.b: expected a duration such as/);
    expect(() => toMilliseconds("-1s", "a.b")).toThrow('a.b: expected a duration from 0ms to 1d, got "-1s"');
  });

  it("formats durations", () => {
    expect([0, 1500, 30_000, 120_000, 3_600_000, -524_287].map(formatDuration)).toEqual(["0ms", "1500ms", "30s", "2m", "1h", "-524287ms"]);
  });
});

describe("addresses, CIDRs and regexes", () => {
  it("parses IPv4 and IPv6, mapped IPv4 as IPv4", () => {
    expect(formatIp(parseIp("10.1.2.3")!)).toBe("10.1.2.3");
    expect(formatIp(parseIp("2001:DB8:0:0:0:0:0:1")!)).toBe("2001:db8::1");
    expect(formatIp(parseIp("::ffff:192.0.2.1")!)).toBe("192.0.2.1");
    expect(formatIp(parseIp("[fe80::1%eth0]")!)).toBe("fe80::1");
    expect(formatIp(parseIp("::")!)).toBe("::");
    expect(formatIp(parseIp("1:0:0:2:0:0:0:3")!)).toBe("1:0:0:2::3");
    for (const bad of ["010.0.0.1", "1.2.3", "256.1.1.1", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "::g", "", "a.b.c.d", "1.2.3.4::"]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it("parses CIDRs", () => {
    expect(parseCidr("10.0.0.0/8")).toMatchObject({ ok: true, cidr: { prefix: 8 } });
    expect(parseCidr("2001:db8::/32")).toMatchObject({ ok: true, cidr: { prefix: 32 } });
    expect(parseCidr("192.0.2.7")).toMatchObject({ ok: true, cidr: { prefix: 32 } });
    expect(parseCidr("0.0.0.0/0")).toMatchObject({ ok: true });
    for (const bad of ["10.0.0.0/33", "10.0.0.0/08", "10.0.0.1/8", "::ffff:10.0.0.0/104", "fe80::1%eth0", "10.0.0.0/", "x/8"]) {
      expect(parseCidr(bad).ok, bad).toBe(false);
    }
  });

  it("path_reg is RE2: constructs that need backtracking are refused, by name", () => {
    for (const ok of ["^/api/v[0-9]+/", "\\.(png|jpe?g)$", "^/(?:a|b)/x+", "(ab)?c", "[(+)]+", "^/a{2,3}", "(x+)?y", "^/(?P<v>v[0-9])/", "(?i)^/admin"]) {
      expect(compilePathRegex(ok).ok, ok).toBe(true);
    }
    const refused: Array<[string, string]> = [
      ["(a)\\1", "backreferences \\1"],
      ["(?<n>a)\\k<n>", "named backreferences \\k<name>"],
      ["(?P<n>a)(?P=n)", "(?P=name) backreferences or (?P>name) calls"],
      ["^/a(?=b)", "lookahead (?=…)"],
      ["^/a(?!b)", "negative lookahead (?!…)"],
      ["(?<=/api)/x", "lookbehind (?<=…)"],
      ["(?<!/api)/x", "negative lookbehind (?<!…)"],
      ["^/a++", "possessive quantifiers such as a++ or a*+"],
      ["^/a*+", "possessive quantifiers such as a++ or a*+"],
      ["^/a{2,}+", "possessive quantifiers such as a++ or a*+"],
      ["(?>a|ab)c", "atomic groups (?>…)"],
      ["(?R)", "recursion and subroutine calls such as (?R)"],
      ["a(?#note)", "comments (?#…)"],
      ["\\Z", "the escape \\Z"],
    ];
    for (const [source, construct] of refused) {
      const r = compilePathRegex(source);
      expect(r.ok ? undefined : r.unsupported, source).toBe(`RE2 does not support ${construct}`);
    }
    for (const bad of ["[", "(?<", "a{1001}", "", "a".repeat(257), "x[a-z]{200}"]) {
      const r = compilePathRegex(bad);
      expect(r.ok, bad).toBe(false);
      expect(r.ok ? undefined : r.unsupported, bad).toBeUndefined();
    }
  });

  it("path_reg: patterns that backtrack catastrophically in JavaScript compile and match in linear time", () => {
    // Each took seconds to hours (JavaScript's RegExp) on these 4 KiB paths; RE2 answers at once.
    const slash = `/api/${"/".repeat(MAX_REGEX_INPUT - 5)}`;
    // The polynomial pattern comes last: where it is accepted by a backtracking engine, it would
    // not fail this test but freeze it for hours.
    const cases: Array<[string, string, boolean]> = [
      ["^(a+)+$", `/${"a".repeat(MAX_REGEX_INPUT - 2)}!`, false],
      ["^/(a+)+$", `/${"a".repeat(MAX_REGEX_INPUT - 1)}`, true],
      ["(x+x+)+y", `/${"x".repeat(MAX_REGEX_INPUT - 1)}`, false],
      ["(x+x+)+y", `/${"x".repeat(MAX_REGEX_INPUT - 2)}y`, true],
      ["^/(a|ab)*$", `/${"ab".repeat(2000)}c`, false],
      ["^/(\\w+\\s?)+$", `/${"a".repeat(MAX_REGEX_INPUT - 2)}!`, false],
      ["^/api/.*/.*/.*/.*/x$", `${slash.slice(0, -1)}x`, true],
      ["^/api/.*/.*/.*/.*/x$", slash, false],
    ];
    for (const [pathReg, path, want] of cases) {
      expect(path.length).toBeLessThanOrEqual(MAX_REGEX_INPUT);
      const matches = compileConditions({ pathReg });
      const started = performance.now();
      expect(matches({ path }), pathReg).toBe(want);
      // Generous for a loaded CI machine; the backtracking engine took seconds or more here.
      expect(performance.now() - started, pathReg).toBeLessThan(50);
    }
  });
});

describe("matching", () => {
  const m = (c: Conditions, facts: RequestFacts) => compileConditions(c)(facts);

  it("path_beg: any prefix, path only, absolute-form too", () => {
    const c = { pathBeg: ["/checkout/", "/cart"] };
    expect(m(c, { path: "/checkout/pay?x=1" })).toBe(true);
    expect(m(c, { path: "/cart" })).toBe(true);
    expect(m(c, { path: "http://shop.example/cart/1" })).toBe(true);
    expect(m(c, { path: "/x?/checkout/" })).toBe(false);
    expect(m(c, {})).toBe(false);
  });

  it("path_reg: on the path only, with an input cap", () => {
    const c = { pathReg: "^/api/v[0-9]+/" };
    expect(m(c, { path: "/api/v2/users" })).toBe(true);
    expect(m(c, { path: "/x?/api/v2/" })).toBe(false);
    expect(m({ pathReg: "x$" }, { path: `/${"a".repeat(MAX_REGEX_INPUT)}x` })).toBe(false);
  });

  it("method: upper-case names, any of them", () => {
    const c = { method: ["POST", "PUT"] };
    expect(m(c, { method: "PUT" })).toBe(true);
    expect(m(c, { method: "GET" })).toBe(false);
    expect(m(c, {})).toBe(false);
  });

  it("host: case-insensitive, port ignored unless configured", () => {
    expect(m({ host: ["shop.example"] }, { headers: { host: "Shop.Example:8080" } })).toBe(true);
    expect(m({ host: ["shop.example"] }, { host: "other.example" })).toBe(false);
    expect(m({ host: ["shop.example:8443"] }, { host: "shop.example:8080" })).toBe(false);
    expect(m({ host: ["[::1]"] }, { host: "[::1]:8080" })).toBe(true);
    expect(m({ host: ["shop.example"] }, {})).toBe(false);
  });

  it("header: every named header, any listed value; records, arrays and Web Headers", () => {
    const c = { header: { "x-tier": ["gold", "silver"], "x-env": ["prod"] } };
    expect(m(c, { headers: { "x-tier": "gold", "x-env": "prod" } })).toBe(true);
    expect(m(c, { headers: { "x-tier": ["bronze", "silver"], "x-env": "prod" } })).toBe(true);
    expect(m(c, { headers: { "x-tier": "gold" } })).toBe(false);
    expect(m(c, { headers: { "x-tier": "Gold", "x-env": "prod" } })).toBe(false);
    expect(m(c, { headers: new Headers({ "X-Tier": "silver", "X-Env": "prod" }) })).toBe(true);
    expect(m({ header: { constructor: ["x"] } }, { headers: {} })).toBe(false);
  });

  it("src: IPv4, IPv6, mapped addresses, zones, garbage", () => {
    const c = { src: ["10.0.0.0/8", "2001:db8::/32"] };
    expect(m(c, { src: "10.1.2.3" })).toBe(true);
    expect(m(c, { src: "::ffff:10.1.2.3" })).toBe(true);
    expect(m(c, { src: "2001:db8:1::5" })).toBe(true);
    expect(m(c, { src: "11.0.0.1" })).toBe(false);
    expect(m(c, { src: "2001:db9::1" })).toBe(false);
    expect(m({ src: ["fe80::/10"] }, { src: "fe80::1%eth0" })).toBe(true);
    expect(m(c, { src: "not an ip" })).toBe(false);
    expect(m(c, {})).toBe(false);
  });

  it("kinds are ANDed", () => {
    const c = { method: ["POST"], pathBeg: ["/api/"] };
    expect(m(c, { method: "POST", path: "/api/x" })).toBe(true);
    expect(m(c, { method: "GET", path: "/api/x" })).toBe(false);
    expect(m(c, { method: "POST", path: "/x" })).toBe(false);
  });

  it("key values: header, query, path, src with masks", () => {
    const facts: RequestFacts = { path: "/a/b?tenant=acme&x=1", headers: { "x-api-key": ["k1", "k2"] }, src: "2001:db8:1:2:3:4:5:6" };
    expect(keyValue({ kind: "header", name: "x-api-key" }, facts)).toBe("k1");
    expect(keyValue({ kind: "header", name: "x-none" }, facts)).toBeUndefined();
    expect(keyValue({ kind: "header", name: "x-api-key" }, { headers: { "x-api-key": "" } })).toBeUndefined();
    expect(keyValue({ kind: "query", name: "tenant" }, facts)).toBe("acme");
    expect(keyValue({ kind: "query", name: "none" }, facts)).toBeUndefined();
    expect(keyValue({ kind: "path" }, facts)).toBe("/a/b");
    expect(keyValue({ kind: "src", ipv4Prefix: 32, ipv6Prefix: 128 }, facts)).toBe("2001:db8:1:2:3:4:5:6");
    expect(keyValue({ kind: "src", ipv4Prefix: 24, ipv6Prefix: 64 }, facts)).toBe("2001:db8:1:2::");
    expect(keyValue({ kind: "src", ipv4Prefix: 24, ipv6Prefix: 64 }, { src: "::ffff:192.0.2.77" })).toBe("192.0.2.0");
    expect(keyValue({ kind: "src", ipv4Prefix: 32, ipv6Prefix: 128 }, { src: "junk" })).toBeUndefined();
  });
});

describe("to guard options and acquire plans", () => {
  let config: EdgeConfig;
  beforeAll(() => {
    config = parseEdgeConfig(edgeText);
  });

  it("maps limits and backends", () => {
    const o = toGuardOptions(config);
    expect(o.group).toBe("shop");
    expect(o.onStoreError).toBe("fail-closed");
    expect(o.localShare).toBe(0.34);
    expect(o.limits).toEqual({ global: 60000, "frontend:web": 1000, "frontend:web:apikey": { perKey: 20 }, "frontend:echo": 1 });
    expect(o.backends.web_servers).toEqual({
      balance: "leastconn",
      max: 800,
      maxqueue: 1000,
      servers: { web1: { max: 500, weight: 1 }, web2: { max: 500, weight: 2 } },
    });
    expect(o.backends.echo_servers).toEqual({ balance: "roundrobin", servers: { echo1: { weight: 1 } } });
  });

  it("applies default_server and down", () => {
    const c = clone();
    c.backends.web_servers.default_server = { maxconn: 30, maxqueue: 7, weight: 3 };
    c.backends.web_servers.servers.web1 = { address: "127.0.0.1:9001", down: true };
    const o = toGuardOptions(validateEdgeConfig(c));
    expect(o.backends.web_servers!.servers).toEqual({ web1: { max: 30, maxqueue: 7, weight: 3, down: true }, web2: { max: 500, maxqueue: 7, weight: 2 } });
  });

  it("plans the chain: scopes, backend, priority, timeouts", () => {
    const plan = createRequestPlanner(config);
    const p1 = plan("web", { method: "POST", path: "/checkout/pay", headers: { "x-api-key": "acme" }, src: "127.0.0.1" });
    expect(p1).toMatchObject({
      ok: true,
      options: {
        scopes: ["global", "frontend:web", "frontend:web:apikey:acme"],
        backend: "web_servers",
        priority: { class: 1, offsetMs: 0 },
        queueTimeoutMs: 30000,
        leaseTtlMs: 30000,
      },
    });
    const p2 = plan("web", { method: "GET", path: "/", headers: {} });
    expect(p2).toMatchObject({ ok: true, options: { scopes: ["global", "frontend:web"], priority: { class: 2, offsetMs: 0 } } });
    const p3 = plan("echo", { src: "10.0.0.1" });
    expect(p3).toMatchObject({ ok: true, options: { scopes: ["global", "frontend:echo"], backend: "echo_servers", queueTimeoutMs: 5000 } });
    expect((p3 as { options: { priority?: unknown } }).options.priority).toBeUndefined();
  });

  it("no global scope without global.maxconn; unmatched rules give no priority", () => {
    const c = clone();
    delete c.global;
    c.frontends.web.priority = [{ if: { method: "DELETE" }, offset: "-2s" }];
    const plan = createRequestPlanner(validateEdgeConfig(c));
    expect(plan("web", { method: "GET", path: "/" })).toMatchObject({ ok: true, options: { scopes: ["frontend:web"] } });
    expect(plan("web", { method: "DELETE", path: "/" })).toMatchObject({ ok: true, options: { priority: { class: 0, offsetMs: -2000 } } });
  });

  it("src keys: the /32 of IPv4 and the /64 of IPv6 by default, mapped IPv4 as IPv4, never a header", () => {
    const withKey = (key: Json) => {
      const c = clone();
      c.frontends.web.limits = [{ name: "ip", key, maxconn: 1 }];
      return validateEdgeConfig(c);
    };
    expect(withKey({ src: true }).frontends.web!.limits[0]!.key).toEqual({ kind: "src", ipv4Prefix: 32, ipv6Prefix: 64 });
    expect(withKey({ src: { ipv4: 24 } }).frontends.web!.limits[0]!.key).toEqual({ kind: "src", ipv4Prefix: 24, ipv6Prefix: 64 });
    expect(withKey({ src: { ipv6: 128 } }).frontends.web!.limits[0]!.key).toEqual({ kind: "src", ipv4Prefix: 32, ipv6Prefix: 128 });

    const plan = createRequestPlanner(withKey({ src: true }));
    const scopeOf = (facts: RequestFacts) => {
      const p = plan("web", { method: "GET", path: "/", ...facts });
      if (!p.ok) throw new Error(p.message);
      return p.options.scopes.find((x) => x.startsWith("frontend:web:ip:"));
    };
    // Rotating through one's own /64 gives no fresh slot.
    const v6 = scopeOf({ src: "2001:db8:1:2::5" });
    expect(v6).toBe("frontend:web:ip:2001:db8:1:2::");
    expect(scopeOf({ src: "2001:db8:1:2:ffff:ffff:ffff:ffff" })).toBe(v6);
    expect(scopeOf({ src: "2001:db8:1:2:a:b:c:d%eth0" })).toBe(v6);
    expect(scopeOf({ src: "2001:db8:1:3::5" })).not.toBe(v6);
    // IPv4, and IPv4 as a dual-stack socket reports it, are one key; a neighbour is another.
    const v4 = scopeOf({ src: "192.0.2.7" });
    expect(v4).toBe("frontend:web:ip:192.0.2.7");
    expect(scopeOf({ src: "::ffff:192.0.2.7" })).toBe(v4);
    expect(scopeOf({ src: "::ffff:c000:207" })).toBe(v4);
    expect(scopeOf({ src: "192.0.2.8" })).not.toBe(v4);
    // Headers a client can write never choose the key.
    const spoof = { "x-forwarded-for": "198.51.100.1", "x-real-ip": "198.51.100.1", forwarded: "for=198.51.100.1", "cf-connecting-ip": "198.51.100.1" };
    expect(scopeOf({ src: "192.0.2.7", headers: spoof })).toBe(v4);
    expect(scopeOf({ headers: spoof })).toBeUndefined();
  });

  it("src conditions look at the connection's address only, never a header", () => {
    const c = clone();
    c.frontends.web.priority = [{ if: { src: "10.0.0.0/8" }, class: 1 }, { class: 5 }];
    const plan = createRequestPlanner(validateEdgeConfig(c));
    const classOf = (facts: RequestFacts) => {
      const p = plan("web", { method: "GET", path: "/", ...facts });
      return p.ok ? p.options.priority?.class : undefined;
    };
    expect(classOf({ src: "10.1.2.3" })).toBe(1);
    expect(classOf({ src: "::ffff:10.1.2.3" })).toBe(1);
    expect(classOf({ src: "192.0.2.7", headers: { "x-forwarded-for": "10.1.2.3", "x-real-ip": "10.1.2.3", forwarded: "for=10.1.2.3" } })).toBe(5);
  });

  it("an over-long key value is answered with a 4xx, not admitted", () => {
    const plan = createRequestPlanner(config);
    expect(plan("web", { path: "/", headers: { "x-api-key": "k".repeat(2000) } })).toMatchObject({ ok: false, status: 431 });
    const c = clone();
    c.frontends.web.limits = [{ name: "p", key: { path: true }, maxconn: 1 }];
    expect(createRequestPlanner(validateEdgeConfig(c))("web", { path: `/${"p".repeat(2000)}` })).toMatchObject({ ok: false, status: 414 });
  });

  it("an unknown frontend is a fault", () => {
    const plan = createRequestPlanner(config);
    expect(() => plan("toString", {})).toThrow(SlotgateError);
  });

  it("the guard accepts the options and the plans", async () => {
    const guard = createGuard(toGuardOptions(config));
    const plan = createRequestPlanner(config);
    try {
      const p = plan("web", { method: "GET", path: "/checkout/", headers: { "x-api-key": "acme:{evil}\n" }, src: "127.0.0.1" });
      if (!p.ok) throw new Error("expected a plan");
      const r = await guard.acquire(p.options);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(["web1", "web2"]).toContain(r.lease.server);
        await r.lease.release();
      }
    } finally {
      await guard.close();
    }
  });
});

describe("fuzz: the loader returns a config or throws a SlotgateConfigError", () => {
  const HOSTILE: unknown[] = [
    "{",
    "}",
    "{{}}",
    ":",
    "a: b",
    "\n",
    "line1\nline2",
    "x".repeat(10 * 1024),
    "\u0000",
    "\ud800",
    "__proto__",
    "constructor",
    "toString",
    "*",
    "&a",
    "!!binary",
    "-1",
    "1e309",
    "NaN",
    "127.0.0.1:0",
    "[::]:80",
    "0.0.0.0/0",
    "(a+)+",
    "https://x",
    "30s",
    "-524287ms",
    "",
    " ",
    "😀",
    "../../etc/passwd",
    0,
    -1,
    1,
    2047,
    -2048,
    1.5,
    1e10,
    Number.MAX_SAFE_INTEGER,
    true,
    false,
    null,
    [],
    {},
    [1, "a", null],
    { a: { b: { c: "d" } } },
    { __proto__: null, x: 1 },
  ];

  type Container = Record<string, unknown> | unknown[];
  function collectPaths(value: unknown, path: Array<string | number>, out: Array<Array<string | number>>): void {
    out.push(path);
    if (Array.isArray(value)) value.forEach((v, i) => collectPaths(v, [...path, i], out));
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) collectPaths(v, [...path, k], out);
  }

  function mutateObject(rand: () => number, obj: Record<string, unknown>): void {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const n = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < n; k++) {
      const paths: Array<Array<string | number>> = [];
      collectPaths(obj, [], paths);
      const path = pick(paths.slice(1));
      if (!path) return;
      let parent: Container = obj;
      for (const seg of path.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[seg] as Container;
      const key = path[path.length - 1]!;
      const op = Math.floor(rand() * 5);
      const rec = parent as Record<string | number, unknown>;
      if (op === 0) {
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete rec[key];
      } else if (op === 1 || op === 2) {
        rec[key] = structuredClone(pick(HOSTILE));
      } else if (op === 3 && !Array.isArray(parent)) {
        const name = pick(HOSTILE);
        rec[(typeof name === "string" ? name : (JSON.stringify(name) ?? "k")).slice(0, 200)] = structuredClone(pick(HOSTILE));
      } else {
        const v = rec[key];
        rec[key] =
          typeof v === "string"
            ? v + pick(["{", ":", "\n", "}", "x".repeat(10240), "%", "\u0085"])
            : typeof v === "number"
              ? -v
              : Array.isArray(v)
                ? {}
                : v && typeof v === "object"
                  ? [v]
                  : String(v);
      }
    }
  }

  function mutateBytes(rand: () => number, text: string): Uint8Array {
    const bytes = Array.from(new TextEncoder().encode(text));
    const n = 1 + Math.floor(rand() * 6);
    for (let k = 0; k < n; k++) {
      const at = Math.floor(rand() * (bytes.length + 1));
      const op = Math.floor(rand() * 5);
      if (op === 0) bytes.splice(at, 1 + Math.floor(rand() * 20));
      else if (op === 1 && rand() < 0.3) bytes.splice(at, 0, 0xff, 0xfe, 0xc3, 0x28);
      else if (op === 2)
        bytes.splice(
          at,
          0,
          ...new TextEncoder().encode(["{", "}", ":", "\n", "- ", "&a ", "*a", "!!str ", "? ", "---\n", "'", '"', "\t", "[", "]"][Math.floor(rand() * 15)]!),
        );
      else if (op === 3) bytes.splice(at, 0, Math.floor(rand() * 256));
      else bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(rand() * 200)));
    }
    return new Uint8Array(bytes);
  }

  it.each(testSeeds([0x5107_6a7e]))(
    "2,000 seeded mutations of the valid example (seed %i)",
    async (seed) => {
      const rand = mulberry32(seed);
      const hint = replayHint(seed, "test/node/config.test.ts");
      let loaded = 0;
      let rejected = 0;
      for (let i = 0; i < 2000; i++) {
        let input: string | Uint8Array;
        if (rand() < 0.6) {
          const obj = clone();
          mutateObject(rand, obj);
          input = rand() < 0.5 ? JSON.stringify(obj) : stringifyYaml(obj);
        } else {
          input = mutateBytes(rand, edgeText);
        }
        const t0 = Date.now();
        let config: EdgeConfig | undefined;
        try {
          config = parseEdgeConfig(input);
          loaded++;
        } catch (error) {
          if (!(error instanceof SlotgateConfigError) || error.code !== "SLOTGATE_INVALID_CONFIG") {
            throw new Error(`case ${i}: unexpected ${String(error)} (${hint})`, { cause: error });
          }
          expect(error.issues.length).toBeGreaterThan(0);
          for (const issue of error.issues) {
            expect(typeof issue.path).toBe("string");
            expect(typeof issue.expected).toBe("string");
          }
          // Hostile input is never echoed whole.
          expect(error.message.length).toBeLessThan(101 * 600);
          rejected++;
        }
        expect(Date.now() - t0, `case ${i} took too long (${hint})`).toBeLessThan(2000);
        if (config) {
          // A config that validates is one the library accepts.
          const guard = createGuard(toGuardOptions(config));
          await guard.close();
          const plan = createRequestPlanner(config);
          for (const name of Object.keys(config.frontends)) {
            plan(name, { method: "GET", path: "/checkout/x?tenant=a", headers: { "x-api-key": "k", host: "h" }, src: "10.0.0.1" });
          }
        }
      }
      expect(loaded + rejected).toBe(2000);
      expect(loaded).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(1000);
    },
    60_000,
  );
});

describe("hostile keys and values through the schemas", () => {
  const minimal = () => ({
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app" } },
    backends: { app: { servers: { s1: { address: "127.0.0.1:9" } } } },
  });
  const withKey = (obj: Record<string, unknown>, key: string, value: unknown) =>
    Object.defineProperty(obj, key, { value, enumerable: true, configurable: true, writable: true });
  const problems = (raw: unknown): string[] => rejection(() => validateEdgeConfig(raw));

  // Each section, with an own key named like a prototype member: an unknown key, never a prototype.
  const sections: Array<[string, (c: ReturnType<typeof minimal> & Record<string, unknown>) => Record<string, unknown>]> = [
    ["(top)", (c) => c],
    ["store", (c) => ((c.store = { type: "memory" }), c.store as Record<string, unknown>)],
    ["frontends.web", (c) => c.frontends.web],
    ["backends.app", (c) => c.backends.app],
    ["backends.app.servers.s1", (c) => c.backends.app.servers.s1],
    ["stats", (c) => ((c.stats = { bind: "127.0.0.1:0" }), c.stats as Record<string, unknown>)],
    ["log", (c) => ((c.log = {}), c.log as Record<string, unknown>)],
  ];
  for (const key of ["__proto__", "constructor", "prototype"]) {
    for (const [where, section] of sections) {
      it(`${key} as a key of ${where} is an unknown key`, () => {
        const c = minimal() as ReturnType<typeof minimal> & Record<string, unknown>;
        withKey(section(c), key, { polluted: true });
        const lines = problems(c);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`${key}: expected one of the keys `));
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });
    }
  }

  it("constructor and toString are names like any other, read from own keys only", () => {
    const c = minimal() as Loose;
    c.backends = { constructor: { servers: { toString: { address: "127.0.0.1:9", maxconn: 3 } } } };
    c.frontends.web.default_backend = "constructor";
    const config = validateEdgeConfig(c);
    expect(Object.keys(config.backends)).toEqual(["constructor"]);
    expect(Object.values(config.backends)[0]!.servers.map((s) => [s.name, s.maxconn])).toEqual([["toString", 3]]);
    // A section that does not declare them does not find Object.prototype's.
    const other = validateEdgeConfig(minimal());
    expect(Object.hasOwn(other.backends, "constructor")).toBe(false);
    expect(other.backends.constructor).toBeUndefined();
  });

  it("__proto__ as a frontend, server, header or limit name is refused by name", () => {
    const c = minimal() as Loose;
    withKey(c.backends.app.servers, "__proto__", { address: "127.0.0.1:9" });
    c.frontends.web.priority = [{ if: { header: JSON.parse('{"__proto__": "x"}') }, class: 1 }];
    c.frontends.web.limits = [{ name: "__proto__", key: { header: "x-k" }, maxconn: 1 }];
    const lines = problems(c);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^backends\.app\.servers\.__proto__: expected a server name/),
        expect.stringMatching(/^frontends\.web\.priority\[0\]\.if\.header\.__proto__: expected a header name/),
        expect.stringMatching(/^frontends\.web\.limits\[0\]\.name: expected a limit name/),
      ]),
    );
    expect(({} as Record<string, unknown>).address).toBeUndefined();
  });

  it("non-plain objects, huge lists and deep values where a section is expected get a clean error", () => {
    class Section {
      bind = "127.0.0.1:0";
      default_backend = "app";
    }
    const cases: Array<[string, (c: Loose) => void, RegExp]> = [
      ["a class instance", (c) => (c.frontends.web = new Section()), /^frontends\.web: expected an object, got an object$/],
      ["a Map", (c) => (c.backends.app.servers = new Map([["s1", { address: "127.0.0.1:9" }]])), /^backends\.app\.servers: expected an object/],
      ["a Date", (c) => (c.store = new Date(0)), /^store: expected an object/],
      ["an array", (c) => (c.backends = [c.backends.app]), /^backends: expected an object, got an array$/],
      ["a function", (c) => (c.log = () => ({ query: true })), /^log: expected an object, got a function$/],
      [
        "a million rules",
        (c) => (c.frontends.web.priority = new Array(1_000_000).fill({ class: 1 })),
        /^frontends\.web\.priority: expected a list of up to 256 rules/,
      ],
      [
        "a million trusted proxies",
        (c) => (c.frontends.web.forwarded_for = { trusted: new Array(1_000_000).fill("10.0.0.0/8") }),
        /^frontends\.web\.forwarded_for\.trusted: expected a CIDR/,
      ],
      [
        "a deeply nested value",
        (c) => {
          let deep: unknown = 1;
          for (let i = 0; i < 100_000; i++) deep = { a: deep };
          c.backends.app.servers.s1.maxconn = deep;
        },
        /^backends\.app\.servers\.s1\.maxconn: expected a positive integer, got an object$/,
      ],
    ];
    for (const [what, mutate, expected] of cases) {
      const c = minimal() as Loose;
      mutate(c);
      const started = Date.now();
      expect(problems(c), what).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
      expect(Date.now() - started, what).toBeLessThan(2_000);
    }
  });
});
