/**
 * Without hooks that see every release, a lazy cache could hand out stale registrations: the
 * cache refuses to be created, with an error that says why.
 */
import assert from "node:assert/strict";
import { runChildJson } from "./child_json.ts";

Deno.test("a cache is refused when the hooks cannot report free and mmap releases", async () => {
  const child = new URL("./cache_refuse_child.ts", import.meta.url).pathname;
  const result = await runChildJson(child);
  assert.equal(result.patched, 0, "the test could not play the other interceptor");
  assert.equal(result.error?.name, "RdmaError");
  assert.equal(result.error.code, "ENOSYS");
  assert.match(result.error.message, /needs FREE and MMAP support/);
  // It names the function the hooks could not take, and why.
  assert.match(result.error.message, /not patched: [^)]*shmdt: another library's jump at \+0: /);
});
