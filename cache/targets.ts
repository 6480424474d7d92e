/**
 * Reading what a caller asks to register (a target) into the bytes it names: a buffer or view is
 * read by the engine's own accessors (no getter of its runs), an `{address, length}` object by
 * its properties (which may run user code).
 *
 * @module
 */
import { bufferByteLength, viewLength } from "../verbs/buffer_facts.ts";
import { type MemoryTarget, readMemoryTarget } from "../verbs/memory_target.ts";

/** What to register: a buffer or view (all its bytes), or native memory (verbs/memory_target.ts). */
export type CacheTarget = MemoryTarget;

/** The bytes a target names, checked. */
export interface TargetBytes {
  /** The buffer they are in; null for an `{address, length}` target. */
  buffer: ArrayBufferLike | null;
  /** Where they start in `buffer` (0 without one). */
  offset: number;
  /** How many (at least 1). */
  length: number;
  /** The first one's address; NaN for a buffer whose address is not known yet. */
  address: number;
  /** For an `{address, length}` target: the address it had (the object may change). */
  key: bigint | undefined;
}

/** What an earlier get of the same target object remembered (a FrontEntry). */
export interface KnownTarget {
  /** The address asked for then. */
  readonly address: number;
  /** Its `key` then. */
  readonly key: bigint | undefined;
}

/**
 * The bytes `target` names. `known`: what an earlier get of the same object remembered (it saves
 * converting the address again); `bufferBases`: the addresses of buffers seen before. Throws the
 * TypeError/RangeError of verbs/memory_target.ts for a target that names no bytes it may register.
 */
export function readTarget(
  target: CacheTarget,
  known: KnownTarget | undefined,
  bufferBases: WeakMap<ArrayBufferLike, number>,
): TargetBytes {
  const facts = readMemoryTarget(target);
  if (facts.buffer !== null) {
    const { buffer, offset, length } = facts;
    // A buffer's bytes never move, so an entry of this same buffer or view knows its address.
    const address = known !== undefined && known.key === undefined
      ? known.address
      : (bufferBases.get(buffer) ?? NaN) + offset;
    return { buffer, offset, length, address, key: undefined };
  }
  const key = facts.address;
  // Number() rounds, but stays in [1, 2^53]. The native side checks the end too.
  const address = known?.key === key ? known.address : Number(key);
  return { buffer: null, offset: 0, length: facts.length, address, key };
}

/**
 * The length of a target an earlier get remembered (`key` as it remembered it), read without
 * converting anything: a buffer's or view's by the engine's accessors (0 once detached); an
 * `{address, length}` target's `length`, if its `address` is still `key` (else undefined).
 */
export function knownTargetLength(target: CacheTarget, key: bigint | undefined): unknown {
  if (key === undefined) {
    // Only buffers and views have such entries.
    return ArrayBuffer.isView(target)
      ? viewLength(target)
      : bufferByteLength(target as ArrayBufferLike);
  }
  if ((target as { address: unknown }).address === key) {
    return (target as { length: unknown }).length;
  }
  return undefined;
}
