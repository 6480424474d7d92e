/**
 * How aarch64 patches (hooks/native/arch/aarch64.c): the entry is never written; each function's
 * one `svc #0` becomes a `B` to its stub, every other word stays, sbrk is left as it is (covered
 * through brk), and finalize puts the `svc` back.
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
  name: "aarch64 entries: one svc becomes a B, nothing else changes, finalize restores it",
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
    for (const at of changed) {
      assert.equal(before[at], SVC, `${name}: only svc words change (+${at * 4})`);
      assert.equal(after[at] >>> 26, 0b000101, `${name}: into a B (+${at * 4})`);
    }
    const firstSvc = before.indexOf(SVC);
    if (name === "sbrk") {
      assert.ok(firstSvc < 0 || firstSvc > 40, "sbrk has no svc of its own in its first words");
      assert.ok(!changed.includes(0), "sbrk is covered through brk, not written");
    } else {
      assert.ok(firstSvc > 0, `${name}: has an svc after its entry`);
      assert.equal(changed[0], firstSvc, `${name}: its first svc is the word patched`);
    }
    assert.deepEqual(words(r.removed[name]), before, `${name} restored`);
  }
});
