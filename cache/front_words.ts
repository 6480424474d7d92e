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
import type { FrontEntry } from "./front_entries.ts";

/** One cache's front words, and how often each was bound. */
export class FrontWords {
  /** The native words (never move). */
  readonly #words: Int32Array;
  /** The release queue's control words: `deferred` says a release hook's work is pending. */
  readonly #control: Int32Array;
  /** libc's entry points and the bytes they must hold (null: never hit without a native call). */
  readonly #guardCode: Int32Array;
  readonly #guardOffsets: Int32Array;
  readonly #guardExpected: Int32Array;
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
    // Without a guard, a guard that never matches: 0 !== -1.
    this.#guardCode = guard?.code ?? new Int32Array(1);
    this.#guardOffsets = guard?.offsets ?? new Int32Array(1);
    this.#guardExpected = guard?.expected ?? new Int32Array([-1]);
  }

  /**
   * Whether libc's entry points still hold the bytes last verified by native code, so every
   * release still reaches the cache (cache/README.md, "Other interceptors"): 16 loads and
   * compares. Another library that wrote its jump over one of them makes this false until a
   * native call has invalidated every region and verified the new bytes.
   */
  #intercepted(): boolean {
    const code = this.#guardCode, offsets = this.#guardOffsets, expected = this.#guardExpected;
    for (let i = 0; i < offsets.length; i++) {
      if (code[offsets[i]] !== expected[i]) return false;
    }
    return true;
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
    // words yet: the word is non-zero until it is (rcache.h). (A plain read: the atomic add of
    // the previous hit keeps the compiler from reusing an older value.)
    if (this.#control[ReleaseQueueField.DEFERRED] !== 0 || !this.#intercepted()) return false;
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
    // Closed stays closed until this thread rebinds the word: a plain read can say no for sure.
    // Only this thread adds, so a word below its full count cannot overflow into the closed bit;
    // a full one leaves the next holds to the native count (FRONT_HOLDS < FRONT_CLOSED).
    if (words[word] >= FRONT_HOLDS) return false;
    if ((Atomics.add(words, word, 1) & FRONT_CLOSED) !== 0) {
      Atomics.sub(words, word, 1); // the region left the index (its entries stay, and fail here)
      return false;
    }
    this.#hits++;
    return true;
  }
}
