// The verbs shim's FFI table says what its C code declares: every exported function has an entry
// whose comment is its C declaration, and whose parameter and result types are those of that
// declaration; an entry for a function the shim does not export fails too.
import assert from "node:assert/strict";
import { verbsSymbols } from "../../ffi/verbs_symbols.ts";
import { ROOT } from "../../tools/build.ts";
import {
  assertTableMatches,
  commentedDeclarations,
  cTypes,
  ffiTypes,
  normalize,
} from "../support/symbol_tables.ts";

const SOURCES = `${ROOT}/ffi/native`;

/** Every `EXPORT <declaration> {` of the shim's C files, by function name. */
function exportedDeclarations(): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of Deno.readDirSync(SOURCES)) {
    if (!entry.name.endsWith(".c")) continue;
    const text = Deno.readTextFileSync(`${SOURCES}/${entry.name}`);
    for (const match of text.matchAll(/^EXPORT\s+([^{;]+?)\s*\{/gm)) {
      const declaration = normalize(match[1]);
      found.set(/(\w+)\(/.exec(declaration)![1], declaration);
    }
  }
  return found;
}

Deno.test("each verbs symbol's comment is its C declaration, and its types match it", () => {
  const exported = exportedDeclarations();
  const commented = commentedDeclarations(Deno.readTextFileSync(`${ROOT}/ffi/verbs_symbols.ts`));
  assert.ok(exported.size > 40, `found ${exported.size} exported functions`);
  assert.deepEqual(Object.keys(verbsSymbols).sort(), [...exported.keys()].sort());
  assertTableMatches(verbsSymbols, exported, commented, "the verbs shim");
});

Deno.test("the check reads a declaration's types", () => {
  assert.deepEqual(
    cTypes("int drv_post_send(struct ibv_qp *qp, const struct drv_send_desc *d)"),
    { result: "int", parameters: ["struct ibv_qp *", "const struct drv_send_desc *"] },
  );
  assert.deepEqual(cTypes("int drv_last_errno(void)"), { result: "int", parameters: [] });
  assert.deepEqual(ffiTypes("uint64_t"), ["u64"]);
  assert.deepEqual(ffiTypes("struct ibv_device **"), ["pointer", "buffer"]);
});
