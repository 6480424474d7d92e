/**
 * Open caches share a fixed number of native slots: once every one is in use, opening another is
 * an error (ENOMEM), not a second cache sharing a slot, and the caches already open are untouched.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { mapAnonymous, unmap } from "../support/native_memory.ts";
import { Errno, RdmaError } from "../../mod.ts";

Deno.test("opening more caches than there are slots fails with ENOMEM; the open ones still work", () => {
  const double = createRegistrarDouble();
  const open: RegistrationCache[] = [];
  let error: unknown;
  try {
    for (let i = 0; i < 65; i++) open.push(new RegistrationCache(double));
  } catch (e) {
    error = e;
  }
  try {
    assert.ok(error instanceof RdmaError && error.errno === Errno.ENOMEM, `got ${error}`);
    assert.ok(open.length >= 1 && open.length <= 64, `${open.length} caches opened`);
    const block = mapAnonymous(4096);
    const target = { address: block.address, length: block.length };
    for (const cache of [open[0], open.at(-1)!]) {
      cache.get(target).release();
      const again = cache.get(target);
      assert.equal(again.hit, true);
      again.release();
    }
    unmap(block);
  } finally {
    for (const cache of open) cache.close();
  }
  using again = new RegistrationCache(double); // a slot is free once one closes
  assert.equal(again.stats().regions, 0);
});
