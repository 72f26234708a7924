/**
 * The config file's top-level `queue` section: the group's queue discipline and the weights of its
 * fairness flows (the guard's `queue` option, core/spec.ts `QueueSpec`).
 *
 * ```yaml
 * queue:
 *   discipline: codel      # fifo (default) | codel | lifo
 *   target: 5ms            # codel/lifo: the wait above which the queue counts as standing (1ms–1m)
 *   interval: 100ms        # … for this long (1ms–10m)
 *   flow_weights:          # flow (a frontend's fair_by value) -> weight 1–1000; unlisted flows weigh 1
 *     acme: 3
 * ```
 *
 * `target` and `interval` are accepted with `fifo` too (and then unused), so that switching the
 * discipline during an incident is a one-line change. A flow name is what a request's `fair_by`
 * source yields: 1 to 1,024 characters, like a keyed limit's value. A flow name may be a secret
 * (an API key under `fair_by: { header: x-api-key }`), so no issue shows one: an issue about a
 * weight names the flow by its place in the mapping, and an invalid name is shown by its length.
 */
import {
  DISCIPLINES,
  MAX_FLOW_WEIGHT,
  MAX_FLOW_WEIGHTS,
  MAX_INTERVAL_MS,
  MAX_KEY_LENGTH,
  MAX_TARGET_MS,
  QUEUE_DEFAULTS,
  isKeyValue,
  type QueueSpec,
} from "../../core/spec.js";
import { accept, int, isPlainObject, nested, object, oneOf, optional, own, refine, report, type Schema } from "../../core/validate.js";
import { duration } from "./duration.js";

/** The normalised section: the spec's queue section (bounds and defaults are the core's). */
export type QueueConfig = QueueSpec;

const FLOW_WEIGHTS_EXPECTED = `a mapping of flow names (1 to ${MAX_KEY_LENGTH} characters) to weights, at most ${MAX_FLOW_WEIGHTS} of them`;
const flowWeight = (place: number) =>
  int({ min: 1, max: MAX_FLOW_WEIGHT, expected: `an integer weight from 1 to ${MAX_FLOW_WEIGHT} (flow ${place} of the list)` });

const flowWeights = refine(accept<Record<string, unknown>>(isPlainObject, FLOW_WEIGHTS_EXPECTED), (obj, addIssue) => {
  const names = Object.keys(obj);
  if (names.length > MAX_FLOW_WEIGHTS) return report(addIssue, FLOW_WEIGHTS_EXPECTED, `${names.length} flows`);
  const out = Object.create(null) as Record<string, number>;
  let ok = true;
  for (const [i, name] of names.entries()) {
    // A name that is not a flow name may still be a secret: only its length is shown.
    if (!isKeyValue(name as unknown)) {
      report(addIssue, `a flow name of 1 to ${MAX_KEY_LENGTH} characters (flow ${i + 1} of the list)`, `(${name.length} characters, not shown)`);
      ok = false;
      continue;
    }
    const weight = nested(addIssue, undefined, flowWeight(i + 1), own(obj, name));
    if (weight === undefined) ok = false;
    else out[name] = weight;
  }
  return ok ? out : undefined;
});

const queueFields = object(
  {
    discipline: optional(oneOf(DISCIPLINES), QUEUE_DEFAULTS.discipline),
    target: optional(duration({ min: 1, max: MAX_TARGET_MS }), QUEUE_DEFAULTS.targetMs),
    interval: optional(duration({ min: 1, max: MAX_INTERVAL_MS }), QUEUE_DEFAULTS.intervalMs),
    flow_weights: optional(flowWeights, undefined),
  },
  "an object { discipline?, target?, interval?, flow_weights? }",
);

/** The `queue` section; absent: `null` (FIFO without weights, the guard's default). */
export const queueSection: Schema<QueueConfig | null> = optional(
  refine(queueFields, (q) => ({
    discipline: q.discipline,
    targetMs: q.target,
    intervalMs: q.interval,
    flowWeights: q.flow_weights ?? (Object.create(null) as Record<string, number>),
  })),
  null,
);
