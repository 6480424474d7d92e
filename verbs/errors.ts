/**
 * `RdmaError`, the error of a failed verb or of a handle used when it may not be, and the errno
 * values the library names.
 *
 * `RdmaError` carries the verb that failed (e.g. "ibv_reg_mr"), the errno value and its name
 * (e.g. "ENOMEM"). Verb failures report the errno libibverbs left; misuse of a handle reports a
 * fixed errno too: use after close is EBADF, closing a handle that still has open children is
 * EBUSY. Wrong argument types are TypeError and out-of-range values RangeError, never RdmaError.
 * Two other classes can reach a caller: `CompletionError` (completion_error.ts), a work
 * completion that failed, and `NativeLibraryError` (ffi/loader.ts), when the shim is not built.
 *
 * @module
 */
import { cStringAt } from "../ffi/pointers.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";

/** errno values the library reports itself, with their Linux numbers and names. */
export const Errno = {
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOSYS: 38,
  EOVERFLOW: 75,
  ENETDOWN: 100,
  ETIMEDOUT: 110,
} as const;

const NAMES = new Map<number, string>(Object.entries(Errno).map(([name, value]) => [value, name]));

function describeErrno(errno: number): { code: string; text: string } {
  try {
    const native = verbsNative();
    const code = cStringAt(native.drv_errno_name(errno)) || NAMES.get(errno) || `E${errno}`;
    return { code, text: cStringAt(native.drv_errno_text(errno)) };
  } catch {
    // The shim is not loadable: fall back to the names the library uses itself.
    return { code: NAMES.get(errno) ?? `E${errno}`, text: `errno ${errno}` };
  }
}

/** A failed verb, or a handle used in a state that does not allow it. */
export class RdmaError extends Error {
  /** The verb or operation, e.g. "ibv_reg_mr". */
  readonly verb: string;
  /** The errno value, e.g. 12. */
  readonly errno: number;
  /** The errno name, e.g. "ENOMEM". */
  readonly code: string;

  /** `verb` failed with `errno`; the message has `detail` (if given), then the errno's text. */
  constructor(verb: string, errno: number, detail?: string) {
    const { code, text } = describeErrno(errno);
    super(`${verb} failed: ${detail ? detail + ": " : ""}${text} (${code})`);
    this.name = "RdmaError";
    this.verb = verb;
    this.errno = errno;
    this.code = code;
  }
}

/** The error for the shim's last failure on this thread (read right after the failed call). */
export function lastError(verb: string, detail?: string): RdmaError {
  const errno = verbsNative().drv_last_errno();
  return new RdmaError(verb, errno > 0 ? errno : Errno.EIO, detail);
}

/** The error for a shim call that returned -errno. */
export function errorFromResult(verb: string, result: number, detail?: string): RdmaError {
  return new RdmaError(verb, result < 0 ? -result : Errno.EIO, detail);
}
