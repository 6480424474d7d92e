/**
 * Builds deno-rdma's run-time native libraries ahead of time (for images and offline machines)
 * and prints the folder to put in `DENO_RDMA_LIB_DIR`. Works from a checkout or by URL:
 *
 * ```sh
 * deno run -A https://<where the module is>/tools/install.ts [--copy-to <folder>]
 * ```
 *
 * It builds into the per-user cache (`DENO_RDMA_CACHE_DIR`, ...) as a first use would, verifies
 * every library against the entry's manifest, and with `--copy-to` copies the libraries and the
 * manifest into `<folder>` too. The folder is the only line on stdout.
 *
 * @module
 */
import { ensureNativeLibraries, MANIFEST_FILE } from "../ffi/native_build.ts";
import { RUNTIME_LIBRARIES } from "../ffi/native_targets.ts";

if (import.meta.main) {
  const at = Deno.args.indexOf("--copy-to");
  let dir = ensureNativeLibraries({ fresh: true });
  if (at >= 0) {
    const target = Deno.args[at + 1];
    if (!target) throw new TypeError("--copy-to needs a folder");
    Deno.mkdirSync(target, { recursive: true });
    for (const name of [...RUNTIME_LIBRARIES, MANIFEST_FILE]) {
      Deno.copyFileSync(`${dir}/${name}`, `${target}/${name}`);
    }
    dir = Deno.realPathSync(target);
  }
  console.error(`deno-rdma: native libraries ready; run programs with DENO_RDMA_LIB_DIR=${dir}`);
  console.log(dir);
}
