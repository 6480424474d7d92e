/**
 * Finds and opens the project's native libraries.
 *
 * Search order for a library file name: the folder named by the `DENO_RDMA_LIB_DIR` environment
 * variable, then the checkout's `build/` folder (made by `deno task build`) when this module is a
 * local file, then, for the libraries a program needs at run time, the per-user cache of
 * `ffi/native_build.ts`, which builds them there from the C sources on first use. A library in
 * `DENO_RDMA_LIB_DIR` is checked against that folder's `manifest.json` when it has one. When
 * nothing opens, the NativeLibraryError lists every place tried and says what to do.
 *
 * @module
 */
import { NativeLibraryError } from "./native_error.ts";
import { ensureNativeLibraries, entryRefusal, MANIFEST_FILE } from "./native_build.ts";
import { RUNTIME_LIBRARIES } from "./native_targets.ts";

export { NativeLibraryError };

/** Environment variable naming a folder that holds the built native libraries. */
export const LIB_DIR_ENV = "DENO_RDMA_LIB_DIR";

/** The repository's build folder, where `deno task build` writes the native libraries. */
export const LOCAL_BUILD_DIR = new URL("../build/", import.meta.url);

function libDir(): string | undefined {
  try {
    return Deno.env.get(LIB_DIR_ENV)?.replace(/\/+$/, "") || undefined;
  } catch {
    return undefined; // No --allow-env: fall through to the local build and the cache.
  }
}

/** Candidate paths for `fileName` before the cache, in search order. */
export function candidatePaths(fileName: string): string[] {
  if (typeof fileName !== "string" || fileName === "" || fileName.includes("/")) {
    throw new TypeError(`native library file name must be a bare file name, got ${fileName}`);
  }
  const paths: string[] = [];
  const fromEnv = libDir();
  if (fromEnv) paths.push(`${fromEnv}/${fileName}`);
  const local = new URL(fileName, LOCAL_BUILD_DIR);
  if (local.protocol === "file:") paths.push(decodeURIComponent(local.pathname));
  return paths;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Why a library in DENO_RDMA_LIB_DIR must not load (its manifest disagrees), else null. */
function libDirRefusal(path: string): string | null {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir !== libDir()) return null;
  try {
    Deno.statSync(`${dir}/${MANIFEST_FILE}`);
  } catch {
    return null; // no manifest (e.g. a copy of build/): nothing to check against
  }
  return entryRefusal(dir, [path.slice(dir.length + 1)]);
}

function locate<T>(fileName: string, use: (path: string) => T): T {
  const attempts: { path: string; error: string }[] = [];
  for (const path of candidatePaths(fileName)) {
    const refusal = libDirRefusal(path);
    if (refusal !== null) {
      attempts.push({ path, error: `refused: ${refusal}` });
      continue;
    }
    try {
      return use(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) {
        throw new NativeLibraryError(fileName, [...attempts, { path, error: describe(error) }], {
          reason: "permission",
          flag: "--allow-ffi",
          advice: "run with --allow-ffi (Deno refused to open a native library)",
          cause: error,
        });
      }
      attempts.push({ path, error: describe(error) });
    }
  }
  if (!RUNTIME_LIBRARIES.includes(fileName)) throw new NativeLibraryError(fileName, attempts);
  let dir: string;
  try {
    dir = ensureNativeLibraries();
  } catch (error) {
    if (error instanceof NativeLibraryError) throw error.forLibrary(fileName, attempts);
    throw error;
  }
  const path = `${dir}/${fileName}`;
  try {
    return use(path);
  } catch (error) {
    const denied = error instanceof Deno.errors.NotCapable;
    throw new NativeLibraryError(fileName, [...attempts, { path, error: describe(error) }], {
      reason: denied ? "permission" : "not-found",
      flag: denied ? "--allow-ffi" : undefined,
      advice: denied
        ? "run with --allow-ffi (Deno refused to open a native library)"
        : "the cache entry did not open; remove it to rebuild",
      cause: error,
    });
  }
}

/**
 * The path of the first candidate for `fileName` that exists (building the run-time libraries in
 * the cache when no other candidate has them), or a NativeLibraryError. Other modules pass this to
 * `Deno.dlopen` or read the file.
 */
export function nativeLibraryPath(fileName: string): string {
  return locate(fileName, (path) => {
    if (!Deno.statSync(path).isFile) throw new Error("not a regular file");
    return path;
  });
}

/**
 * Opens `fileName` with `symbols`, trying each candidate in order (and the cache, building it on
 * first use); the error lists every place tried with its error.
 */
export function openNativeLibrary<const S extends Deno.ForeignLibraryInterface>(
  fileName: string,
  symbols: S,
): Deno.DynamicLibrary<S> {
  return locate(fileName, (path) => Deno.dlopen(path, symbols));
}
