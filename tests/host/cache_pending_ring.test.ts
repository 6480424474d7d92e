/**
 * The ring of releases the cache could not apply inside the hook. A pusher can be preempted, or
 * stopped for good, between claiming a cell and filling it; the ranges pushed behind that cell
 * (whose memory may already be unmapped and mapped again) are then hidden. The ring says so, and
 * the cache acts as if every region's memory had been released (tests/host/cache_hooks.test.ts).
 */
import assert from "node:assert/strict";
import { openNativeLibrary } from "../../ffi/loader.ts";

const ring = openNativeLibrary(
  "libdeno_rdma_testsupport.so",
  { ring_pop_behind_claimed_cell: { parameters: [], result: "i32" } } as const,
).symbols;

Deno.test("a stuck cell is reported, and the ranges behind it come out once it is filled", () => {
  assert.equal(ring.ring_pop_behind_claimed_cell(), 0);
});
