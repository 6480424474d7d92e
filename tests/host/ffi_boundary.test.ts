// ffi/ is the one unsafe boundary: no TypeScript file outside it opens a library or touches Deno's
// unsafe pointer API (dlopen, UnsafePointer, UnsafePointerView, UnsafeCallback, ...). Code that
// must name native memory uses ffi/pointers.ts, libc's functions come from ffi/libc.ts, and each
// native library has its table in ffi/. A file that does so fails here, by name.
import assert from "node:assert/strict";
import { ROOT } from "../../tools/build.ts";

/** What crosses the boundary: opening a library, or an unsafe pointer class. */
const UNSAFE = /\bDeno\s*\.\s*(?:dlopen|Unsafe\w*)\b/;

/** Folders of the repository that are not its code, or are the boundary itself. */
const SKIPPED = new Set(["ffi", "node_modules", "build", ".cache", ".git"]);

/** Every .ts file under `dir` (relative to the root), skipped folders left out at the top. */
function* sources(dir = ""): Generator<string> {
  for (const entry of Deno.readDirSync(dir === "" ? ROOT : `${ROOT}/${dir}`)) {
    if (dir === "" && SKIPPED.has(entry.name)) continue;
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (entry.isFile && entry.name.endsWith(".ts")) yield path;
  }
}

/** The files outside ffi/ that cross the boundary, sorted. */
function crossing(): string[] {
  return [...sources()].filter((path) => UNSAFE.test(Deno.readTextFileSync(`${ROOT}/${path}`)))
    .sort();
}

Deno.test("only ffi/ opens libraries or uses unsafe pointers", () => {
  const found = crossing();
  assert.deepEqual(
    found,
    [],
    `outside ffi/, these use dlopen or an unsafe pointer class: ${found.join(", ")} ` +
      "(use ffi/pointers.ts, ffi/libc.ts or a table in ffi/)",
  );
});

Deno.test("the check sees each way across", () => {
  const D = "Deno"; // spelled apart, so that this file does not cross
  const crosses = [
    `const lib = ${D}.dlopen("libc.so.6", {});`,
    `const p = ${D}.UnsafePointer.create(1n);`,
    `new ${D}.UnsafePointerView(p)`,
    `${D}.UnsafeCallback`,
    `${D}\n  .dlopen(path, symbols)`,
  ];
  for (const text of crosses) assert.ok(UNSAFE.test(text), text);
  const safe = ["const p: Deno.PointerObject = pointerAt(1n);", "Deno.PointerValue", "dlopen(x)"];
  for (const text of safe) assert.ok(!UNSAFE.test(text), text);
});
