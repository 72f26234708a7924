/**
 * Seeded randomness for reproducible randomized tests. Every random test takes its seeds from
 * {@link testSeeds}, prints the seed with every failure, and can be replayed with
 * `SLOTGATE_SEED=<n> npx vitest run <path>`.
 */

/** A source of uniform floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: a tiny, fast 32-bit PRNG; the same seed always yields the same sequence. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Convenience helpers over a seeded {@link Rng}. */
export class Random {
  readonly seed: number;
  readonly next: Rng;

  constructor(seed: number) {
    this.seed = seed;
    this.next = mulberry32(seed);
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) throw new RangeError(`Random.int: bad range [${min}, ${max}]`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Random.pick: empty list");
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks a value with probability proportional to its weight. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of entries) total += w;
    if (!(total > 0)) throw new RangeError("Random.weighted: no positive weight");
    let x = this.next() * total;
    for (const [value, w] of entries) {
      x -= w;
      if (x < 0) return value;
    }
    return entries[entries.length - 1]![0];
  }

  /** Shuffles in place (Fisher–Yates) and returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }
}

/**
 * The fixed seeds plus those of `SLOTGATE_SEED` (one integer, or several separated by commas),
 * without duplicates. A malformed value fails loudly rather than silently testing nothing new.
 */
export function testSeeds(fixed: readonly number[], env: string | undefined = process.env.SLOTGATE_SEED): number[] {
  const seeds = [...fixed];
  if (env !== undefined && env.trim() !== "") {
    for (const part of env.split(",")) {
      const n = Number(part.trim());
      if (!Number.isSafeInteger(n)) throw new Error(`SLOTGATE_SEED: expected an integer (or a comma-separated list), got ${JSON.stringify(env)}`);
      if (!seeds.includes(n)) seeds.push(n);
    }
  }
  return seeds;
}

/** The command line that replays one seed of a randomized test. */
export function replayHint(seed: number, path = "test/invariants"): string {
  return `replay: SLOTGATE_SEED=${seed} npx vitest run ${path}`;
}
