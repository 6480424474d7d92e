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

/** Whether `value` is a DataView (the engine's own check: the accessor accepts it). */
function isDataView(value: ArrayBufferView): boolean {
  try {
    dataViewLength.call(value);
    return true;
  } catch {
    return false;
  }
}

/** A view's buffer, byte offset and byte length (0 once its buffer is detached). */
export function viewFacts(view: ArrayBufferView): [ArrayBufferLike, number, number] {
  if (!isView(view)) throw new TypeError("not a typed array or DataView");
  // A typed array is the common case: its accessors throw for a DataView.
  try {
    return [
      typedBuffer.call(view) as ArrayBufferLike,
      typedOffset.call(view) as number,
      typedLength.call(view) as number,
    ];
  } catch (e) {
    if (!isDataView(view)) throw e;
  }
  const buffer = dataViewBuffer.call(view) as ArrayBufferLike;
  if (isDetached(buffer)) return [buffer, 0, 0]; // a DataView's accessors throw once detached
  return [buffer, dataViewOffset.call(view) as number, dataViewLength.call(view) as number];
}

/** A view's byte length (0 once detached), without the buffer and offset. */
export function viewLength(view: ArrayBufferView): number {
  try {
    return typedLength.call(view) as number;
  } catch {
    return viewFacts(view)[2];
  }
}

/** Whether `value` is an ArrayBuffer (not shared), by the engine's own check. */
export function isArrayBuffer(value: unknown): value is ArrayBuffer {
  try {
    bufferLength.call(value);
    return true;
  } catch {
    return false;
  }
}

/** Whether `value` is a SharedArrayBuffer, by the engine's own check. */
export function isSharedArrayBuffer(value: unknown): value is SharedArrayBuffer {
  try {
    sharedLength.call(value);
    return true;
  } catch {
    return false;
  }
}

/** An ArrayBuffer's or SharedArrayBuffer's byte length (0 once an ArrayBuffer is detached). */
export function bufferByteLength(buffer: ArrayBufferLike): number {
  return (isArrayBuffer(buffer) ? bufferLength : sharedLength).call(buffer) as number;
}

/** Whether an ArrayBuffer was detached (a SharedArrayBuffer never is). */
export function isDetached(buffer: ArrayBufferLike): boolean {
  return isArrayBuffer(buffer) && bufferDetached.call(buffer) === true;
}

/** Whether a buffer can change length: a resizable ArrayBuffer or a growable SharedArrayBuffer. */
export function isGrowable(buffer: ArrayBufferLike): boolean {
  return isArrayBuffer(buffer)
    ? bufferResizable.call(buffer) === true
    : sharedGrowable.call(buffer) === true;
}
