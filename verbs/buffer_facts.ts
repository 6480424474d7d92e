/**
 * What a buffer or view is, read through the built-in accessors: an own property or a prototype
 * that user code changed cannot answer instead of the engine (a `byteLength` getter that detaches
 * the buffer, then reports its old length), and reading runs no user code. A value that is not
 * what the accessor expects is a TypeError.
 *
 * @module
 */

type Getter = (this: unknown) => unknown;

function getter(prototype: object, name: string): Getter {
  return Object.getOwnPropertyDescriptor(prototype, name)!.get as Getter;
}

const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object;
const typedBuffer = getter(TYPED_ARRAY, "buffer");
const typedLength = getter(TYPED_ARRAY, "byteLength");
const typedOffset = getter(TYPED_ARRAY, "byteOffset");
const dataViewBuffer = getter(DataView.prototype, "buffer");
const dataViewLength = getter(DataView.prototype, "byteLength");
const dataViewOffset = getter(DataView.prototype, "byteOffset");
const bufferLength = getter(ArrayBuffer.prototype, "byteLength");
const bufferResizable = getter(ArrayBuffer.prototype, "resizable");
const bufferDetached = getter(ArrayBuffer.prototype, "detached");
const sharedLength = getter(SharedArrayBuffer.prototype, "byteLength");
const sharedGrowable = getter(SharedArrayBuffer.prototype, "growable");
const isView = ArrayBuffer.isView;

/**
 * `first.call(value)`, or `second.call(value)` when `value` is not what `first` takes. The
 * prototype chooses which is tried first, so only a value whose prototype was changed pays for
 * the exception.
 */
function either(value: unknown, first: Getter, second: Getter): unknown {
  try {
    return first.call(value);
  } catch {
    return second.call(value);
  }
}

/** A view's buffer, byte offset and byte length (0 once its buffer is detached). */
export function viewFacts(view: ArrayBufferView): [ArrayBufferLike, number, number] {
  if (!isView(view)) throw new TypeError("not a typed array or DataView");
  const dataView = view instanceof DataView;
  const buffer =
    (dataView
      ? either(view, dataViewBuffer, typedBuffer)
      : either(view, typedBuffer, dataViewBuffer)) as ArrayBufferLike;
  if (isDetached(buffer)) return [buffer, 0, 0]; // a DataView's accessors throw once detached
  return dataView
    ? [
      buffer,
      either(view, dataViewOffset, typedOffset) as number,
      either(view, dataViewLength, typedLength) as number,
    ]
    : [
      buffer,
      either(view, typedOffset, dataViewOffset) as number,
      either(view, typedLength, dataViewLength) as number,
    ];
}

/** A view's byte length (0 once detached), without the buffer and offset. */
export function viewLength(view: ArrayBufferView): number {
  if (!(view instanceof DataView)) {
    try {
      return typedLength.call(view) as number;
    } catch {
      // a DataView whose prototype was changed, or a detached one
    }
  }
  return viewFacts(view)[2];
}

/** `getter.call(value)` succeeds: `value` is what the getter's class makes. */
function accepts(getter: Getter, value: unknown): boolean {
  try {
    getter.call(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `value` is an ArrayBuffer (not shared), by the engine's own check. One whose prototype
 * was changed away from ArrayBuffer's is not taken for one (so no exception is paid for the
 * common non-buffer); one that only pretends, by its prototype, is found out.
 */
export function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return value instanceof ArrayBuffer && accepts(bufferLength, value);
}

/** Whether `value` is a SharedArrayBuffer, by the engine's own check (as `isArrayBuffer`). */
export function isSharedArrayBuffer(value: unknown): value is SharedArrayBuffer {
  return value instanceof SharedArrayBuffer && accepts(sharedLength, value);
}

/** An ArrayBuffer's or SharedArrayBuffer's byte length (0 once an ArrayBuffer is detached). */
export function bufferByteLength(buffer: ArrayBufferLike): number {
  return (buffer instanceof SharedArrayBuffer
    ? either(buffer, sharedLength, bufferLength)
    : either(buffer, bufferLength, sharedLength)) as number;
}

/** Whether an ArrayBuffer was detached (a SharedArrayBuffer never is). */
export function isDetached(buffer: ArrayBufferLike): boolean {
  return !(buffer instanceof SharedArrayBuffer) && accepts(bufferLength, buffer) &&
    bufferDetached.call(buffer) === true;
}

/** Whether a buffer can change length: a resizable ArrayBuffer or a growable SharedArrayBuffer. */
export function isGrowable(buffer: ArrayBufferLike): boolean {
  return (buffer instanceof SharedArrayBuffer
    ? either(buffer, sharedGrowable, bufferResizable)
    : either(buffer, bufferResizable, sharedGrowable)) === true;
}
