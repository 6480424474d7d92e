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

const PATCH_OK = PATCH.OK, JMP_REL8 = 0xeb, JMP_REL32 = 0xe9;
const ENTRY = 128; // the child's window: 128 bytes in front of the entry, 160 from it
const child = new URL("./hooks_patch_child.ts", import.meta.url).pathname;

/**
 * Length of the first instruction of the prologues glibc 2.31 to 2.41 start with, decoded here
 * independently of the native decoder; undefined for any other form.
 */
function firstLength(b: number[]): number | undefined {
  if (b[0] === 0xf3 && b[1] === 0x0f && b[2] === 0x1e && b[3] === 0xfa) return 4; // endbr64
  if (b[0] >= 0xb8 && b[0] <= 0xbf) return 5; // mov r32, imm32
  if (b[0] === 0x80 && b[1] === 0x3d) return 7; // cmp byte [rip + d32], imm8
  if (b[0] === 0x41 && b[1] === 0xf7 && b[2] === 0xc1) return 7; // test r9d, imm32
  if ((b[0] === 0x41 || b[0] === 0x49) && b[1] === 0x89 && b[2] === 0xca) return 3; // mov r10, rcx
  if (b[0] === 0x48 && b[1] === 0x83 && b[2] === 0xec) return 4; // sub rsp, imm8
  if (b[0] === 0x41 && b[1] >= 0x50 && b[1] <= 0x57) return 2; // push r8..r15
  return undefined;
}

// Bytes of GNU as' alignment NOPs (and int3 fill): what the padding held before.
const PADDING_BYTES = new Set([0x90, 0x66, 0x2e, 0x0f, 0x1f, 0x00, 0x40, 0x44, 0x80, 0x84, 0xcc]);

Deno.test({
  name: "entries: rel32 over a long first instruction, rel8 into padding over a short one",
  ignore: Deno.build.arch !== "x86_64",
}, async () => {
  const r = await runChildJson(child);
  assert.equal(r.initCode, OPAL_SUCCESS);
  assert.equal(r.finalizeCode, OPAL_SUCCESS);
  for (const [name, before] of Object.entries(r.before as Record<string, number[]>)) {
    const after: number[] = r.installed[name];
    const first = firstLength(before.slice(ENTRY));
    if (first === undefined) {
      // A form this test does not know: the hooks must not have claimed it either silently.
      assert.notEqual(r.reason[name], "", name);
      continue;
    }
    assert.equal(r.status[name], PATCH_OK, `${name}: ${r.reason[name]}`);
    if (first < 5) {
      // The entry's first 2 bytes became a jmp rel8 to 5 bytes of padding holding a jmp rel32;
      // the rest of the first instruction is intact (other patched functions' padding may sit in
      // this window too).
      assert.equal(after[ENTRY], JMP_REL8, name);
      const target = ENTRY + 2 + ((after[ENTRY + 1] << 24) >> 24);
      assert.ok(target + 5 <= ENTRY || target >= ENTRY + first, `${name}: lands in its own entry`);
      assert.equal(after[target], JMP_REL32, name);
      for (let i = target; i < target + 5; i++) {
        assert.ok(PADDING_BYTES.has(before[i]), `${name}: byte ${i - ENTRY} was not padding`);
      }
      assert.deepEqual(after.slice(ENTRY + 2, ENTRY + 16), before.slice(ENTRY + 2, ENTRY + 16));
    } else {
      assert.equal(after[ENTRY], JMP_REL32, name);
      assert.deepEqual(after.slice(ENTRY + 5, ENTRY + 16), before.slice(ENTRY + 5, ENTRY + 16));
    }
    // finalize restores the entry; the padding's jump stays for the next init.
    assert.deepEqual(r.removed[name].slice(ENTRY, ENTRY + 5), before.slice(ENTRY, ENTRY + 5));
  }
});
