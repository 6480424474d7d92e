/**
 * Finds and opens the project's native libraries.
 *
 * Search order for a library file name: the folder named by the `DENO_RDMA_LIB_DIR` environment
 * variable, then the repository's `build/` folder (made by `deno task build`). When no candidate
 * opens, the error lists every path tried with its dlopen error and says how to build.
 *
 * @module
 */

/** Environment variable naming a folder that holds the built native libraries. */
export const LIB_DIR_ENV = "DENO_RDMA_LIB_DIR";

/** The repository's build folder, where `deno task build` writes the native libraries. */
export const LOCAL_BUILD_DIR = new URL("../build/", import.meta.url);

/** Thrown when a native library cannot be found or opened; `attempts` lists what was tried. */
export class NativeLibraryError extends Error {
  /** `fileName` is the library asked for; `attempts`, each path tried with its error. */
  constructor(
    readonly fileName: string,
    readonly attempts: readonly { path: string; error: string }[],
  ) {
    super(
      `cannot load native library ${fileName}; tried:\n` +
        attempts.map((a) => `  ${a.path}: ${a.error}`).join("\n") +
        "\nrun `deno task build` (or set " + LIB_DIR_ENV + " to a folder that holds it)",
    );
    this.name = "NativeLibraryError";
  }
}

/** Candidate paths for `fileName`, in search order. */
export function candidatePaths(fileName: string): string[] {
  if (typeof fileName !== "string" || fileName === "" || fileName.includes("/")) {
    throw new TypeError(`native library file name must be a bare file name, got ${fileName}`);
  }
  const paths: string[] = [];
  let fromEnv: string | undefined;
  try {
    fromEnv = Deno.env.get(LIB_DIR_ENV);
  } catch {
    // No --allow-env: fall through to the local build.
  }
  if (fromEnv) paths.push(`${fromEnv.replace(/\/+$/, "")}/${fileName}`);
  const local = new URL(fileName, LOCAL_BUILD_DIR);
  if (local.protocol === "file:") paths.push(decodeURIComponent(local.pathname));
  return paths;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The path of the first candidate for `fileName` that exists, or a NativeLibraryError listing the
 * paths tried. Other modules pass this to `Deno.dlopen`.
 */
export function nativeLibraryPath(fileName: string): string {
  const attempts: { path: string; error: string }[] = [];
  for (const path of candidatePaths(fileName)) {
    try {
      if (Deno.statSync(path).isFile) return path;
      attempts.push({ path, error: "not a regular file" });
    } catch (error) {
      attempts.push({ path, error: describe(error) });
    }
  }
  throw new NativeLibraryError(fileName, attempts);
}

/**
 * Opens `fileName` with `symbols`, trying each candidate path in order; the error lists every path
 * with its dlopen error.
 */
export function openNativeLibrary<const S extends Deno.ForeignLibraryInterface>(
  fileName: string,
  symbols: S,
): Deno.DynamicLibrary<S> {
  const attempts: { path: string; error: string }[] = [];
  for (const path of candidatePaths(fileName)) {
    try {
      return Deno.dlopen(path, symbols);
    } catch (error) {
      attempts.push({ path, error: describe(error) });
    }
  }
  throw new NativeLibraryError(fileName, attempts);
}
