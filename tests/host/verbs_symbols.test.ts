// Each shim's FFI table (the verbs', the connection manager's) says what its C code declares: every exported function has an entry
// whose comment is its C declaration, and whose parameter and result types are those of that
// declaration; an entry for a function the shim does not export fails too.
import assert from "node:assert/strict";
import { rdmacmSymbols } from "../../ffi/rdmacm_symbols.ts";
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

/** The connection manager's shim; every other C file here is the verbs shim's. */
const CM_SHIM = "cm_shim.c";

/** Every `EXPORT <declaration> {` of the C files `belongs` picks, by function name. */
function exportedDeclarations(belongs: (file: string) => boolean): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of Deno.readDirSync(SOURCES)) {
    if (!entry.name.endsWith(".c") || !belongs(entry.name)) continue;
    const text = Deno.readTextFileSync(`${SOURCES}/${entry.name}`);
    for (const match of text.matchAll(/^EXPORT\s+([^{;]+?)\s*\{/gm)) {
      const declaration = normalize(match[1]);
      found.set(/(\w+)\(/.exec(declaration)![1], declaration);
    }
  }
  return found;
}

Deno.test("each verbs symbol's comment is its C declaration, and its types match it", () => {
  const exported = exportedDeclarations((file) => file !== CM_SHIM);
  const commented = commentedDeclarations(Deno.readTextFileSync(`${ROOT}/ffi/verbs_symbols.ts`));
  assert.ok(exported.size > 40, `found ${exported.size} exported functions`);
  assert.deepEqual(Object.keys(verbsSymbols).sort(), [...exported.keys()].sort());
  assertTableMatches(verbsSymbols, exported, commented, "the verbs shim");
});

Deno.test("each rdmacm symbol's comment is its C declaration, and its types match it", () => {
  const exported = exportedDeclarations((file) => file === CM_SHIM);
  const commented = commentedDeclarations(Deno.readTextFileSync(`${ROOT}/ffi/rdmacm_symbols.ts`));
  assert.ok(exported.size > 15, `found ${exported.size} exported functions`);
  assert.deepEqual(Object.keys(rdmacmSymbols).sort(), [...exported.keys()].sort());
  assertTableMatches(rdmacmSymbols, exported, commented, "the connection-manager shim");
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
