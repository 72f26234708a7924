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
});
