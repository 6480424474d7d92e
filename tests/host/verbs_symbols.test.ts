// The verbs shim's FFI table says what its C code declares: every exported function has an entry
// whose comment is its C declaration, and whose parameter and result types are those of that
// declaration; an entry for a function the shim does not export fails too.
import assert from "node:assert/strict";
import { verbsSymbols } from "../../ffi/verbs_symbols.ts";
import { ROOT } from "../../tools/build.ts";

const SOURCES = `${ROOT}/ffi/native`;

/** Whitespace collapsed, none inside parentheses' edges. */
function normalize(text: string): string {
  return text.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").trim();
}

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

/** The declaration each entry's comment gives: its text up to the first empty comment line. */
function commentedDeclarations(): Map<string, string> {
  const text = Deno.readTextFileSync(`${ROOT}/ffi/verbs_symbols.ts`);
  const found = new Map<string, string>();
  for (const match of text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*(\w+): \{/g)) {
    const lines = match[1].split("\n").map((line) => line.replace(/^\s*\*?\s?/, ""));
    const first = lines.findIndex((line) => line.trim() !== "");
    const end = lines.findIndex((line, i) => i > first && line.trim() === "");
    found.set(match[2], normalize(lines.slice(first, end < 0 ? undefined : end).join(" ")));
  }
  return found;
}

/** The FFI type a C type crosses as: one of `allowed`. */
function ffiTypes(cType: string): readonly string[] {
  if (cType.includes("*")) return ["pointer", "buffer"];
  const scalar: Record<string, string> = {
    void: "void",
    int: "i32",
    int32_t: "i32",
    uint32_t: "u32",
    uint64_t: "u64",
    size_t: "usize",
  };
  const type = scalar[cType.replace(/\bconst\b/g, "").trim()];
  assert.ok(type !== undefined, `no FFI type for C type ${cType}`);
  return [type];
}

/** The result type and each parameter's type of a C declaration. */
function cTypes(declaration: string): { result: string; parameters: string[] } {
  const match = /^(.*?)(\w+)\((.*)\)$/.exec(declaration)!;
  const parameters = match[3] === "void" ? [] : match[3].split(",").map((parameter) => {
    const p = parameter.trim();
    return p.includes("*") ? p.slice(0, p.lastIndexOf("*") + 1) : p.replace(/\s*\w+$/, "");
  });
  return { result: match[1].trim(), parameters };
}

Deno.test("each verbs symbol's comment is its C declaration, and its types match it", () => {
  const exported = exportedDeclarations();
  const commented = commentedDeclarations();
  assert.ok(exported.size > 40, `found ${exported.size} exported functions`);
  const table = verbsSymbols as Record<string, Deno.ForeignFunction>;
  assert.deepEqual(Object.keys(table).sort(), [...exported.keys()].sort());
  for (const [name, declaration] of exported) {
    assert.equal(commented.get(name), declaration, `the comment of ${name}`);
    const { result, parameters } = cTypes(declaration);
    const symbol = table[name];
    assert.equal(symbol.parameters.length, parameters.length, `${name}'s parameter count`);
    symbol.parameters.forEach((type, i) =>
      assert.ok(
        ffiTypes(parameters[i]).includes(type as string),
        `${name} parameter ${i} (${parameters[i]}) is declared ${type}`,
      )
    );
    assert.ok(
      ffiTypes(result).includes(symbol.result as string),
      `${name} returns ${result}, declared ${symbol.result}`,
    );
  }
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
