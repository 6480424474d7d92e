/**
 * Reading what a caller asks to register (a target) into the bytes it names: a buffer or view is
 * read by the engine's own accessors (no getter of its runs), an `{address, length}` object by
 * its properties (which may run user code).
 *
 * @module
 */
import { bufferByteLength, viewLength } from "../verbs/buffer_facts.ts";
import { type MemoryTarget, readMemoryTarget, type TargetFacts } from "../verbs/memory_target.ts";

/** What to register: a buffer or view (all its bytes), or native memory (verbs/memory_target.ts). */
export type CacheTarget = MemoryTarget;

/** The bytes a target names, checked; for a buffer, `address` is where it was seen before. */
export type TargetBytes = TargetFacts;

/** What an earlier get of the same target object remembered (a FrontEntry). */
export interface KnownTarget {
  /** The address asked for then. */
  readonly address: number;
  /** Its `key` then. */
  readonly key: bigint | undefined;
}

/**
 * The bytes `target` names. `known`: what an earlier get of the same object remembered (for a
 * buffer or view, it saves looking its address up); `bufferBases`: the addresses of buffers seen
 * before. Throws the
 * TypeError/RangeError of verbs/memory_target.ts for a target that names no bytes it may register.
 */
export function readTarget(
  target: CacheTarget,
  known: KnownTarget | undefined,
  bufferBases: WeakMap<ArrayBufferLike, number>,
): TargetBytes {
  const bytes = readMemoryTarget(target);
  if (bytes.buffer !== null) {
    // A buffer's bytes never move, so an entry of this same buffer or view knows its address.
    bytes.address = known !== undefined && known.key === undefined
      ? known.address
      : (bufferBases.get(bytes.buffer) ?? NaN) + bytes.offset;
  }
  return bytes;
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
