/**
 * Acquire loads and release stores of words shared with native threads.
 *
 * `Atomics.load` and `Atomics.store` are sequentially consistent, so stronger than acquire and
 * release, and V8 runs them as builtin calls: about 15 ns each, a third of a cache hit. On x86-64
 * every load already has acquire and every store release semantics, and V8 keeps typed-array loads
 * and stores in program order around calls and other atomics, so there a plain access is the
 * acquire load or release store, at no cost. On a weakly ordered CPU (aarch64) they are
 * `Atomics.load` / `Atomics.store` (ldar / stlr).
 *
 * @module
 */

/** True where plain typed-array accesses are acquire loads and release stores (x86-64). */
export const STRONGLY_ORDERED: boolean = Deno.build.arch === "x86_64";

/** Loads `words[index]` with (at least) acquire semantics. */
export const loadAcquire: (words: Int32Array, index: number) => number = STRONGLY_ORDERED
  ? (words, index) => words[index]
  : (words, index) => Atomics.load(words, index);

/** Loads the 64-bit `words[index]` with (at least) acquire semantics. */
export const loadAcquire64: (words: BigInt64Array, index: number) => bigint = STRONGLY_ORDERED
  ? (words, index) => words[index]
  : (words, index) => Atomics.load(words, index);

/** Stores `value` into `words[index]` with (at least) release semantics. */
export const storeRelease: (words: Int32Array, index: number, value: number) => void =
  STRONGLY_ORDERED
    ? (words, index, value) => {
      words[index] = value;
    }
    : (words, index, value) => {
      Atomics.store(words, index, value);
    };
