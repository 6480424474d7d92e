/**
 * Addresses of JavaScript memory, for code outside ffi/ that must name bytes to native code or
 * compare them (a region's start, a test's expected address).
 *
 * @module
 */

/** The address of a view's first byte; throws RangeError for a view with no backing memory. */
export function addressOf(view: ArrayBufferView): bigint {
  const pointer = Deno.UnsafePointer.of(view as BufferSource);
  if (pointer === null) throw new RangeError("the view has no backing memory");
  return BigInt(Deno.UnsafePointer.value(pointer));
}
