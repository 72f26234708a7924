/**
 * Preload (`node --import`) that moves this process's wall clock: Date.now() reads
 * BENCH_CLOCK_SKEW_MS milliseconds ahead of the real time, as on a host whose clock runs ahead.
 * Date.now() is what redis-semaphore and bottleneck send to Redis as "now". Monotonic clocks
 * (performance.now(), process.hrtime(), timers) are left alone: they have no epoch to be ahead of.
 */
const skewMs = Number(process.env.BENCH_CLOCK_SKEW_MS ?? "0");
if (!Number.isFinite(skewMs)) throw new Error(`BENCH_CLOCK_SKEW_MS must be a number of ms, got ${process.env.BENCH_CLOCK_SKEW_MS}`);

if (skewMs !== 0) {
  const realNow = Date.now.bind(Date);
  Date.now = () => realNow() + skewMs;
}

export {};
