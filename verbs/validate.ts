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

/** A u32 from a number. */
export function u32(name: string, value: unknown): number {
  return integerIn(name, value, 0, 0xffffffff);
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

/** A u64 from a bigint or a safe non-negative integer. */
export function u64(name: string, value: unknown): bigint {
  if (typeof value === "bigint") {
    if (value < 0n || value > 0xffffffffffffffffn) {
      throw new RangeError(`${name} must fit in 64 unsigned bits, got ${value}`);
    }
    return value;
  }
  if (typeof value === "number") {
    return BigInt(integerIn(name, value, 0, Number.MAX_SAFE_INTEGER));
  }
  throw new TypeError(`${name} must be a bigint or a number, got ${typeof value}`);
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

/** A wait's `timeoutMs` option in milliseconds: a number >= 0, Infinity when absent. */
export function timeoutOption(options: { timeoutMs?: number } | undefined): number {
  const opts = optionsObject("options", options);
  if (opts.timeoutMs === undefined) return Infinity;
  if (typeof opts.timeoutMs !== "number") throw new TypeError("timeoutMs must be a number");
  if (!(opts.timeoutMs >= 0)) throw new RangeError("timeoutMs must be >= 0");
  return opts.timeoutMs;
}

/** Whether a (RoCE) GID holds an IPv4 address (::ffff:a.b.c.d). */
export function isIpv4MappedGid(gid: Uint8Array): boolean {
  return gid.subarray(0, 12).every((b, i) => b === (i >= 10 ? 255 : 0));
}

/** `parseGid`, naming the argument `name` in its errors. */
export function gidBytes(name: string, value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length !== 16) throw new RangeError(`${name} must be 16 bytes, got ${value.length}`);
    return value;
  }
  if (typeof value !== "string") {
    throw new TypeError(`${name} must be a 16-byte Uint8Array or a string`);
  }
  const parsed = /^[0-9a-fA-F]{32}$/.test(value) ? parseHexBytes(value) : parseIpv6(value);
  if (!parsed) throw new RangeError(`${name} is not a GID: ${JSON.stringify(value)}`);
  return parsed;
}

/**
 * A GID from 16 bytes (returned as they are), IPv6 text ("fe80::1", "::ffff:10.0.0.1") or 32 hex
 * digits in byte order (the wire form of rdma-core's pingpong examples). TypeError or RangeError
 * otherwise.
 */
export function parseGid(value: Uint8Array | string): Uint8Array {
  return gidBytes("gid", value);
}

/** 32 hex digits as 16 bytes, first byte first. */
function parseHexBytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  // Dotted IPv4 in the last group (::ffff:10.0.0.1).
  const last = halves.length === 2 ? tail : head;
  if (last.length > 0 && last[last.length - 1].includes(".")) {
    const v4 = last.pop()!.split(".").map(Number);
    if (v4.length !== 4 || v4.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) return null;
    last.push(((v4[0] << 8) | v4[1]).toString(16), ((v4[2] << 8) | v4[3]).toString(16));
  }
  if (halves.length === 1 && head.length !== 8) return null;
  if (head.length + tail.length > (halves.length === 2 ? 7 : 8)) return null;
  const all = [...head, ...new Array(8 - head.length - tail.length).fill("0"), ...tail];
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
    const v = parseInt(all[i], 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

/** A GID as IPv6 text with full groups, e.g. "fe80:0000:0000:0000:5054:00ff:fe12:3456". */
export function gidText(gid: Uint8Array | string): string {
  if (typeof gid === "string") gid = gidBytes("gid", gid); // any accepted form, normalized
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    parts.push(((gid[i] << 8) | gid[i + 1]).toString(16).padStart(4, "0"));
  }
  return parts.join(":");
}
