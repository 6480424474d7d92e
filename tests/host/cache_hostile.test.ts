/**
 * The registration cache against user code that runs inside its calls: getters of a target,
 * Proxies, and memory-hook listeners that close the cache (or close it and open another, which
 * takes its native slot) part-way through `get`. The only accepted outcome is a typed error and a
 * cache that is left consistent; buffers and views are read by the engine, never by their getters.
 * Registrar double: no device needed (the rxe suite runs the same on a real domain).
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { addressOf } from "../../ffi/pointers.ts";
import { memHooks } from "../../hooks/mod.ts";
import { Errno, RdmaError } from "../../verbs/errors.ts";
import { mapAnonymous, unmap } from "../support/native_memory.ts";
import { CHECK_POSTABLE } from "../../verbs/scatter_gather.ts";
import { expectRefusedWhenFired, fc } from "../support/hostile.ts";

const PAGE = 4096;
/** Fake addresses nothing maps (the double never touches them). */
const BASE = 0x2400_0000n;

function isEbadf(e: unknown): boolean {
  return e instanceof RdmaError && e.errno === Errno.EBADF;
}

Deno.test("get: a target getter that closes the cache, or closes it and opens another, is EBADF", async () => {
  const double = createRegistrarDouble();
  const sabotages = ["close", "close and reopen"] as const;
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 6 }),
      fc.constantFrom(...sabotages),
      fc.boolean(),
      async (at, sabotage, warm) => {
        const a = new RegistrationCache(double, { merge: false });
        let b: RegistrationCache | null = null;
        const target = { address: BASE, length: 2 * PAGE };
        try {
          if (warm) a.get({ ...target }).release(); // the fast path then has an entry
          const fired = await expectRefusedWhenFired(
            at,
            () => {
              a.close();
              if (sabotage === "close and reopen") b = new RegistrationCache(double);
            },
            (wire) => a.get(wire.arm({ ...target })),
            `get (${sabotage})`,
          );
          if (fired) {
            assert.equal(a.closed, true);
            const other = b as RegistrationCache | null;
            if (other !== null) {
              // Nothing of A's call landed in B: no hold, and B works on its own.
              assert.equal(other.stats().inUse, 0);
              const r = other.get({ address: BASE + 64n * BigInt(PAGE), length: PAGE });
              assert.equal(other.stats().inUse, 1);
              r.release();
              other.flush();
              assert.equal(other.stats().regions, 0);
            }
          }
        } finally {
          a.close();
          (b as RegistrationCache | null)?.close();
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("get: a memory-hook listener that closes the cache and opens another during get is EBADF", () => {
  const double = createRegistrarDouble();
  const cache = new RegistrationCache(double);
  let other: RegistrationCache | null = null;
  const block = mapAnonymous(PAGE);
  const listener = () => {
    if (other !== null) return;
    cache.close();
    other = new RegistrationCache(double); // takes the closed cache's native slot
  };
  assert.equal(memHooks.init(), 0);
  assert.equal(memHooks.registerRelease(listener), 0);
  try {
    unmap(block); // queued for the listener, delivered inside the next get
    assert.throws(() => cache.get({ address: BASE, length: PAGE }), isEbadf);
    assert.notEqual(other, null, "the listener ran inside get");
    assert.equal(cache.closed, true);
    assert.equal(
      (other as RegistrationCache | null)?.stats().inUse,
      0,
      "nothing landed in the other cache",
    );
  } finally {
    memHooks.unregisterRelease(listener);
    cache.close();
    (other as RegistrationCache | null)?.close();
  }
});

Deno.test("get: a view's own byteLength/buffer getters never run; the engine's answer is used", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  for (
    const make of [() => new Uint8Array(3 * PAGE), () => new DataView(new ArrayBuffer(3 * PAGE))]
  ) {
    const view = make();
    let ran = 0;
    for (const name of ["byteLength", "byteOffset", "buffer"]) {
      Object.defineProperty(view, name, {
        get() {
          ran++;
          view.buffer.transfer(); // would detach the buffer and report the old length
          return 1 << 30;
        },
      });
    }
    for (let i = 0; i < 3; i++) { // a miss, then the fast path
      using reg = cache.get(view);
      assert.equal(reg.length, 3 * PAGE);
    }
    assert.equal(ran, 0);
  }
});

Deno.test("get: a resizable or growable buffer is refused on a hit as on a miss", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  const resizable = new ArrayBuffer(2 * PAGE, { maxByteLength: 4 * PAGE });
  const growable = new SharedArrayBuffer(2 * PAGE, { maxByteLength: 4 * PAGE });
  for (const buffer of [resizable, growable]) {
    assert.throws(() => cache.get(buffer), TypeError, "a miss");
    // The same bytes registered as native memory: the buffer's own get would now be a hit.
    const address = addressOf(new Uint8Array(buffer));
    using held = cache.get({ address, length: 2 * PAGE });
    assert.equal(held.hit, false);
    assert.throws(() => cache.get(buffer), TypeError, "a hit");
    assert.throws(() => cache.get(new Uint8Array(buffer)), TypeError, "a view's hit");
  }
});

Deno.test("a Registration posted after release, or after its cache closed, is refused", () => {
  // The check the verbs layer calls before every post (see verbs/scatter_gather.ts).
  const cache = new RegistrationCache(createRegistrarDouble());
  const held = cache.get({ address: BASE, length: PAGE });
  held[CHECK_POSTABLE]("ibv_post_send");
  cache.close();
  assert.throws(() => held[CHECK_POSTABLE]("ibv_post_send"), isEbadf);
  const cache2 = new RegistrationCache(createRegistrarDouble());
  const released = cache2.get({ address: BASE, length: PAGE });
  released.release();
  assert.throws(() => released[CHECK_POSTABLE]("ibv_post_send"), isEbadf);
  cache2.close();
});

Deno.test("get: objects that only pretend to be buffers are refused; a changed prototype fools nothing", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  for (const fake of [Object.create(ArrayBuffer.prototype), Object.create(Uint8Array.prototype)]) {
    assert.throws(() => cache.get(fake), TypeError);
  }
  // A real view whose prototype was swapped is still read as what it is.
  const view = new DataView(new ArrayBuffer(2 * PAGE));
  Object.setPrototypeOf(view, Uint8Array.prototype);
  using reg = cache.get(view as unknown as Uint8Array);
  assert.equal(reg.length, 2 * PAGE);
});
