/**
 * The C style check: every tracked C file and header as `.clang-format` says (Debian's
 * clang-format, installed by the project's dependency step). `deno task test` runs it on the
 * host as a suite of its own, one result per file; alone: `deno run -A tools/c_style.ts`.
 *
 * @module
 */
import { ensureDebianPackages } from "./deps.ts";
import { ROOT } from "./build.ts";

/** The files that differ from their clang-format output, of those tracked by git. */
export function cStyleCheck(): { checked: string[]; differing: string[] } {
  ensureDebianPackages(["clang-format"], "checking the C style");
  const listed = new Deno.Command("git", {
    args: ["ls-files", "*.c", "*.h"],
    cwd: ROOT,
  }).outputSync();
  if (!listed.success) throw new Error("git ls-files failed");
  const checked = new TextDecoder().decode(listed.stdout).split("\n").filter((f) => f !== "");
  const differing = checked.filter((file) =>
    !new Deno.Command("clang-format", {
      args: ["--dry-run", "-Werror", file],
      cwd: ROOT,
      stderr: "null",
    }).outputSync().success
  );
  return { checked, differing };
}

if (import.meta.main) {
  const { checked, differing } = cStyleCheck();
  for (const file of differing) {
    console.log(`not in the C style: ${file} (clang-format -i ${file})`);
  }
  console.log(`${checked.length - differing.length} passed, ${differing.length} failed`);
  Deno.exit(differing.length === 0 ? 0 : 1);
}
