/**
 * What a get remembers for the next get of the same target object, or of the same address: the
 * region it returned and the front word that stands for it (see cache/native/rcache.h), so that
 * the next get can take its hold without a native call (front_words.ts).
 *
 * @module
 */
import { FRONT_SLOTS } from "../ffi/rcache.ts";

/** One get's memory of the region it returned, and of its front word. */
export class FrontEntry {
  constructor(
    public word: number,
    /** The word's binding when this was made: a rebound word makes the entry stale. */
    public generation: number,
    /** The address asked for, as a number. */
    readonly address: number,
    /** Bytes from `address` to the region's end. */
    public limit: number,
    public handle: number,
    public lkey: number,
    public rkey: number,
    public access: number,
    /** For an `{address, length}` target: the address it had (the object may change). */
    readonly key: bigint | undefined,
  ) {}
}

/** `entry` for a target of another kind (`key`: the address of an `{address, length}` target). */
export function withKey(entry: FrontEntry, key: bigint | undefined): FrontEntry {
  return new FrontEntry(
    entry.word,
    entry.generation,
    entry.address,
    entry.limit,
    entry.handle,
    entry.lkey,
    entry.rkey,
    entry.access,
    key,
  );
}

/** Size of the table of entries by address (direct-mapped: a collision replaces). */
const HINT_SLOTS = 2 * FRONT_SLOTS;

/** The hint table's slot for an address: bits 4-31 folded (ToUint32 keeps the low 32 bits). */
function hintSlot(address: number): number {
  return ((address >>> 4) ^ (address >>> 17)) & (HINT_SLOTS - 1);
}

/** The entries of the last gets by address, for new target objects over the same bytes. */
export class HintTable {
  readonly #addresses = new Float64Array(HINT_SLOTS).fill(NaN);
  readonly #entries: (FrontEntry | undefined)[] = new Array(HINT_SLOTS).fill(undefined);

  /** The entry of the last get at `address` that the table still holds. */
  find(address: number): FrontEntry | undefined {
    const slot = hintSlot(address);
    return this.#addresses[slot] === address ? this.#entries[slot] : undefined;
  }

  /** Remembers `entry` for `address`, replacing what its slot held. */
  remember(address: number, entry: FrontEntry): void {
    const slot = hintSlot(address);
    this.#addresses[slot] = address;
    this.#entries[slot] = entry;
  }
}
