// The TypeScript descriptor layouts (ffi/layout.ts) match the C shim's own offsets.
import assert from "node:assert/strict";
import { LAYOUTS, MAX_SGE } from "../../ffi/layout.ts";
import { cString, verbsShim } from "../../ffi/verbs_symbols.ts";

function shimLayout(): Map<string, number> {
  const text = cString(verbsShim().drv_layout_description());
  const entries = text.split(";").map((pair) => pair.split("="));
  return new Map(entries.map(([key, value]) => [key, Number(value)]));
}

Deno.test("every field the shim describes has the same offset in ffi/layout.ts", () => {
  const shim = shimLayout();
  assert.ok(shim.size > 60, `shim described only ${shim.size} fields`);
  for (const [key, offset] of shim) {
    if (key === "max_sge") {
      assert.equal(offset, MAX_SGE);
      continue;
    }
    const [struct, field] = key.split(".");
    assert.ok(struct in LAYOUTS, `unknown struct ${struct}`);
    assert.equal(
      LAYOUTS[struct][field],
      offset,
      `${key}: TS ${LAYOUTS[struct][field]}, C ${offset}`,
    );
  }
});

Deno.test("every TypeScript layout is described by the shim", () => {
  const shim = shimLayout();
  for (const struct of Object.keys(LAYOUTS)) {
    assert.ok(shim.has(`${struct}.size`), `${struct}.size missing from the shim`);
  }
});
