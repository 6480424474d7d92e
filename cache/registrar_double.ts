/**
 * The registrar double: a stand-in for ibv_reg_mr/ibv_dereg_mr that needs no RDMA device. It hands
 * out fake keys and counts calls, so the cache's logic (eviction order, merging, stats, invalidation
 * by the real memory hooks) can be tested and its lookup cost measured on any machine. Registrations
 * it makes cannot be used for RDMA.
 *
 * @module
 */
import { DOUBLE_COUNTER_NAMES, rcacheNative } from "../ffi/rcache.ts";

/** Options of `createRegistrarDouble`. */
export interface RegistrarDoubleOptions {
  /**
   * Emulated locked-memory limit in bytes: a registration that would pin more than this in total
   * fails with ENOMEM, like ibv_reg_mr over RLIMIT_MEMLOCK. Default: no limit.
   */
  pinLimit?: number;
  /**
   * Microseconds every deregistration takes (busy-waiting), like a real ibv_dereg_mr; for tests
   * that need the cache lock held inside a release hook. Process-wide. Default 0.
   */
  deregisterMicros?: number;
}

/** The double's counters. They are process-wide: compare before and after. */
export type RegistrarDoubleCounters = {
  /** Registrations made. */
  registrations: number;
  /** Deregistrations finished. */
  deregistrations: number;
  /** Registrations refused with ENOMEM because they would pin more than the pin limit. */
  failures: number;
  /** Bytes registered now. */
  pinnedBytes: number;
  /** The pin limit in force, in bytes: that of the last cache created over a double; 0 for none. */
  pinLimit: number;
  /** Deregistrations begun: more than `deregistrations` while one is in progress. */
  deregistrationsStarted: number;
};

/** Pass to `new RegistrationCache(...)` instead of a ProtectionDomain. */
export class RegistrarDouble {
  /** Emulated locked-memory limit in bytes, 0 for none. */
  readonly pinLimit: number;

  /**
   * Checks `options` (TypeError, RangeError) and applies `deregisterMicros` at once; `pinLimit`
   * takes effect when a cache is created over this double. Both are process-wide.
   */
  constructor(options: RegistrarDoubleOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("registrar double options must be an object");
    }
    const limit = options.pinLimit ?? 0;
    if (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`pinLimit must be a non-negative integer, got ${String(limit)}`);
    }
    this.pinLimit = limit;
    const micros = options.deregisterMicros ?? 0;
    if (typeof micros !== "number" || !Number.isFinite(micros) || micros < 0) {
      throw new RangeError(`deregisterMicros must be a non-negative number, got ${String(micros)}`);
    }
    rcacheNative().rcache_double_set_dereg_delay(micros * 1000);
  }

  /** Calls made so far and bytes currently "pinned", process-wide. */
  counters(): RegistrarDoubleCounters {
    const values = new Float64Array(DOUBLE_COUNTER_NAMES.length);
    rcacheNative().rcache_double_counters(values, values.length);
    return Object.fromEntries(
      DOUBLE_COUNTER_NAMES.map((name, i) => [name, values[i]]),
    ) as RegistrarDoubleCounters;
  }
}

/** A registrar double (see RegistrarDouble). */
export function createRegistrarDouble(options: RegistrarDoubleOptions = {}): RegistrarDouble {
  return new RegistrarDouble(options);
}
