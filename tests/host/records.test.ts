// Every record and constant shared by C and TypeScript has one source, the C field lists
// (ffi/native/records.h): the checked-in ffi/records/*.ts are exactly what the built libraries
// describe, so a changed C record with a stale TypeScript side fails here.
import assert from "node:assert/strict";
import { readRecords, RECORD_SOURCES } from "../../ffi/records.ts";
import { BUILD_DIR, ROOT } from "../../tools/build.ts";
import { recordModules, recordsModule } from "../../tools/records.ts";

Deno.test("each ffi/records module is what its library describes", () => {
  for (const { path, text } of recordModules(BUILD_DIR)) {
    assert.equal(
      Deno.readTextFileSync(`${ROOT}/${path}`),
      text,
      `${path} is stale: run deno task build`,
    );
  }
});

Deno.test("the descriptions are complete: every record has its size and fields, in order", () => {
  for (const source of RECORD_SOURCES) {
    const entries = readRecords(`${BUILD_DIR}/${source.library}`, source.symbol);
    assert.ok(entries.length > 10, `${source.library} described ${entries.length} entries`);
    const sizes = new Map<string, number>();
    for (const [group, key, value] of entries) {
      if (key === "size") sizes.set(group, value);
      else if (sizes.has(group)) {
        assert.ok(value < sizes.get(group)!, `${group}.${key} at ${value} is past its size`);
      }
    }
  }
});

Deno.test("a changed offset changes the module (the check can fail)", () => {
  const entries: [string, string, number][] = [["SGE", "size", 16], ["SGE", "lkey", 12]];
  const moved: [string, string, number][] = [["SGE", "size", 16], ["SGE", "lkey", 8]];
  assert.notEqual(recordsModule("x.so", entries), recordsModule("x.so", moved));
});
