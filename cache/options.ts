/**
 * Checking what a caller passes the cache: its options and access bits.
 *
 * @module
 */
import { Access, ACCESS_MASK } from "../verbs/constants.ts";

/** Options of `new RegistrationCache`. */
export interface RegistrationCacheOptions {
  /** Registered regions kept at most (held ones included; only idle ones are evicted). Default
   * 16384; `Infinity` for no bound. */
  maxRegions?: number;
  /** Registered bytes kept at most, likewise. Default 1 GiB; `Infinity` for no bound. */
  maxBytes?: number;
  /** Register the union with overlapping or adjacent regions of the same access. Default true. */
  merge?: boolean;
}

/** Default of `maxRegions`. */
export const DEFAULT_MAX_REGIONS = 16384;
/** Default of `maxBytes`. */
export const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

const NEEDS_LOCAL_WRITE = Access.REMOTE_WRITE | Access.REMOTE_ATOMIC;

/** A bound option: `fallback` when absent, 0 ("unbounded" in the native cache) for Infinity. */
export function bound(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity) return 0;
  if (typeof value !== "number") throw new TypeError(`${name} must be a number`);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer or Infinity, got ${value}`);
  }
  return value;
}

/** `access` if it is a valid set of IBV_ACCESS_* bits for a registration, else TypeError/RangeError. */
export function checkAccess(access: unknown): number {
  if (typeof access !== "number") throw new TypeError("access must be a number (Access bits)");
  if (!Number.isInteger(access) || access < 0 || (access & ~ACCESS_MASK) !== 0) {
    throw new RangeError(`access ${access} has bits that are not IBV_ACCESS_* flags`);
  }
  if ((access & NEEDS_LOCAL_WRITE) !== 0 && (access & Access.LOCAL_WRITE) === 0) {
    throw new RangeError("REMOTE_WRITE and REMOTE_ATOMIC access need LOCAL_WRITE too");
  }
  return access;
}
