/**
 * Reading what a caller asks to register (a target) into the bytes it names: a buffer or view is
 * read by the engine's own accessors (no getter of its runs), an `{address, length}` object by
 * its properties (which may run user code).
 *
 * @module
 */
import {
  bufferByteLength,
  isArrayBuffer,
  isGrowable,
  isSharedArrayBuffer,
  viewFacts,
  viewLength,
} from "../verbs/buffer_facts.ts";
import { emptyBufferError, growableError } from "./errors.ts";

/** What to register: a buffer or view (all its bytes), or native memory. */
export type CacheTarget =
  | ArrayBuffer
  | SharedArrayBuffer
  | ArrayBufferView
  | { address: bigint; length: number };

/** Addresses cross to native code as doubles: exact below 2^53, far above any user address. */
const ADDRESS_LIMIT = 2 ** 53;

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
 * converting the address again); `bufferBases`: the addresses of buffers seen before. Throws
 * TypeError/RangeError for a target that names no bytes it may register.
 */
export function readTarget(
  target: CacheTarget,
  known: KnownTarget | undefined,
  bufferBases: WeakMap<ArrayBufferLike, number>,
): TargetBytes {
  if (ArrayBuffer.isView(target)) {
    // The buffer first: it also moves a small typed array's bytes off the V8 heap, where they
    // could move.
    const [buffer, offset, length] = viewFacts(target);
    if (length === 0) throw emptyBufferError(buffer);
    if (isGrowable(buffer)) throw growableError();
    // A view's bytes never move, so an entry of this same view knows its address.
    const address = known !== undefined && known.key === undefined
      ? known.address
      : (bufferBases.get(buffer) ?? NaN) + offset;
    return { buffer, offset, length, address, key: undefined };
  }
  if (isArrayBuffer(target) || isSharedArrayBuffer(target)) {
    const length = bufferByteLength(target);
    if (length === 0) throw emptyBufferError(target);
    if (isGrowable(target)) throw growableError();
    const address = known !== undefined && known.key === undefined
      ? known.address
      : bufferBases.get(target) ?? NaN;
    return { buffer: target, offset: 0, length, address, key: undefined };
  }
  if (target !== null && typeof target === "object" && "address" in target) {
    const key = target.address;
    const length = target.length;
    if (typeof key !== "bigint") throw new TypeError("address must be a bigint");
    if (typeof length !== "number") throw new TypeError("length must be a number");
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new RangeError(`length must be a positive integer, got ${length}`);
    }
    // Number() rounds, but not across these bounds. The native side checks the end too.
    const address = known?.key === key ? known.address : Number(key);
    if (address <= 0 || address >= ADDRESS_LIMIT) {
      throw new RangeError(`address ${key} is outside the user address space`);
    }
    return { buffer: null, offset: 0, length, address, key };
  }
  throw new TypeError(
    "target must be an ArrayBuffer, a typed array, a DataView or {address: bigint, length}",
  );
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
