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
import { DISCIPLINES, MAX_INTERVAL_MS, MAX_TARGET_MS, QUEUE_DEFAULTS, flowWeightsSchema, type QueueSpec } from "../../core/spec.js";
import { object, oneOf, optional, refine, type Schema } from "../../core/validate.js";
import { duration } from "./duration.js";

/** The normalised section: the spec's queue section (bounds and defaults are the core's). */
export type QueueConfig = QueueSpec;

const queueFields = object(
  {
    discipline: optional(oneOf(DISCIPLINES), QUEUE_DEFAULTS.discipline),
    target: optional(duration({ min: 1, max: MAX_TARGET_MS }), QUEUE_DEFAULTS.targetMs),
    interval: optional(duration({ min: 1, max: MAX_INTERVAL_MS }), QUEUE_DEFAULTS.intervalMs),
    flow_weights: optional(flowWeightsSchema, undefined),
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
