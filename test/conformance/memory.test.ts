import { vi } from "vitest";
import { createMemoryStore } from "../../src/index.js";
import { runConformance } from "./store.case.js";

runConformance({
  name: "memory",
  createStore: () => createMemoryStore(),
  beforeEach: () => {
    vi.useFakeTimers();
  },
  afterEach: () => {
    vi.useRealTimers();
  },
  advance: async (ms) => {
    await vi.advanceTimersByTimeAsync(ms);
  },
  settle: async () => {
    await vi.advanceTimersByTimeAsync(0);
  },
  unitMs: 10,
  skip: [
    {
      reason: "the memory store's state lives and dies with the process that holds the leases: it cannot be lost under a holder",
      tests: ["after the store lost the group's state, the holder re-registers and nothing new is granted for one lease TTL"],
    },
  ],
});
