/**
 * How aarch64 patches (hooks/native/arch/aarch64.c): the entry is never written; each function's
 * one `svc #0` becomes a `B` to its stub, sbrk's calls of brk become calls of its stub, every
 * other word stays, and finalize puts them back.
 */
import assert from "node:assert/strict";
import { OPAL_SUCCESS } from "../../hooks/mod.ts";
import { PATCH } from "../../ffi/records/memhooks.ts";
import { runChildJson } from "./child_json.ts";

const ENTRY = 128, SVC = 0xd4000001; // the child's window: 128 bytes in front of the entry
const child = new URL("./hooks_patch_child.ts", import.meta.url).pathname;

/** The little-endian instruction words of a byte snapshot, from the entry on. */
function words(bytes: number[]): number[] {
  const out: number[] = [];
  for (let at = ENTRY; at + 4 <= bytes.length; at += 4) {
    out.push((bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24) >>> 0);
  }
  return out;
}

Deno.test({
  name: "aarch64 entries: one svc becomes a B (sbrk: its bl of brk), finalize restores them",
  ignore: Deno.build.arch !== "aarch64",
}, async () => {
  const r = await runChildJson(child);
  assert.equal(r.initCode, OPAL_SUCCESS);
  assert.equal(r.finalizeCode, OPAL_SUCCESS);
  for (const [name, bytes] of Object.entries(r.before as Record<string, number[]>)) {
    assert.equal(r.status[name], PATCH.OK, name);
    // The window runs past the function into its neighbours, whose svcs may be patched too.
    const before = words(bytes), after = words(r.installed[name]);
    const changed = before.flatMap((w, i) => (w !== after[i] ? [i] : []));
    // An svc becomes a B to a stub; a call of brk (in sbrk) a call of sbrk's stub.
    const BL = 0b100101, B = 0b000101;
    for (const at of changed) {
      const bl = before[at] >>> 26 === BL;
      assert.ok(before[at] === SVC || bl, `${name}: only svc and bl words change (+${at * 4})`);
      assert.equal(
        after[at] >>> 26,
        bl ? BL : B,
        `${name}: into a ${bl ? "BL" : "B"} (+${at * 4})`,
      );
    }
    const firstSvc = before.indexOf(SVC);
    if (name === "sbrk") {
      assert.ok(firstSvc < 0 || firstSvc > 40, "sbrk has no svc of its own in its first words");
      assert.ok(!changed.includes(0), "its entry is never written");
      assert.ok(changed.length > 0 && before[changed[0]] >>> 26 === BL, "its call of brk is");
    } else {
      assert.ok(firstSvc > 0, `${name}: has an svc after its entry`);
      assert.equal(changed[0], firstSvc, `${name}: its first svc is the word patched`);
    }
    assert.deepEqual(words(r.removed[name]), before, `${name} restored`);
  }
});
