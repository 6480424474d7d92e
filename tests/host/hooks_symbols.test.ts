// The hooks library's FFI table says what its public header declares: every entry's comment
// begins with the C declaration opal_memhooks.h gives that function, and its parameter and result
// types are those of that declaration; an entry for a function the header does not declare fails.
import assert from "node:assert/strict";
import { memhooksSymbols } from "../../ffi/memhooks.ts";
import { ROOT } from "../../tools/build.ts";

/** Whitespace collapsed, none inside parentheses' edges. */
function normalize(text: string): string {
  return text.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").trim();
}

/** Every function declaration of opal_memhooks.h (comments left out), by function name. */
function headerDeclarations(): Map<string, string> {
  const text = Deno.readTextFileSync(`${ROOT}/hooks/native/opal_memhooks.h`)
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/^#.*(?:\\\n.*)*$/gm, " ");
  const found = new Map<string, string>();
  // A declaration: after the start, a `;` or a brace, up to its `;` (no body, no `=`).
  const declaration = /(?<=^|[;{}])\s*([A-Za-z_][\w \t*]*?\b(\w+)\s*\([^;{}=]*\))\s*;/g;
  for (const match of text.matchAll(declaration)) {
    if (/^typedef\b/.test(match[1])) continue;
    found.set(match[2], normalize(match[1]));
  }
  return found;
}

/** The declaration that begins each entry's comment (up to its closing parenthesis). */
function commentedDeclarations(): Map<string, string> {
  const text = Deno.readTextFileSync(`${ROOT}/ffi/memhooks.ts`);
  const found = new Map<string, string>();
  for (const match of text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*(\w+): \{/g)) {
    const comment = normalize(
      match[1].split("\n").map((l) => l.replace(/^\s*\*?\s?/, "")).join(" "),
    );
    const declaration = /^[^(]*\([^)]*\)/.exec(comment);
    if (declaration) found.set(match[2], declaration[0]);
  }
  return found;
}

/** The FFI types a C type may cross as. */
function ffiTypes(cType: string): readonly string[] {
  if (cType.includes("opal_mem_hooks_callback_fn_t")) return ["function"];
  if (cType.includes("*")) return ["pointer", "buffer"];
  const scalar: Record<string, string> = {
    void: "void",
    int: "i32",
    int32_t: "i32",
    uintptr_t: "usize",
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

Deno.test("each hooks symbol's comment is its C declaration, and its types match it", () => {
  const declared = headerDeclarations();
  const commented = commentedDeclarations();
  assert.ok(declared.size > 20, `found ${declared.size} declarations in opal_memhooks.h`);
  const table = memhooksSymbols as Record<string, Deno.ForeignFunction>;
  for (const [name, symbol] of Object.entries(table)) {
    const declaration = declared.get(name);
    assert.ok(declaration !== undefined, `opal_memhooks.h declares no ${name}`);
    assert.equal(commented.get(name), declaration, `the comment of ${name}`);
    const { result, parameters } = cTypes(declaration);
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

Deno.test("the check reads the header's declarations and their types", () => {
  const declared = headerDeclarations();
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
