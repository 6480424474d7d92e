/**
 * The ring of releases the cache could not apply inside the hook. A pusher can be preempted
 * between claiming a cell and filling it; the ranges pushed behind that cell (whose memory may
 * already be unmapped and mapped again) must not wait for a later drain.
 */
import assert from "node:assert/strict";
import { openNativeLibrary } from "../../ffi/loader.ts";

const ring = openNativeLibrary(
  "libdeno_rdma_testsupport.so",
  { ring_pop_behind_claimed_cell: { parameters: [], result: "i32" } } as const,
).symbols;

Deno.test("a drain waits for a claimed cell and returns the ranges behind it", () => {
  assert.equal(ring.ring_pop_behind_claimed_cell(), 0);
});
