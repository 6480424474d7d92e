/**
 * What memory a caller names for registration: the one contract of `MemoryRegion.register`
 * (`ProtectionDomain.registerMemory`) and `RegistrationCache.get`.
 *
 * A target is one of
 * - an `ArrayBuffer` or `SharedArrayBuffer` (all its bytes),
 * - a typed array or `DataView` (its bytes),
 * - `{ address, length }`: native memory, `address` a bigint or a `Deno.PointerObject`.
 *
 * Refused, before anything is registered:
 * - TypeError: any other value; a detached `ArrayBuffer` (or a view of one); a resizable
 *   `ArrayBuffer` or growable `SharedArrayBuffer` (its length can change under a registration);
 *   an `address` that is neither a bigint nor a pointer object, a `length` that is not a number.
 * - RangeError: an empty buffer or view; a `length` that is not a positive safe integer; an
 *   `address` of 0 or outside [1, 2^53) (every Linux user-space address is below 2^53 unless a
 *   program maps above it on purpose; the cache passes addresses as doubles, exact below 2^53).
 *
 * Buffers and views are read through the engine's own accessors (buffer_facts.ts): no getter of
 * theirs runs. An `{ address, length }` object's properties are read once each, `address` first,
 * and may run user code, which the callers allow for (they re-check their handles after).
 *
 * @module
 */
import { addressOfPointer } from "../ffi/pointers.ts";
import {
  bufferByteLength,
  isArrayBuffer,
  isDetached,
  isGrowable,
  isSharedArrayBuffer,
  viewFacts,
} from "./buffer_facts.ts";

/** Memory to register: a buffer or view (all its bytes), or native memory. */
export type MemoryTarget =
  | ArrayBuffer
  | SharedArrayBuffer
  | ArrayBufferView
  | { address: bigint | Deno.PointerObject; length: number };

/** Addresses of `{ address, length }` targets are below this. */
export const ADDRESS_LIMIT = 2 ** 53;

/** The bytes a target names (one shape for every kind of target). */
export interface TargetFacts {
  /** The buffer they are in; null for an `{ address, length }` target. */
  buffer: ArrayBufferLike | null;
  /** Where they start in `buffer` (0 without one). */
  offset: number;
  /** How many (at least 1). */
  length: number;
  /**
   * The first one's address, in [1, ADDRESS_LIMIT) (a double: exact there); NaN for a buffer,
   * whose address this module does not look up.
   */
  address: number;
  /** For an `{ address, length }` target: its address as a bigint; undefined for a buffer. */
  key: bigint | undefined;
}

/** The error for a buffer (or a view's buffer) that has no bytes to register. */
function emptyError(buffer: ArrayBufferLike): Error {
  return isDetached(buffer)
    ? new TypeError("cannot register a detached ArrayBuffer")
    : new RangeError("cannot register an empty buffer or view");
}

/** The bytes of a buffer, a view's buffer (from `offset`, `length` of them), checked. */
function inBuffer(buffer: ArrayBufferLike, offset: number, length: number): TargetFacts {
  if (length === 0) throw emptyError(buffer);
  if (isGrowable(buffer)) {
    throw new TypeError("cannot register a resizable ArrayBuffer or growable SharedArrayBuffer");
  }
  return { buffer, offset, length, address: NaN, key: undefined };
}

/** A pointer object's address; TypeError for anything else. */
function pointerAddress(pointer: unknown): bigint {
  try {
    if (pointer !== null && typeof pointer === "object") {
      return addressOfPointer(pointer as Deno.PointerObject);
    }
  } catch {
    // not a pointer object (Deno's TypeError says only "expected external")
  }
  throw new TypeError("address must be a bigint or a Deno.PointerObject");
}

/** The bytes `target` names, or the TypeError/RangeError the module's contract gives. */
export function readMemoryTarget(target: unknown): TargetFacts {
  if (ArrayBuffer.isView(target)) {
    // The buffer first: it also moves a small typed array's bytes off the V8 heap, where they
    // could move.
    const [buffer, offset, length] = viewFacts(target);
    return inBuffer(buffer, offset, length);
  }
  if (isArrayBuffer(target) || isSharedArrayBuffer(target)) {
    return inBuffer(target, 0, bufferByteLength(target));
  }
  if (target !== null && typeof target === "object" && "address" in target) {
    const { address, length } = target as { address: unknown; length: unknown };
    const value = typeof address === "bigint" ? address : pointerAddress(address);
    if (typeof length !== "number") throw new TypeError("length must be a number");
    if (!Number.isSafeInteger(length) || length < 1) {
      throw new RangeError(`length must be a positive integer, got ${length}`);
    }
    // Number() rounds, but not across these bounds (both are exact doubles).
    const number = Number(value);
    if (!(number >= 1 && number < ADDRESS_LIMIT)) {
      throw new RangeError(`address ${value} is outside the user address space`);
    }
    return { buffer: null, offset: 0, length, address: number, key: value };
  }
  throw new TypeError(
    "memory must be an ArrayBuffer, a SharedArrayBuffer, a typed array, a DataView or " +
      "{address, length}",
  );
}
