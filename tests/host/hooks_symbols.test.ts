// The hooks library's FFI table says what its public header declares: every entry's comment
// begins with the C declaration opal_memhooks.h gives that function, and its parameter and result
// types are those of that declaration; an entry for a function the header does not declare fails.
import assert from "node:assert/strict";
import { memhooksSymbols } from "../../ffi/memhooks.ts";
import { ROOT } from "../../tools/build.ts";
import {
  assertTableMatchesHeader,
  cTypes,
  ffiTypes,
  headerDeclarations,
} from "../support/symbol_tables.ts";

/** Every function declaration of opal_memhooks.h, by function name. */
function declarations(): Map<string, string> {
  return headerDeclarations(Deno.readTextFileSync(`${ROOT}/hooks/native/opal_memhooks.h`));
}

Deno.test("each hooks symbol's comment is its C declaration, and its types match it", () => {
  assertTableMatchesHeader(memhooksSymbols, "ffi/memhooks.ts", "hooks/native/opal_memhooks.h", 20);
});

Deno.test("the check reads the header's declarations and their types", () => {
  const declared = declarations();
  assert.equal(
    declared.get("opal_mem_hooks_register_release"),
    "int opal_mem_hooks_register_release(opal_mem_hooks_callback_fn_t *func, void *cbdata)",
  );
  assert.equal(
    declared.get("memhooks_queue_drain"),
    "size_t memhooks_queue_drain(int subscriber, struct memhooks_event *out, size_t max)",
  );
  assert.ok(!declared.has("opal_mem_hooks_callback_fn_t"), "a typedef is no function");
  assert.deepEqual(
    cTypes("int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered)"),
    { result: "int", parameters: ["const uint8_t *", "size_t", "size_t *"] },
  );
  assert.deepEqual(ffiTypes("opal_mem_hooks_callback_fn_t *"), ["function"]);
  assert.deepEqual(ffiTypes("uintptr_t"), ["usize"]);
});
