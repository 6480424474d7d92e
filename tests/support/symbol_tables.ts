/**
 * Test support: checks that an FFI symbol table says what its C code declares. Each table entry's
 * comment begins with the function's C declaration (parameter names and types), and the entry's
 * parameter and result types are those that declaration's C types cross as.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ROOT } from "../../tools/build.ts";

/** Whitespace collapsed, none inside parentheses' edges. */
export function normalize(text: string): string {
  return text.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").trim();
}

/**
 * Every function declaration of the C header `text` (comments and preprocessor lines left out),
 * by function name; `exportMacro` (such as `RCACHE_API`) is dropped from each.
 */
export function headerDeclarations(text: string, exportMacro?: string): Map<string, string> {
  let code = text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/^#.*(?:\\\n.*)*$/gm, " ");
  if (exportMacro !== undefined) {
    code = code.replaceAll(new RegExp(`\\b${exportMacro}\\b`, "g"), " ");
  }
  const found = new Map<string, string>();
  // A declaration: after the start, a `;` or a brace, up to its `;` (no body, no `=`).
  const declaration = /(?<=^|[;{}])\s*([A-Za-z_][\w \t*]*?\b(\w+)\s*\([^;{}=]*\))\s*;/g;
  for (const match of code.matchAll(declaration)) {
    if (/^typedef\b/.test(match[1])) continue;
    found.set(match[2], normalize(match[1]));
  }
  return found;
}

/** The C declaration that begins each entry's comment in the table source `text`, by entry name. */
export function commentedDeclarations(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*\n\s*(\w+): \{/g)) {
    const comment = normalize(
      match[1].split("\n").map((line) => line.replace(/^\s*\*?\s?/, "")).join(" "),
    );
    const declaration = /^[^(]*\([^)]*\)/.exec(comment);
    if (declaration) found.set(match[2], declaration[0]);
  }
  return found;
}

const SCALARS: Record<string, string> = {
  void: "void",
  int: "i32",
  int32_t: "i32",
  uint32_t: "u32",
  uint64_t: "u64",
  size_t: "usize",
  uintptr_t: "usize",
  double: "f64",
};

/** The FFI types a C type may cross as (a `*_fn_t` callback as a function). */
export function ffiTypes(cType: string): readonly string[] {
  if (/\w_fn_t\b/.test(cType)) return ["function"];
  if (cType.includes("*")) return ["pointer", "buffer"];
  const type = SCALARS[cType.replace(/\bconst\b/g, "").trim()];
  assert.ok(type !== undefined, `no FFI type for C type ${cType}`);
  return [type];
}

/** The result type and each parameter's type of a C declaration. */
export function cTypes(declaration: string): { result: string; parameters: string[] } {
  const match = /^(.*?)(\w+)\((.*)\)$/.exec(declaration)!;
  const parameters = match[3] === "void" ? [] : match[3].split(",").map((parameter) => {
    const p = parameter.trim();
    return p.includes("*") ? p.slice(0, p.lastIndexOf("*") + 1) : p.replace(/\s*\w+$/, "");
  });
  return { result: match[1].trim(), parameters };
}

/**
 * Asserts that every entry of `table` has a declaration in `declared`, that its comment in
 * `commented` is that declaration, and that its FFI types are those of the declaration's C types.
 * `source` names the C side in messages.
 */
export function assertTableMatches(
  table: Deno.ForeignLibraryInterface,
  declared: Map<string, string>,
  commented: Map<string, string>,
  source: string,
): void {
  for (const [name, symbol] of Object.entries(table as Record<string, Deno.ForeignFunction>)) {
    const declaration = declared.get(name);
    assert.ok(declaration !== undefined, `${source} declares no ${name}`);
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
}

/**
 * Asserts that the table in `tableFile` (`table`, its entries commented) matches the functions the
 * C header `headerFile` declares (files relative to the repo root; `exportMacro` as in
 * headerDeclarations), and that the header declares more than `atLeast` (the parse found them).
 */
export function assertTableMatchesHeader(
  table: Deno.ForeignLibraryInterface,
  tableFile: string,
  headerFile: string,
  atLeast: number,
  exportMacro?: string,
): void {
  const declared = headerDeclarations(Deno.readTextFileSync(`${ROOT}/${headerFile}`), exportMacro);
  assert.ok(declared.size > atLeast, `found ${declared.size} declarations in ${headerFile}`);
  const commented = commentedDeclarations(Deno.readTextFileSync(`${ROOT}/${tableFile}`));
  assertTableMatches(table, declared, commented, headerFile);
}
