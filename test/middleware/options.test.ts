// Bad options fail when the middleware is made (fastify: when the plugin is registered), with
// the option's path, as the guard's do. In-process, memory store, no server.
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { createGuard, SlotgateConfigError } from "../../src/index.js";
import { slotgate as expressSlotgate } from "../../src/middleware/express.js";
import fastifySlotgate from "../../src/middleware/fastify.js";
import { slotgate as honoSlotgate } from "../../src/middleware/hono.js";

const guard = createGuard({ limits: { global: 1 } });

/** Each case: options, then the paths the error must name. */
const CASES: Array<[string, Record<string, unknown>, string[]]> = [
  ["no guard", {}, ["guard"]],
  ["a guard that is not one", { guard: { acquire: 1 } }, ["guard"]],
  ["scopes not an array", { guard, scopes: "global" }, ["scopes"]],
  ["a scope not a string", { guard, scopes: ["global", 7] }, ["scopes[1]"]],
  ["backend not a name", { guard, backend: 3 }, ["backend"]],
  ["priority class out of range", { guard, priority: { class: 5000 } }, ["priority.class"]],
  ["priority with an unknown key", { guard, priority: { klass: 1 } }, ["priority.klass"]],
  ["negative queue timeout", { guard, queueTimeoutMs: -1 }, ["queueTimeoutMs"]],
  ["zero lease TTL", { guard, leaseTtlMs: 0 }, ["leaseTtlMs"]],
  ["denyStatus not 503 or 429", { guard, denyStatus: 500 }, ["denyStatus"]],
  ["onRejected not a function", { guard, onRejected: "busy" }, ["onRejected"]],
  ["a typo", { guard, queueTimeout: 5 }, ["queueTimeout"]],
  ["flow not a string", { guard, flow: 7 }, ["flow"]],
  ["an empty flow", { guard, flow: "" }, ["flow"]],
  ["a flow over 1024 characters", { guard, flow: "f".repeat(1025) }, ["flow"]],
  ["queueTimeoutEarly not a boolean", { guard, queueTimeoutEarly: "yes" }, ["queueTimeoutEarly"]],
  ["several at once", { guard, denyStatus: 418, leaseTtlMs: "1s" }, ["leaseTtlMs", "denyStatus"]],
];

function paths(error: unknown): string[] {
  expect(error).toBeInstanceOf(SlotgateConfigError);
  expect((error as SlotgateConfigError).code).toBe("SLOTGATE_INVALID_OPTION");
  return (error as SlotgateConfigError).issues.map((i) => i.path);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe.each([
  ["hono", (o: Record<string, unknown>) => honoSlotgate(o as never)],
  ["express", (o: Record<string, unknown>) => expressSlotgate(o as never)],
] as const)("slotgate/%s options", (_name, make) => {
  it.each(CASES)("%s", (_case, options, expected) => {
    expect(paths(thrown(() => make(options)))).toEqual(expected);
  });

  it("accepts good options", () => {
    expect(typeof make({ guard, scopes: ["global"], priority: { class: -3, offsetMs: 100 }, denyStatus: 429, queueTimeoutMs: 0 })).toBe("function");
    expect(typeof make({ guard: () => guard, scopes: () => ["global"], priority: () => undefined, backend: () => undefined })).toBe("function");
    expect(typeof make({ guard, flow: "tenant-a", queueTimeoutEarly: true })).toBe("function");
    expect(typeof make({ guard, flow: () => undefined, queueTimeoutEarly: false })).toBe("function");
  });

  it("names options that are not an object", () => {
    expect(paths(thrown(() => make(null as never)))).toEqual(["options"]);
  });
});

describe("slotgate/fastify options", () => {
  it.each(CASES)("%s: registration fails", async (_case, options, expected) => {
    const app = Fastify();
    const error = await app
      .register(fastifySlotgate, options as never)
      .ready()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(paths(error)).toEqual(expected);
    await app.close();
  });

  it("accepts good options, with fastify's own registration keys beside them", async () => {
    const app = Fastify();
    await app.register(fastifySlotgate, { guard, scopes: ["global"], prefix: "/api" } as never).ready();
    await app.close();
  });
});
