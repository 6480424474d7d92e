/**
 * Several interceptors in one process: a function another library already redirected is refused
 * with a clear status, left working as that library made it, and the support level says that not
 * every release can be seen.
 */
import assert from "node:assert/strict";
import { runChildJson } from "./child_json.ts";
import { OPAL_MEMORY_FREE_SUPPORT, OPAL_MEMORY_MMAP_SUPPORT } from "../../hooks/mod.ts";
import { PATCH } from "../../ffi/records/memhooks.ts";

const PATCH_OK = PATCH.OK, PATCH_FOREIGN = PATCH.FOREIGN;
const child = new URL("./hooks_foreign_child.ts", import.meta.url).pathname;

Deno.test("a function patched by another library is refused, not overwritten", async () => {
  const result = await runChildJson(child);
  assert.equal(result.patched, 0, "the test could not play the other interceptor");
  assert.equal(result.status.shmdt, PATCH_FOREIGN);
  for (const name of ["munmap", "mremap", "madvise", "mmap", "brk", "sbrk", "shmat"]) {
    assert.equal(result.status[name], PATCH_OK, name);
  }
  // movabs r11 (x86_64), ldr x16 (aarch64): the first byte of the other library's jump.
  const jumpByte = Deno.build.arch === "aarch64" ? 0x50 : 0x49;
  assert.equal(result.firstByte, jumpByte, "the other library's jump was overwritten");
  assert.equal(result.detached, 0);
  assert.equal(result.foreignCalled, true, "the other library's hook no longer runs");
  assert.equal(result.level & OPAL_MEMORY_FREE_SUPPORT, 0, "FREE claimed with shmdt unseen");
  assert.equal(result.level & OPAL_MEMORY_MMAP_SUPPORT, OPAL_MEMORY_MMAP_SUPPORT);
});
