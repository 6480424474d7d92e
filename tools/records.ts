/**
 * Writes `ffi/records/*.ts`, the TypeScript side of every record and constant shared with C, from
 * what the built native libraries report (ffi/native/records.h): each group (a record's size and
 * field offsets, or a set of constants) becomes one object, each single constant one number.
 * `deno task build` runs it after compiling; a host test fails when a checked-in file is stale.
 *
 * @module
 */
import { readRecords, RECORD_SOURCES } from "../ffi/records.ts";

/** The module text for the entries of `library`. */
export function recordsModule(library: string, entries: [string, string, number][]): string {
  const groups = new Map<string, [string, number][]>();
  const lines = [
    "/**",
    ` * Records and constants shared with ${library}, as its C sources describe them`,
    " * (ffi/native/records.h). Written by `deno task build` (tools/records.ts): do not edit.",
    " *",
    " * @module",
    " */",
    "",
  ];
  for (const [group, key, value] of entries) {
    if (group === "") {
      lines.push(`/** ${key}, from C. */`, `export const ${key} = ${value};`, "");
    } else {
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group)!.push([key, value]);
    }
  }
  for (const [group, fields] of groups) {
    const what = fields[0][0] === "size" ? "size and field offsets in bytes" : "values";
    lines.push(`/** ${group}: ${what}, from C. */`, `export const ${group} = {`);
    for (const [key, value] of fields) lines.push(`  ${key}: ${value},`);
    lines.push("} as const;", "");
  }
  return lines.join("\n");
}

/** The module text for each source, read from the libraries in `buildDir`. */
export function recordModules(buildDir: string): { path: string; text: string }[] {
  return RECORD_SOURCES.map((source) => ({
    path: source.module,
    text: recordsModule(
      source.library,
      readRecords(`${buildDir}/${source.library}`, source.symbol),
    ),
  }));
}

/** Rewrites each module under `root` whose text changed; returns the paths written. */
export function writeRecordModules(root: string, buildDir: string): string[] {
  const written: string[] = [];
  for (const { path, text } of recordModules(buildDir)) {
    let old = "";
    try {
      old = Deno.readTextFileSync(`${root}/${path}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (old === text) continue;
    Deno.writeTextFileSync(`${root}/${path}`, text);
    written.push(path);
  }
  return written;
}
