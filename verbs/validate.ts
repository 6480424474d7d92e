/**
 * Argument checks shared by the verbs classes: wrong types are TypeError, out-of-range values
 * RangeError.
 *
 * @module
 */

/** An integer in [min, max], else TypeError (not a number) or RangeError. */
export function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${typeof value}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

const TWO_32 = 2 ** 32;

/** Writes a u64 field (a number without bigint work, or a bigint) little-endian at `offset`. */
export function writeU64(view: DataView, offset: number, name: string, value: unknown): void {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
    }
    view.setUint32(offset, value % TWO_32, true);
    view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
  } else if (typeof value === "bigint") {
    if (value < 0n || value >= 1n << 64n) throw new RangeError(`${name} must fit in 64 bits`);
    view.setBigUint64(offset, value, true);
  } else {
    throw new TypeError(`${name} must be a number or a bigint, got ${typeof value}`);
  }
}

/** A plain options object (or undefined -> {}). */
export function optionsObject<T extends object>(name: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object`);
  }
  return value;
}

/** The default when undefined, else the checked integer. */
export function optionalInteger(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  return value === undefined ? fallback : integerIn(name, value, min, max);
}

/**
 * A wait's `timeoutMs` option in milliseconds (every wait of the API reads it here): a number >= 0
 * (Infinity allowed), Infinity when absent; null, NaN or a negative number is an error. The field
 * is read once (a getter could answer differently).
 */
export function timeoutOption(options: { timeoutMs?: number } | undefined): number {
  const timeoutMs: unknown = optionsObject("options", options).timeoutMs;
  if (timeoutMs === undefined) return Infinity;
  if (typeof timeoutMs !== "number") {
    throw new TypeError(
      `timeoutMs must be a number, got ${timeoutMs === null ? "null" : typeof timeoutMs}`,
    );
  }
  if (!(timeoutMs >= 0)) throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
  return timeoutMs;
}
