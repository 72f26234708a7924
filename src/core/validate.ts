/**
 * The schema kit every validator of slotgate uses: the guard's options, the acquire options, the
 * Durable Object's wire protocol and the edge node's config file. The schemas are valibot's; this
 * module adds the few shapes ours need (strict plain objects that report every unknown key, named
 * mappings that keep keys such as `constructor`, bounded lists) and is the one place where a
 * valibot issue becomes a {@link ConfigIssue}: the path of the offending value, what was expected
 * and what was received, so that every validator speaks the same way:
 * `backends.api.servers.a.max: expected a positive integer, got -1`.
 *
 * Convention: the message of every schema and check is the "expected" text of the issue. A check
 * that needs a sentence instead ({@link report} with `sentence`) keeps its expected text in the
 * issue's `expected`.
 */
import * as v from "valibot";
import { SlotgateConfigError, type ConfigIssue, type SlotgateErrorCode } from "./errors.js";

export class Issues {
  readonly list: ConfigIssue[] = [];

  add(path: string, expected: string, received: unknown, message?: string): void {
    this.list.push(message === undefined ? { path, expected, received } : { path, expected, received, message });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  // Keys that would read ambiguously in a dotted path are quoted.
  const plain = /^[A-Za-z_][\w-]*$/.test(key);
  if (path === "") return plain ? key : JSON.stringify(key);
  return plain ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A schema from any input to `T`, whose issues follow this module's convention. */
export type Schema<T> = v.GenericSchema<unknown, T>;

// ---------------------------------------------------------------------------------------------
// From valibot's issues to ours: the one place

type AnyIssue = v.BaseIssue<unknown>;
export type AddIssue = v.RawTransformAddIssue<unknown>;

function isRaw(issue: AnyIssue): boolean {
  return issue.type === "raw_check" || issue.type === "raw_transform";
}

/** The issues of one valibot run, as ours, their paths joined onto `path`. */
export function toConfigIssues(path: string, issues: readonly AnyIssue[]): ConfigIssue[] {
  return issues.map((issue) => {
    let at = path;
    for (const item of issue.path ?? []) {
      const key: unknown = item.key;
      if (typeof key === "string" || typeof key === "number") at = join(at, key);
    }
    const expected = isRaw(issue) && issue.expected !== null ? issue.expected : issue.message;
    const sentence = isRaw(issue) && issue.message !== expected ? issue.message : undefined;
    return sentence === undefined ? { path: at, expected, received: issue.input } : { path: at, expected, received: issue.input, message: sentence };
  });
}

/** Runs `schema` on `value`: its output, or undefined after adding every issue (under `path`) to `issues`. */
export function check<T>(issues: Issues, path: string, schema: Schema<T>, value: unknown): T | undefined {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  issues.list.push(...toConfigIssues(path, result.issues));
  return undefined;
}

/** Runs `schema` on `value`: its output, or a {@link SlotgateConfigError} listing every issue. */
export function parse<T>(schema: Schema<T>, value: unknown, path = "", code?: SlotgateErrorCode): T {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  throw new SlotgateConfigError(toConfigIssues(path, result.issues), code);
}

/**
 * Adds an issue from inside a `v.rawCheck` / `v.rawTransform`. `input` is what the message shows
 * as received (a token passes a description of itself, never its text); `path` descends from the
 * checked value; `sentence` replaces "expected …" where that would not say what is wrong.
 */
export function report(
  addIssue: AddIssue,
  expected: string,
  input: unknown,
  options: { path?: readonly (string | number)[]; sentence?: string } = {},
): undefined {
  const path = (options.path ?? []).map((key) => pathItem(undefined, key));
  addIssue({ input, expected, message: options.sentence ?? expected, ...(path.length > 0 ? { path: path as [v.IssuePathItem, ...v.IssuePathItem[]] } : {}) });
  return undefined;
}

function pathItem(input: unknown, key: string | number): v.IssuePathItem {
  return { type: "unknown", origin: "value", input, key, value: undefined };
}

/** Re-adds the issues of a nested run, under `key` if given. */
function relay(addIssue: AddIssue, issues: readonly AnyIssue[], key?: PathKey): void {
  const prefix = (key === undefined ? [] : typeof key === "object" ? key : [key]).map((k) => pathItem(undefined, k));
  for (const issue of issues) {
    const [ours] = toConfigIssues("", [{ ...issue, path: undefined }]);
    const path = [...prefix, ...(issue.path ?? [])];
    addIssue({
      input: issue.input,
      expected: ours!.expected,
      message: ours!.message ?? ours!.expected,
      ...(path.length > 0 ? { path: path as [v.IssuePathItem, ...v.IssuePathItem[]] } : {}),
    });
  }
}

type PathKey = string | number | readonly (string | number)[] | undefined;

/**
 * Runs a nested schema inside a raw check or transform; its issues go under `key` (a key, a list
 * of keys descending, or undefined for the same path).
 */
export function nested<T>(addIssue: AddIssue, key: PathKey, schema: Schema<T>, value: unknown): T | undefined {
  const result = v.safeParse(schema, value);
  if (result.success) return result.output;
  relay(addIssue, result.issues, key);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/** An own property (undefined when absent or inherited): a key named `constructor` never reads Object.prototype's. */
export function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** A schema of one predicate (valibot's `custom`), which {@link parseLeaf} can run without a valibot pass. */
export type Leaf<T> = Schema<T> & { readonly check: (value: unknown) => boolean };

/** A value `test` accepts, else one issue saying `expected`. */
export function accept<T>(test: (value: unknown) => boolean, expected: string): Leaf<T> {
  return v.custom<T>(test, expected) as unknown as Leaf<T>;
}

/**
 * {@link parse} for the hot path (every acquire): the leaf's own predicate decides, and only a
 * value it refuses takes the valibot pass that words the error. Same rule, same message.
 */
export function parseLeaf<T>(leaf: Leaf<T>, value: unknown, path: string): T {
  return leaf.check(value) ? (value as T) : parse(leaf, value, path);
}

export interface IntRange {
  min?: number;
  max?: number;
  expected?: string;
}

/** An integer in a range; one issue whatever is wrong (type, fraction or range). */
export function int(range: IntRange = {}): Leaf<number> {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
  return accept((x) => typeof x === "number" && Number.isInteger(x) && x >= min && x <= max, range.expected ?? describeRange(min, max));
}

function describeRange(min: number, max: number): string {
  if (min === 1 && max === Number.MAX_SAFE_INTEGER) return "a positive integer";
  if (min === 0 && max === Number.MAX_SAFE_INTEGER) return "a non-negative integer";
  if (max === Number.MAX_SAFE_INTEGER) return `an integer ≥ ${min}`;
  return `an integer from ${min} to ${max}`;
}

/** A finite number `ok` accepts. */
export function finite(expected: string, ok: (n: number) => boolean): Schema<number> {
  return accept((x) => typeof x === "number" && Number.isFinite(x) && ok(x), expected);
}

export function oneOf<T extends string>(allowed: readonly T[]): Schema<T> {
  return v.picklist(allowed as T[], `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`) as Schema<T>;
}

export function boolean(expected = "a boolean"): Schema<boolean> {
  return v.boolean(expected);
}

/** A string matching `pattern`. */
export function matching(pattern: RegExp, expected: string): Schema<string> {
  return accept((x) => typeof x === "string" && pattern.test(x), expected);
}

/** The schema `pick` chooses for the value (a number or an object, say), run on it at the same path. */
export function choose<T>(pick: (value: unknown) => Schema<T>): Schema<T> {
  return v.pipe(
    v.unknown(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const result = v.safeParse(pick(dataset.value), dataset.value);
      if (result.success) return result.output;
      relay(addIssue, result.issues);
      return NEVER;
    }),
  ) as unknown as Schema<T>;
}

/** `schema` when given; `fallback` when the value is undefined (absent keys read as undefined). */
export function optional<T, D>(schema: Schema<T>, fallback: D): Schema<T | D> {
  return v.pipe(
    v.optional(schema),
    v.transform((x) => (x === undefined ? fallback : x)),
  ) as Schema<T | D>;
}

/** Always fails with `expected` (the branch of {@link choose} for a value of no accepted kind). */
export function refuse(expected: string): Schema<never> {
  return accept<never>(() => false, expected);
}

/**
 * Further checks on a parsed value (named so, not `then`: a module exporting `then` is a thenable,
 * and awaiting a dynamic import of it would never settle): `check` returns the (possibly new) value, or undefined after
 * reporting through {@link report} or {@link nested}. Rules that are ours (durations, sizes, RE2
 * patterns, addresses) are written this way, calling their own parser.
 */
export function refine<T, U>(schema: Schema<T>, check: (value: T, addIssue: AddIssue) => U | undefined): Schema<U> {
  return v.pipe(
    schema,
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      let reported = false;
      const add: AddIssue = (info) => {
        reported = true;
        addIssue(info);
      };
      const out = check(dataset.value, add);
      // An undefined result that reported nothing would pass as a value: it is a bug, said so.
      if (out === undefined && !reported) report(addIssue, "a value (the validator reported no reason)", dataset.value);
      return out === undefined ? NEVER : out;
    }),
  ) as unknown as Schema<U>;
}

/** A check of ours on any value: `check` as for {@link refine}. */
export function rule<U>(check: (value: unknown, addIssue: AddIssue) => U | undefined): Schema<U> {
  return refine(v.unknown(), check);
}

type Fields = Record<string, Schema<unknown>>;
type Parsed<F extends Fields> = { [K in keyof F]: v.InferOutput<F[K]> };

/**
 * A plain object with the keys of `fields` only. Every unknown key is reported, so that a typo
 * (`maxcon`) is an error, not a silent default; then every field is checked (an absent key reads
 * as undefined, so each field's schema says what an absence means), in the order of `fields`.
 * `keysInMessage` lists the keys in another order for the message. Own properties only: a key
 * named like one of Object.prototype's never reads the prototype.
 */
export function object<F extends Fields>(fields: F, expected = "an object", keysInMessage?: readonly (keyof F & string)[]): Schema<Parsed<F>> {
  return v.pipe(accept<Record<string, unknown>>(isPlainObject, expected), readFields(fields, "strict", keysInMessage)) as unknown as Schema<Parsed<F>>;
}

/** A plain object of which the keys of `fields` are checked and others left out (wire messages that may grow). */
export function looseObject<F extends Fields>(fields: F, expected = "an object"): Schema<Parsed<F>> {
  return v.pipe(accept<Record<string, unknown>>(isPlainObject, expected), readFields(fields, "loose")) as unknown as Schema<Parsed<F>>;
}

/** `strict`: unknown own keys are errors; `loose`: they are left out. */
function readFields<F extends Fields>(fields: F, mode: "strict" | "loose", keysInMessage: readonly string[] = Object.keys(fields)) {
  const known = Object.keys(fields);
  return v.rawTransform<Record<string, unknown>, Parsed<F>>(({ dataset, addIssue, NEVER }) => {
    const obj = dataset.value;
    if (mode === "strict") reportUnknownKeys(addIssue, obj, keysInMessage);
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const key of known) {
      const value = own(obj, key);
      const result = v.safeParse(fields[key]!, value);
      if (result.success) out[key] = result.output;
      else {
        relay(addIssue, result.issues, key);
        ok = false;
      }
    }
    return ok ? (out as Parsed<F>) : NEVER;
  });
}

