/**
 * The TypeScript side of the front words (cache/native/rcache.h): hits that make no native call.
 * A region a native lookup returned is bound to one of the cache's words; the next get of bytes it
 * covers takes its hold with one atomic add on that word, unless native code has closed it.
 *
 * @module
 */
import { FRONT_CLOSED, FRONT_HOLDS, FRONT_SLOTS, PERMISSION_ACCESS } from "../ffi/rcache.ts";
import { ReleaseQueueField } from "../ffi/rcache.ts";
import type { InterceptionGuard } from "../ffi/memhooks.ts";
import { loadAcquire, loadAcquire64 } from "../ffi/ordered_words.ts";
import type { FrontEntry } from "./front_entries.ts";

/** One cache's front words, and how often each was bound. */
export class FrontWords {
  /** The native words (never move). */
  readonly #words: Int32Array;
  /** The release queue's control words: `deferred` says a release hook's work is pending. */
  readonly #control: Int32Array;
  /**
   * The interception guard (ffi/memhooks.ts): a 64-bit view of libc's text over the hooks' 8
   * entry points, their indexes in it, and the native words they must equal. Without a guard, a
   * view that never matches: every get goes native.
   */
  readonly #code: BigInt64Array;
  readonly #o0: number;
  readonly #o1: number;
  readonly #o2: number;
  readonly #o3: number;
  readonly #o4: number;
  readonly #o5: number;
  readonly #o6: number;
  readonly #o7: number;
  readonly #expected: BigInt64Array;
  readonly #generations = new Uint32Array(FRONT_SLOTS);
  /** The word the next region without one gets (round robin). */
  #next = 0;
  #hits = 0;

  /**
   * Over the cache's `words` and its release queue's `control` words (ffi/rcache.ts), and the
   * memory hooks' interception guard (ffi/memhooks.ts; null: every get goes native).
   */
  constructor(words: Int32Array, control: Int32Array, guard: InterceptionGuard | null) {
    this.#words = words;
    this.#control = control;
    this.#code = guard?.code ?? new BigInt64Array(1);
    this.#expected = guard?.expected ?? new BigInt64Array(8).fill(-1n);
    const o = guard?.offsets ?? [0, 0, 0, 0, 0, 0, 0, 0];
    [this.#o0, this.#o1, this.#o2, this.#o3, this.#o4, this.#o5, this.#o6, this.#o7] = o;
  }

  /**
   * Whether libc's entry points still hold the bytes last verified by native code, so every
   * release still reaches the cache (cache/README.md, "Other interceptors"): 8 loads and
   * compares of 64 bits, written out. Another library that wrote its jump over one of them makes
   * this false until a native call has invalidated every region and verified the new bytes.
   * The guard words are read with acquire: they are published after the regions were closed, so
   * the front word read next cannot be an older one (ffi/ordered_words.ts).
   */
  #intercepted(): boolean {
    const c = this.#code, x = this.#expected;
    return c[this.#o0] === loadAcquire64(x, 0) && c[this.#o1] === loadAcquire64(x, 1) &&
      c[this.#o2] === loadAcquire64(x, 2) && c[this.#o3] === loadAcquire64(x, 3) &&
      c[this.#o4] === loadAcquire64(x, 4) && c[this.#o5] === loadAcquire64(x, 5) &&
      c[this.#o6] === loadAcquire64(x, 6) && c[this.#o7] === loadAcquire64(x, 7);
  }

  /** The word to offer the next native get (the `front` argument of rcache_get). */
  get offered(): number {
    return this.#next;
  }

  /** Holds taken through the words so far. */
  get hits(): number {
    return this.#hits;
  }

  /**
   * After a native get that offered `offered` and reports `word` (-1: none): the offered word was
   * bound to a region just now, so entries made for its previous region are stale.
   */
  reported(word: number, offered: number): void {
    if (word === offered) {
      this.#generations[word]++;
      this.#next = (offered + 1) % FRONT_SLOTS;
    }
  }

  /** The binding count of `word`, for a new entry. */
  generation(word: number): number {
    return this.#generations[word];
  }

  /**
   * Takes a hold on `entry`'s region for `length` bytes with `access` through its front word, if
   * the region covers them with that access and the word is still open and bound to it (see
   * cache/native/rcache.h for why that is safe against release hooks on other threads). False
   * when the native lookup must decide.
   */
  hold(entry: FrontEntry, length: number, access: number): boolean {
    // A release whose invalidation a hook deferred, or a drain is applying, is not in the front
    // words yet: the word is non-zero until it is (rcache.h). An acquire load, so on a weakly
    // ordered CPU the add below cannot be performed before this read (ffi/ordered_words.ts).
    if (loadAcquire(this.#control, ReleaseQueueField.DEFERRED) !== 0 || !this.#intercepted()) {
      return false;
    }
    const word = entry.word;
    if (
      length > entry.limit ||
      (entry.access & access) !== access ||
      (entry.access & ~PERMISSION_ACCESS) !== (access & ~PERMISSION_ACCESS) ||
      this.#generations[word] !== entry.generation
    ) {
      return false;
    }
    const words = this.#words;
    // Closed stays closed until this thread rebinds the word: a read can say no for sure. Only
    // this thread adds, so a word below its full count cannot overflow into the closed bit; a
    // full one leaves the next holds to the native count (FRONT_HOLDS < FRONT_CLOSED).
    if (loadAcquire(words, word) >= FRONT_HOLDS) return false;
    if ((Atomics.add(words, word, 1) & FRONT_CLOSED) !== 0) {
      Atomics.sub(words, word, 1); // the region left the index (its entries stay, and fail here)
      return false;
    }
    this.#hits++;
    return true;
  }
}
