// The layers import as the README draws them: ffi <- verbs <- cm, ffi <- verbs <- cache -> hooks (and testing over
// cache), the examples use the public API. A file that imports across a layer fails here, naming
// the import.
import assert from "node:assert/strict";
import { ROOT } from "../../tools/build.ts";

/** What each top-level folder (or file) may import, by the importee's top-level folder. */
const ALLOWED: Record<string, string[]> = {
  "ffi": ["ffi"],
  "verbs": ["ffi", "verbs"],
  "cm": ["ffi", "verbs", "cm"],
  "hooks": ["ffi", "hooks"],
  "cache": ["ffi", "verbs", "hooks", "cache"],
  "testing": ["ffi", "verbs", "hooks", "cache", "testing"],
  "examples": ["mod.ts", "examples", "ffi"],
};

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/g;

function* sources(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(`${ROOT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** The top-level folder (or root file) a relative import from `file` lands in, else null. */
function layerOf(file: string, specifier: string): string | null {
  if (!specifier.startsWith(".")) return null; // npm:, node:, bare: not a layer
  const resolved = new URL(specifier, `file:///${file}`).pathname.slice(1);
  return resolved.includes("/") ? resolved.split("/")[0] : resolved;
}

/** Every import of a layer's files that its rule does not allow. */
function violations(): string[] {
  const found: string[] = [];
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    try {
      Deno.statSync(`${ROOT}/${layer}`);
    } catch {
      continue; // a layer that does not exist (yet) has nothing to check
    }
    for (const file of sources(layer)) {
      const text = Deno.readTextFileSync(`${ROOT}/${file}`);
      for (const match of text.matchAll(IMPORT)) {
        const specifier = match[1] ?? match[2];
        const target = layerOf(file, specifier);
        if (target !== null && !allowed.includes(target)) {
          found.push(`${file} imports ${specifier} (${layer} may import ${allowed.join(", ")})`);
        }
      }
    }
  }
  return found;
}

Deno.test("every layer imports only what it may", () => {
  assert.deepEqual(violations(), []);
});

Deno.test("the check sees a cross-layer import", () => {
  assert.equal(layerOf("verbs/queue_pair.ts", "../cache/mod.ts"), "cache");
  assert.equal(layerOf("verbs/queue_pair.ts", "./handle.ts"), "verbs");
  assert.equal(layerOf("examples/rc_pingpong.ts", "../mod.ts"), "mod.ts");
  assert.equal(layerOf("ffi/libc.ts", "npm:fast-check"), null);
  const sample =
    'import { a } from "../cache/x.ts";\nexport { b } from "./y.ts";\nawait import("../z.ts");';
  assert.deepEqual([...sample.matchAll(IMPORT)].map((m) => m[1] ?? m[2]), [
    "../cache/x.ts",
    "./y.ts",
    "../z.ts",
  ]);
});
