/**
 * A registration cache relies on the memory hooks: while one is open, finalizing the hooks (C or
 * TypeScript) is refused and changes nothing, so the cache keeps seeing every release.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { mapAnonymous, unmap } from "../support/native_memory.ts";
import { memHooks, OPAL_ERR_RESOURCE_BUSY, OPAL_SUCCESS } from "../../hooks/mod.ts";

const MiB = 1024 * 1024;

Deno.test("memHooks.finalize() is refused while a cache is open, and works once it is closed", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS); // TypeScript uses the hooks too
  const cache = new RegistrationCache(createRegistrarDouble());
  try {
    assert.equal(memHooks.finalize(), OPAL_ERR_RESOURCE_BUSY);
    assert.ok(memHooks.supportLevel() > 0, "finalize changed TypeScript's state anyway");
    // Still watched: a region released by munmap is deregistered inside it, and misses after.
    const block = mapAnonymous(MiB);
    const target = { address: block.address, length: MiB };
    cache.get(target).release();
    unmap(block);
    assert.equal(cache.stats().deregistrationsInRelease, 1, "the munmap went unseen");
    const again = mapAnonymous(MiB, block.address);
    const r = cache.get({ address: again.address, length: MiB });
    assert.equal(r.hit, false);
    r.release();
    unmap(again);
  } finally {
    cache.close();
  }
  assert.equal(memHooks.finalize(), OPAL_SUCCESS);
  // A new cache installs the hooks again.
  using next = new RegistrationCache(createRegistrarDouble());
  const block = mapAnonymous(MiB);
  next.get({ address: block.address, length: MiB }).release();
  unmap(block);
  assert.equal(next.stats().deregistrationsInRelease, 1);
});
