/**
 * How the entries are rewritten. A 5-byte jump over a short first instruction would put an
 * instruction boundary inside the jump (a thread that just ran the first instruction would resume
 * in the middle of it), so there only the first 2 bytes are replaced, by a jump into the alignment
 * padding in front of the function, which holds the 5-byte jump to the hook. finalize restores the
 * entry bytes exactly.
 */
import assert from "node:assert/strict";
import { OPAL_SUCCESS } from "../../hooks/mod.ts";
import { PATCH } from "../../ffi/records/memhooks.ts";
import { runChildJson } from "./child_json.ts";

const PATCH_OK = PATCH.OK, JMP_REL8 = 0xeb, JMP_REL32 = 0xe9, ENTRY = 8;
const child = new URL("./hooks_patch_child.ts", import.meta.url).pathname;

Deno.test("entries: rel32 over a long first instruction, rel8 into the padding over a short one", async () => {
  const r = await runChildJson(child);
  assert.equal(r.initCode, OPAL_SUCCESS);
  assert.equal(r.finalizeCode, OPAL_SUCCESS);
  let short = 0;
  for (const [name, before] of Object.entries(r.before as Record<string, number[]>)) {
    const after: number[] = r.installed[name];
    assert.equal(r.status[name], PATCH_OK, name);
    if (after[ENTRY] === JMP_REL8) {
      short++;
      // Only the entry's first 2 bytes changed; the jump lands on a rel32 jump in the padding.
      assert.deepEqual(after.slice(ENTRY + 2), before.slice(ENTRY + 2), name);
      const target = ENTRY + 2 + ((after[ENTRY + 1] << 24) >> 24);
      assert.ok(target >= 0 && target + 5 <= ENTRY, `${name}: rel8 must land in the padding`);
      assert.equal(after[target], JMP_REL32, name);
    } else {
      assert.equal(after[ENTRY], JMP_REL32, name);
      assert.deepEqual(after.slice(ENTRY + 5), before.slice(ENTRY + 5), name);
    }
    assert.deepEqual(r.removed[name].slice(ENTRY), before.slice(ENTRY), `${name} restored`);
  }
  // glibc 2.36's mmap (mov r10d, ecx), mremap (sub rsp, imm8) and sbrk (push r12) start short.
  assert.ok(short >= 3, `expected mmap, mremap and sbrk to use the padding, got ${short}`);
  for (const name of ["mmap", "mremap", "sbrk"]) {
    assert.equal(r.installed[name][ENTRY], JMP_REL8, name);
  }
});