/** {@link reportUnknownKeys} into an {@link Issues}, for validators that build their result step by step. */
export function checkKnownKeys(issues: Issues, path: string, obj: Record<string, unknown>, known: readonly string[]): void {
  check(
    issues,
    path,
    rule((value, addIssue) => {
      reportUnknownKeys(addIssue, obj, known);
      return value;
    }),
    obj,
  );
}

/** Reports keys of `obj` that are not in `known`. */
export function reportUnknownKeys(addIssue: AddIssue, obj: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) report(addIssue, `one of the keys ${known.join(", ")}`, key, { path: [key] });
  }
}

/**
 * A plain object used as a mapping of names to values (limits, backends, servers): every key is
 * checked by `key`, every value by `value(name)`. Entries that fail are left out and reported;
 * the output keeps the input's order in a null-prototype record, so names like `constructor` are
 * entries like any other.
 */
export function mapping<T>(
  key: Schema<string>,
  value: (name: string) => Schema<T>,
  expected = "an object",
): Schema<{ entries: Record<string, T>; names: string[]; complete: boolean }> {
  return v.pipe(
    accept<Record<string, unknown>>(isPlainObject, expected),
    v.rawTransform(({ dataset, addIssue }) => {
      const entries = Object.create(null) as Record<string, T>;
      const names: string[] = [];
      let complete = true;
      for (const [name, item] of Object.entries(dataset.value)) {
        if (nested(addIssue, name, key, name) === undefined) {
          complete = false;
          continue;
        }
        names.push(name);
        const parsed = nested(addIssue, name, value(name), item);
        if (parsed === undefined) complete = false;
        else entries[name] = parsed;
      }
      return { entries, names, complete };
    }),
  );
}

/** A list of at most `max` items, each checked by `item`. */
export function list<T>(item: (index: number) => Schema<T>, max: number, expected: string, min = 0): Schema<T[]> {
  return v.pipe(
    accept<unknown[]>((x) => Array.isArray(x) && x.length >= min && x.length <= max, expected),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const out: T[] = [];
      let ok = true;
      dataset.value.forEach((value, i) => {
        const parsed = nested(addIssue, i, item(i), value);
        if (parsed === undefined) ok = false;
        else out.push(parsed);
      });
      return ok ? out : NEVER;
    }),
  );
}

/** Names of limits, backends and servers: printable, no whitespace, bounded. */
export const NAME_PATTERN = /^[A-Za-z0-9_.~-][A-Za-z0-9_.~:@-]{0,127}$/;

/** `__proto__` would be assigned as a record's prototype, not as an entry: refused. */
export const nameSchema: Schema<string> = accept(
  (x) => typeof x === "string" && NAME_PATTERN.test(x) && x !== "__proto__",
  "a name of 1–128 characters from [A-Za-z0-9_.~:@-], not __proto__",
);
