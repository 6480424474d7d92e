/**
 * Addresses and views of native memory, for code outside ffi/ that must name bytes to native code,
 * compare addresses or read what native code wrote (a test's mapping, a C string). Everything that
 * turns an address into a pointer or a pointer into bytes goes through here.
 *
 * @module
 */

/** The address of a view's first byte; throws RangeError for a view with no backing memory. */
export function addressOf(view: ArrayBufferView): bigint {
  const pointer = Deno.UnsafePointer.of(view as BufferSource);
  if (pointer === null) throw new RangeError("the view has no backing memory");
  return BigInt(Deno.UnsafePointer.value(pointer));
}

/** The pointer to a view's first byte, or null for a view with no backing memory. */
export function pointerOf(view: ArrayBufferView): Deno.PointerValue {
  return Deno.UnsafePointer.of(view as BufferSource);
}

/** A pointer's address (0n for null). */
export function addressOfPointer(pointer: Deno.PointerValue): bigint {
  return BigInt(Deno.UnsafePointer.value(pointer));
}

/** The pointer for an address (null for 0n). */
export function pointerAt(address: bigint): Deno.PointerValue {
  return Deno.UnsafePointer.create(address);
}

/** `length` bytes of native memory at `pointer`, as a view (valid while that memory is mapped). */
export function bytesAt(pointer: Deno.PointerObject, length: number): Uint8Array {
  return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, length));
}

/** The NUL-terminated string at `pointer` ("" for null). */
export function cStringAt(pointer: Deno.PointerValue): string {
  return pointer === null ? "" : Deno.UnsafePointerView.getCString(pointer);
}

/** `text` as a NUL-terminated C string, for a `buffer` parameter. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${text}\0`);
}
