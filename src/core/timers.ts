/** Node timers have unref()/ref(); Workers and browsers return numbers. This needs no runtime import. */
export function unrefTimer(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}

export function refTimer(timer: unknown): void {
  (timer as { ref?: () => void } | undefined)?.ref?.();
}
