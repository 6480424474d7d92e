/**
 * A test double for code that uses the registration cache where there is no RDMA device: the
 * registrar double, a stand-in for ibv_reg_mr/ibv_dereg_mr. It hands out fake keys and counts
 * calls, so the cache's logic (eviction order, merging, stats, invalidation by the real memory
 * hooks) can be tested and its lookup cost measured on any machine. Registrations it makes cannot
 * be used for RDMA. Its native part is `build/libdeno_rdma_testing.so` (testing/native/).
 *
 * ```ts
 * import { createRegistrarDouble, RegistrationCache } from "./mod.ts"; // the repository's root
 *
 * const double = createRegistrarDouble({ pinLimit: 1 << 20 });
 * using cache = new RegistrationCache(double);
 * cache.get(new Uint8Array(4096)).release();
 * console.log(double.counters().registrations);
 * ```
 *
 * @module
 */
import { CacheRegistrar, NATIVE_REGISTRAR } from "../cache/registrar.ts";
import { doubleCounterNames, registrarDoubleNative } from "../ffi/testing.ts";

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
export class RegistrarDouble extends CacheRegistrar {
  /** Emulated locked-memory limit in bytes, 0 for none. */
  readonly pinLimit: number;

  /**
   * Checks `options` (TypeError, RangeError) and applies `deregisterMicros` at once; `pinLimit`
   * takes effect when a cache is created over this double. Both are process-wide.
   */
  constructor(options: RegistrarDoubleOptions = {}) {
    super();
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
    registrarDoubleNative().rcache_double_set_dereg_delay(micros * 1000);
  }

  /** Calls made so far and bytes currently "pinned", process-wide. */
  counters(): RegistrarDoubleCounters {
    const names = doubleCounterNames();
    const values = new Float64Array(names.length);
    registrarDoubleNative().rcache_double_counters(values, values.length);
    return Object.fromEntries(names.map((name, i) => [name, values[i]])) as RegistrarDoubleCounters;
  }

  /** @internal The double's native registrar, its pin limit now in force (process-wide). */
  [NATIVE_REGISTRAR](): Deno.PointerValue {
    return registrarDoubleNative().rcache_double_registrar(this.pinLimit);
  }
}

/** A registrar double (see RegistrarDouble). */
export function createRegistrarDouble(options: RegistrarDoubleOptions = {}): RegistrarDouble {
  return new RegistrarDouble(options);
}
