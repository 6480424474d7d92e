/**
 * The error every native-library failure becomes: what was asked for, every place tried, why it
 * failed (`reason`) and what to do about it (`advice`).
 *
 * @module
 */

/** Thrown when a native library cannot be found, built or opened. */
export class NativeLibraryError extends Error {
  /**
   * Why: `"not-found"` (no candidate holds it), `"no-compiler"` (`$CC` or `cc` missing),
   * `"no-verbs-header"` (rdma-core's development files missing), `"permission"` (Deno refused an
   * operation; `flag` names the flag to add), `"cache-read-only"` (the cache folder cannot be
   * written), `"sources-unavailable"` (the C sources could not be read or fetched),
   * `"build-failed"` (the compiler failed for another reason) or `"verification-failed"` (a
   * library does not match its manifest's SHA-256).
   */
  readonly reason:
    | "not-found"
    | "no-compiler"
    | "no-verbs-header"
    | "permission"
    | "cache-read-only"
    | "sources-unavailable"
    | "build-failed"
    | "verification-failed";
  /** For `reason === "permission"`: the Deno flag that grants it, e.g. `--allow-run=cc`. */
  readonly flag?: string;
  /** What to do, one or more sentences (also the message's last line). */
  readonly advice: string;

  /**
   * `fileName` is the library asked for; `attempts`, each place tried with its error (never
   * empty when the loader throws); `options.reason` defaults to `"not-found"`.
   */
  constructor(
    readonly fileName: string,
    readonly attempts: readonly { path: string; error: string }[],
    options: {
      reason?: NativeLibraryError["reason"];
      advice?: string;
      flag?: string;
      cause?: unknown;
    } = {},
  ) {
    const reason = options.reason ?? "not-found";
    const advice = options.advice ??
      "run `deno task build` in a checkout, or set DENO_RDMA_LIB_DIR to a folder that holds it";
    super(
      `cannot load native library ${fileName} (${reason}); tried:\n` +
        attempts.map((a) => `  ${a.path}: ${a.error}`).join("\n") + `\n${advice}`,
      { cause: options.cause },
    );
    this.name = "NativeLibraryError";
    this.reason = reason;
    this.advice = advice;
    if (options.flag !== undefined) this.flag = options.flag;
  }

  /** The same failure, for `fileName` and with `before` tried first. */
  forLibrary(
    fileName: string,
    before: readonly { path: string; error: string }[],
  ): NativeLibraryError {
    return new NativeLibraryError(fileName, [...before, ...this.attempts], {
      reason: this.reason,
      advice: this.advice,
      flag: this.flag,
      cause: this.cause,
    });
  }
}
