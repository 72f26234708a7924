/** Node timers have unref(); Workers and browsers return numbers. This needs no runtime import. */
export function unrefTimer(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}
