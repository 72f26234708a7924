// The function library's packaging, without Redis: how a Lua file splits into its top-level
// statements, and that the library made from them keeps no state from one call to the next.
import { describe, expect, it } from "vitest";
import { LIBRARY } from "../../src/stores/redis/scripts/index.js";
import { splitTopLevel } from "../../src/stores/redis/scripts/lua-chunks.js";

describe("splitTopLevel", () => {
  it("tells functions, locals and other statements apart, past strings and comments that look like code", () => {
    const src = [
      "--[[ header: function end do ]]",
      "local A, B = 1, {",
      "  'end', \"function\",",
      "}",
      "local C -- no value",
      "local function f(x)",
      "  if x then return [[end]] end",
      "  -- end",
      "end",
      "READ[#READ + 1] = 'do'",
      "do",
      "  local t = 1",
      "end",
    ].join("\n");
    const { head, statements } = splitTopLevel(src, "sample.lua");
    expect(head).toBe("--[[ header: function end do ]]\n");
    expect(statements.map((s) => [s.fn, s.locals, s.init?.trim()])).toEqual([
      [undefined, ["A", "B"], "1, {\n  'end', \"function\",\n}"],
      [undefined, ["C"], undefined],
      ["f", undefined, undefined],
      [undefined, undefined, undefined],
      [undefined, undefined, undefined],
    ]);
    expect(statements[3]!.text).toBe("READ[#READ + 1] = 'do'\n");
  });

  it("refuses a file that breaks the convention", () => {
    expect(() => splitTopLevel("local function f()\n  return 1\n", "open.lua")).toThrow(/not closed/);
    expect(() => splitTopLevel("end\n", "extra.lua")).toThrow(/unbalanced/);
    expect(() => splitTopLevel("local 'x' = 1\n", "odd.lua")).toThrow(/names/);
    expect(() => splitTopLevel("local a = 1; local b = 2\n", "two.lua")).toThrow(/one line/);
  });
});

describe("the library's top level", () => {
  const { statements } = splitTopLevel(LIBRARY.code.slice(LIBRARY.code.indexOf("\n") + 1), LIBRARY.name);
  const inits = statements.filter((s) => /^SLOTGATE_INIT\[\d+\] = function\(KEYS, ARGV\)\n/.test(s.text)).map((s) => s.text);

  it("holds only functions, declarations, init functions and registrations", () => {
    for (const s of statements) {
      const ok =
        s.fn !== undefined ||
        (s.locals !== undefined && s.init === undefined) ||
        s.text.startsWith("local SLOTGATE_INIT = {}") ||
        inits.includes(s.text) ||
        s.text.startsWith("redis.register_function(");
      expect(ok, s.text.slice(0, 200)).toBe(true);
    }
    expect(
      statements
        .filter((s) => s.text.startsWith("redis.register_function("))
        .map((s) => /'([^']+)'/.exec(s.text)![1])
        .sort(),
    ).toEqual(Object.values(LIBRARY.functions).sort());
  });

  it("assigns every declared variable anew in an init function: no table or value outlives a call", () => {
    const declared = statements.filter((s) => s.locals !== undefined && s.init === undefined);
    expect(declared.length).toBeGreaterThan(30);
    for (const s of declared) {
      const assignment = new RegExp(`^${s.locals!.join(", ")} =`, "m");
      expect(
        inits.some((text) => assignment.test(text)),
        s.locals!.join(", "),
      ).toBe(true);
    }
  });
});
