/**
 * @module
 * slotgate: the guard, the embedded memory store, and the types every store shares. This entry
 * is runtime-neutral (Web-standard APIs only), so Workers, Node and browsers can import it.
 */
import { guardFactory } from "./core/guard.js";
import { createMemoryStore } from "./stores/memory/memory-store.js";

/**
 * A guard on a group of limits. `store` defaults to the embedded memory store (this process only),
 * which also runs the `local` outage policy's in-process limits.
 */
export const createGuard = guardFactory(createMemoryStore);
export { readGroupStats } from "./core/guard.js";
export type { Guard, GuardOptions, GuardEvent, GuardStats, GuardSpecStats, AcquireResult, FallbackCounters, StoreErrorPolicy } from "./core/guard.js";
export type { AcquireOptions } from "./core/acquire-options.js";
export { Lease } from "./core/lease.js";
export type { LeaseFallback } from "./core/lease.js";
export { createMemoryStore } from "./stores/memory/memory-store.js";
export type { MemoryStoreOptions } from "./stores/memory/memory-store.js";
export { SlotgateError, SlotgateConfigError, SlotgateRejectedError, isSlotgateError } from "./core/errors.js";
export type { SlotgateErrorCode, RejectReason, ConfigIssue } from "./core/errors.js";
export type {
  LimitOption,
  LimitsOption,
  BackendOption,
  BackendsOption,
  ServerOption,
  Balance,
  GroupSpec,
  Discipline,
  QueueOption,
  QueueSpec,
} from "./core/spec.js";
export type { ScopeStats, ScopeCounters, QueueCounters, FlowStats, GroupStatsSnapshot, WaitHistogram } from "./core/stats.js";
export type { SlotStore, GroupStore, ChainRequest, LeaseGrant, StoreAcquireResult, RenewResult, SpecStatus, OpenOptions } from "./core/store.js";
export { MAX_SPEC_VERSION, canonicalSpecJson } from "./core/spec-version.js";
export { PRIORITY_CLASS_MIN, PRIORITY_CLASS_MAX, PRIORITY_OFFSET_MIN_MS, PRIORITY_OFFSET_MAX_MS } from "./core/state/order.js";
