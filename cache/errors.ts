/**
 * The errors the cache throws, from the native status codes and facts (rcache.h).
 *
 * @module
 */
import { type RcacheNative, RcacheStatus } from "../ffi/rcache.ts";
import { PATCH } from "../ffi/records/memhooks.ts";
import { memHooks } from "../hooks/mem_hooks.ts";
import { cStringAt } from "../ffi/pointers.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";

/** Any use of a closed cache (or of a registration of one). */
export function closedError(operation: string): RdmaError {
  return new RdmaError(operation, Errno.EBADF, "the registration cache is closed");
}

/** A release of a registration that was already released. */
export function releasedError(operation: string): RdmaError {
  return new RdmaError(operation, Errno.EBADF, "registration already released");
}

/** What rcache_create's negative `status` means. */
export function createError(native: RcacheNative, status: number): Error {
  const level = native.rcache_hooks_support_level();
  switch (status) {
    case RcacheStatus.UNSUPPORTED: {
      const missing = cStringAt(native.rcache_hooks_missing());
      return new RdmaError(
        "RegistrationCache",
        Errno.ENOSYS,
        `the memory hooks report support level 0x${level.toString(16)}; a lazy registration ` +
          `cache needs FREE and MMAP support, or released memory could stay registered` +
          (missing ? ` (not patched: ${missing})` : "") + foreignOwners(),
      );
    }
    case RcacheStatus.HOOKS:
      return new RdmaError(
        "RegistrationCache",
        Errno.EIO,
        `installing the memory hooks failed (opal code ${native.rcache_hooks_status()})`,
      );
    case RcacheStatus.TOO_MANY:
      return new RdmaError("RegistrationCache", Errno.ENOMEM, "too many registration caches open");
    default:
      return new RdmaError("RegistrationCache", Errno.EIO, `unexpected status ${status}`);
  }
}

/**
 * What rcache_get's negative `status` means for `length` bytes at `address`; `errno` is the failed
 * registration's (from the result record).
 */
export function getError(
  native: RcacheNative,
  status: number,
  errno: number,
  address: number,
  length: number,
): Error {
  const what = `${length} bytes at 0x${address.toString(16)}`;
  switch (status) {
    case RcacheStatus.CLOSED:
      return closedError("RegistrationCache.get");
    case RcacheStatus.RANGE:
      return new RangeError(`${length} bytes from that address leave the user address space`);
    case RcacheStatus.LIMIT: {
      const limit = native.rcache_memlock_limit();
      const limitText = limit < 0 ? "unlimited" : `${limit} bytes`;
      return new RdmaError(
        "ibv_reg_mr",
        errno,
        `registering ${what} hit the locked-memory limit (RLIMIT_MEMLOCK ${limitText}, or a ` +
          `device limit) even after evicting every idle cached region; release registrations ` +
          `or raise the limit (ulimit -l)`,
      );
    }
    case RcacheStatus.REGISTER:
      return new RdmaError("ibv_reg_mr", errno, `registering ${what}`);
    case RcacheStatus.NO_MEMORY:
      return new RdmaError("RegistrationCache.get", Errno.ENOMEM, "out of memory");
    case RcacheStatus.HOLDS:
      return new RdmaError(
        "RegistrationCache.get",
        Errno.EOVERFLOW,
        `the region of ${what} already counts 2^31 holds: registrations are never released`,
      );
    default:
      return new RdmaError("RegistrationCache.get", Errno.EIO, `unexpected status ${status}`);
  }
}

/**
 * The functions another library owns and whose events cannot be imported, as a sentence for a
 * refusal ("" when none).
 */
function foreignOwners(): string {
  const owned = memHooks.patchStatus().filter((p) => p.status === PATCH.FOREIGN);
  if (owned.length === 0) return "";
  return "; " + owned.map((p) => `${p.name} is patched by ${p.owner || "another library"}`)
    .join(", ") +
    " (neither patched by these hooks nor imported from there)";
}
