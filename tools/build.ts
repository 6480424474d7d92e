/**
 * Builds the native libraries into `build/` with the system C compiler.
 *
 * Each target of `ffi/native_targets.ts` (the one build description, which the first-use builder
 * shares) compiles the C files it lists into one shared library. A target is rebuilt when its
 * output is missing or older than any of its sources, any header in its sources' folders or its
 * include folders, this file or the build description. `ensureBuilt()` is what `test`, `demo` and `bench` call first.
 *
 * @module
 */
import { BUILD_PACKAGES, ensureDebianPackages } from "./deps.ts";
import { writeRecordModules } from "./records.ts";
import {
  compileArgs,
  dirOf,
  type NativeTarget,
  targetFolders,
  TARGETS,
} from "../ffi/native_targets.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BUILD_DIR = `${ROOT}/build`;

function mtimeOf(path: string): number {
  try {
    return Deno.statSync(`${ROOT}/${path}`).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

function filesIn(dir: string, extension: string): string[] {
  try {
    return [...Deno.readDirSync(`${ROOT}/${dir}`)]
      .filter((e) => e.isFile && e.name.endsWith(extension))
      .map((e) => `${dir}/${e.name}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

function isStale(target: NativeTarget): boolean {
  let built: number;
  try {
    built = Deno.statSync(`${BUILD_DIR}/${target.output}`).mtime?.getTime() ?? 0;
  } catch {
    return true;
  }
  const inputs = [...target.sources, ...targetFolders(target).flatMap((d) => filesIn(d, ".h"))];
  const newest = Math.max(
    ...inputs.map(mtimeOf),
    ...[import.meta.url, new URL("../ffi/native_targets.ts", import.meta.url).href].map((url) =>
      Deno.statSync(new URL(url).pathname).mtime?.getTime() ?? 0
    ),
  );
  return newest > built;
}

/** C files in a target's source folders that no target lists (they would not be compiled). */
export function unlistedSources(): string[] {
  const listed = new Set(TARGETS.flatMap((t) => t.sources));
  const dirs = new Set(TARGETS.flatMap((t) => t.sources.map(dirOf)));
  return [...dirs].flatMap((d) => filesIn(d, ".c")).filter((f) => !listed.has(f)).sort();
}

function compile(target: NativeTarget): void {
  const cc = Deno.env.get("CC") ?? "cc";
  const args = compileArgs(target);
  const { code, stderr } = new Deno.Command(cc, { args, cwd: ROOT, stderr: "piped" }).outputSync();
  const diagnostics = new TextDecoder().decode(stderr);
  if (code !== 0) {
    throw new Error(
      `building build/${target.output} failed:\n${cc} ${args.join(" ")}\n${diagnostics}`,
    );
  }
  if (diagnostics.trim()) console.error(diagnostics);
}

/** Builds every stale target. Returns the names of the libraries it (re)built. */
export function ensureBuilt(options: { force?: boolean; quiet?: boolean } = {}): string[] {
  ensureDebianPackages(BUILD_PACKAGES, "building the native libraries");
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  for (const file of unlistedSources()) {
    console.error(
      `warning: ${file} is in no target of ffi/native_targets.ts, so it is not compiled`,
    );
  }
  const rebuilt: string[] = [];
  for (const target of TARGETS) {
    if (!options.force && !isStale(target)) continue;
    compile(target);
    rebuilt.push(target.output);
  }
  if (!options.quiet && rebuilt.length > 0) console.error(`built: ${rebuilt.join(", ")}`);
  // The TypeScript side of the shared records, from what the libraries just built say.
  const written = writeRecordModules(ROOT, BUILD_DIR);
  if (written.length > 0) console.error(`wrote: ${written.join(", ")}`);
  return rebuilt;
}

if (import.meta.main) {
  const rebuilt = ensureBuilt({ force: Deno.args.includes("--force"), quiet: true });
  console.log(rebuilt.length ? `built: ${rebuilt.join(", ")}` : "native libraries are up to date");
}
