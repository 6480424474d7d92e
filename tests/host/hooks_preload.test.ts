/**
 * LD_PRELOAD mode: with the hooks library preloaded, malloc/calloc/realloc/free are the library's
 * wrappers, so the MALLOC support bit is set, allocations fire alloc events and frees fire release
 * events flagged as from the allocator (exactly, not by caller address).
 */
import assert from "node:assert/strict";
import { runChildJson } from "./child_json.ts";
import {
  OPAL_MEMORY_CHUNK_SUPPORT,
  OPAL_MEMORY_FREE_SUPPORT,
  OPAL_MEMORY_MALLOC_SUPPORT,
  OPAL_MEMORY_MMAP_SUPPORT,
  OPAL_SUCCESS,
} from "../../hooks/mod.ts";

const library = new URL("../../build/libopal_memhooks.so", import.meta.url).pathname;
const child = new URL("./hooks_preload_child.ts", import.meta.url).pathname;

Deno.test("LD_PRELOAD mode: all four support bits, malloc and free events", async () => {
  const result = await runChildJson(child, { LD_PRELOAD: library });
  assert.equal(result.initCode, OPAL_SUCCESS);
  assert.equal(
    result.level,
    OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_MALLOC_SUPPORT | OPAL_MEMORY_CHUNK_SUPPORT |
      OPAL_MEMORY_MMAP_SUPPORT,
  );
  assert.equal(result.registerAllocCode, OPAL_SUCCESS);
  assert.ok(result.cAllocEvents >= 1, "malloc fired no alloc event");
  assert.equal(result.tsAllocSeen, true, "TypeScript got no alloc event for the block");
  assert.deepEqual(result.free, { intact: 1, fromAlloc: true });
  assert.deepEqual(result.munmap, { intact: 1, fromAlloc: false });
});

Deno.test("without LD_PRELOAD the allocator wrappers are inert: no MALLOC bit", async () => {
  const result = await runChildJson(child);
  assert.equal(result.level & OPAL_MEMORY_MALLOC_SUPPORT, 0);
  // Here the 1 MiB block is freed by glibc's munmap: from the allocator, found by caller address.
  assert.deepEqual(result.free, { intact: 1, fromAlloc: true });
  assert.deepEqual(result.munmap, { intact: 1, fromAlloc: false });
});
