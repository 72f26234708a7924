// URL credentials in what `slotgate check` and `slotgate serve` print, and error text in logs. A
// config written with `https://user:password@host/` server addresses (refused: they must not be
// sent as-is) must be reported without the password, however long, and whichever key holds it.

import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeValue } from "../../src/core/errors.js";
import { errorFields } from "../../src/node/logger.js";
import { ensureBuilt, killChildren, run, start, useConfigDir } from "../support/cli.js";
import { closedPort } from "../support/origin.js";

const PASSWORD = "Pa55-w0rd-SECRET";
// Longer than the 60 characters an error message shows of a value: cutting first would leave the
// start of the password in the message without the "@" that marks it as one.
const LONG_PASSWORD = `LONGSECRET${"x".repeat(80)}`;

beforeAll(ensureBuilt, 120_000);
const writeConfig = useConfigDir();
afterEach(() => killChildren());

function configWith(address: string, extra: Record<string, unknown> = {}) {
  return {
    frontends: { web: { bind: "127.0.0.1:0", default_backend: "app" } },
    backends: { app: { servers: { a: { address } } } },
    ...extra,
  };
}

function expectNoPassword(text: string): void {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain("LONGSECRET");
  expect(text).not.toContain("xxxxxxxxxx");
}

describe("slotgate check", () => {
  it("names the path of a server address with credentials without printing them", async () => {
    const file = await writeConfig("creds.yaml", configWith(`https://admin:${PASSWORD}@origin.example/`));
    const r = await run(["check", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("backends.app.servers.a.address: expected");
    expect(r.stderr).toContain("***@origin.example");
    expectNoPassword(r.stdout + r.stderr);
  });

  it("redacts a long password, a password with an '@', and a bare token as user name", async () => {
    for (const address of [
      `https://admin:${LONG_PASSWORD}@origin.example/`,
      `https://admin:p@${PASSWORD}@origin.example/`,
      `https://${PASSWORD}@origin.example/`,
      `admin:${PASSWORD}@origin.example:80`,
    ]) {
      const file = await writeConfig("creds2.yaml", configWith(address));
      const r = await run(["check", "-c", file]);
      expect(r.code, address).toBe(1);
      expect(r.stderr).toContain("backends.app.servers.a.address:");
      expectNoPassword(r.stdout + r.stderr);
    }
  });

  it("redacts credentials in any URL-valued key, e.g. a url where the store takes none", async () => {
    const file = await writeConfig("creds3.yaml", configWith("127.0.0.1:9001", { store: { type: "memory", url: `redis://admin:${PASSWORD}@127.0.0.1:6379` } }));
    const r = await run(["check", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("store.url:");
    expectNoPassword(r.stdout + r.stderr);
  });
});

describe("slotgate serve", () => {
  it("reports an invalid config without the credentials", async () => {
    const file = await writeConfig("serve-creds.yaml", configWith(`https://admin:${PASSWORD}@origin.example/`));
    const r = await run(["serve", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("backends.app.servers.a.address:");
    expectNoPassword(r.stdout + r.stderr);
  });

  it("never logs the Redis password at startup, with the store unreachable", async () => {
    const port = await closedPort();
    const file = await writeConfig(
      "serve-redis.yaml",
      configWith("127.0.0.1:9001", { store: { type: "redis", url: `redis://admin:${PASSWORD}@127.0.0.1:${port}` } }),
    );
    const server = start(["serve", "-c", file, "--grace", "0"]);
    // The node starts anyway (fail-closed) once the store has not answered within 5 s.
    await server.waitFor("edge node started", 15_000);
    server.child.kill("SIGTERM");
    await server.exited;
    expect(server.lines.some((l) => l.msg === "store not reachable yet; serving with on_store_error fail-closed")).toBe(true);
    expectNoPassword(JSON.stringify(server.lines) + server.stderr());
  });
});

describe("error text in logs", () => {
  it("blanks URL credentials and a keyed-limit value named in a core error message", () => {
    const fields = errorFields(new Error(`unknown scope: frontend:web:apikey:sk_live_SECRETKEY and connect https://u:${PASSWORD}@h/ failed`));
    expect(String(fields.message)).toContain("frontend:web:apikey:[key value not logged]");
    expect(String(fields.message)).not.toContain("SECRETKEY");
    expectNoPassword(String(fields.message));
    expect(describeValue(`https://admin:${LONG_PASSWORD}@h/`)).not.toContain("LONGSECRET");
  });
});
