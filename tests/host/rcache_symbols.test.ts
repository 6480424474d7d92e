// The cache library's FFI table says what its public header declares: every entry's comment
// begins with the C declaration rcache.h gives that function, and its parameter and result types
// are those of that declaration; an entry for a function the header does not declare fails.
import assert from "node:assert/strict";
import { rcacheSymbols } from "../../ffi/rcache.ts";
import { ROOT } from "../../tools/build.ts";
import {
  assertTableMatchesHeader,
  cTypes,
  ffiTypes,
  headerDeclarations,
} from "../support/symbol_tables.ts";

/** Every function declaration of rcache.h (RCACHE_API left out), by function name. */
function declarations(): Map<string, string> {
  return headerDeclarations(
    Deno.readTextFileSync(`${ROOT}/cache/native/rcache.h`),
    "RCACHE_API",
  );
}

Deno.test("each cache symbol's comment is its C declaration, and its types match it", () => {
  assertTableMatchesHeader(
    rcacheSymbols,
    "ffi/rcache.ts",
    "cache/native/rcache.h",
    15,
    "RCACHE_API",
  );
});

Deno.test("the check reads rcache.h's declarations and their types", () => {
  const declared = declarations();
  assert.equal(
    declared.get("rcache_get_buffer"),
    "int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access, " +
      "int32_t front)",
  );
  assert.equal(declared.get("rcache_front"), "_Atomic uint32_t *rcache_front(int slot)");
  assert.deepEqual(cTypes("double rcache_memlock_limit(void)"), {
    result: "double",
    parameters: [],
  });
  assert.deepEqual(ffiTypes("double"), ["f64"]);
  assert.deepEqual(ffiTypes("_Atomic uint32_t *"), ["pointer", "buffer"]);
});
