/**
 * The premise of hits without a native call: `Atomics.add` on a view of native memory (not a
 * SharedArrayBuffer) is atomic against native threads. A native thread and this thread add to one
 * word at the same time; a lost update would leave the sum short.
 */
import assert from "node:assert/strict";
import { openNativeLibrary } from "../../ffi/loader.ts";
import { bytesAt } from "../../ffi/pointers.ts";

const adder = openNativeLibrary(
  "libdeno_rdma_testsupport.so",
  {
    adder_word_address: { parameters: [], result: "pointer" },
    adder_start: { parameters: ["i32"], result: "i32" },
    adder_go_now: { parameters: [], result: "void" },
    adder_join: { parameters: [], result: "void" },
  } as const,
).symbols;

Deno.test("Atomics.add on native memory loses no update against a native thread", () => {
  const word = new Int32Array(bytesAt(adder.adder_word_address()!, 4).buffer);
  const count = 5_000_000;
  assert.equal(adder.adder_start(count), 0);
  adder.adder_go_now();
  // What an add returns, minus this thread's own earlier adds, is the other thread's progress.
  // Keep adding at least `count` times and until the other thread was seen to progress meanwhile
  // (within a time bound, on a busy machine), so the two surely ran at the same time.
  const otherAtStart = Atomics.add(word, 0, 1);
  let otherAtEnd = otherAtStart;
  let adds = 1;
  const deadline = performance.now() + 10_000;
  while (adds < count || (otherAtEnd === otherAtStart && performance.now() < deadline)) {
    otherAtEnd = Atomics.add(word, 0, 1) - adds;
    adds++;
  }
  adder.adder_join();
  assert.ok(
    otherAtEnd > otherAtStart && otherAtStart < count,
    `the threads did not run at the same time (other thread: ${otherAtStart} then ${otherAtEnd})`,
  );
  assert.equal(word[0], count + adds);
});
