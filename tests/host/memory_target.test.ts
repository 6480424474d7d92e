// One contract for what memory a caller may name (verbs/memory_target.ts): MemoryRegion.register
// and RegistrationCache.get accept the same targets and refuse the same ones, with the same error
// type. The protection domain is a named double that fails if ibv_reg_mr would be reached (so an
// accepted target is one that reaches it); the cache registers through the registrar double, at
// fake addresses it never touches.
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { pointerAt } from "../../ffi/pointers.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { MemoryRegion, NativeHandle, type ProtectionDomain } from "../../verbs/mod.ts";
import { type MemoryTarget, readMemoryTarget } from "../../verbs/memory_target.ts";

/** Test double: a protection domain whose native pointer must never be asked for. */
class UnreachablePd extends NativeHandle {
  constructor() {
    super(pointerAt(0x1000n)!, "ProtectionDomain", "none", () => 0);
  }
  override pointerFor(verb: string): Deno.PointerObject {
    throw new Error(`validation let ${verb} run`);
  }
}

function detachedBuffer(): ArrayBuffer {
  const buffer = new ArrayBuffer(64);
  buffer.transfer();
  return buffer;
}

/** A view whose buffer was detached after it was made. */
function detachedView(): Uint8Array {
  const view = new Uint8Array(64);
  view.buffer.transfer();
  return view;
}

/** Targets both entry points take (the addresses are fake: nothing maps them). */
function accepted(): [string, MemoryTarget][] {
  return [
    ["ArrayBuffer", new ArrayBuffer(64)],
    ["SharedArrayBuffer", new SharedArrayBuffer(64)],
    ["Uint8Array", new Uint8Array(64)],
    ["Float64Array at an offset", new Float64Array(new ArrayBuffer(256), 64, 4)],
    ["DataView", new DataView(new ArrayBuffer(64), 8)],
    ["view of a SharedArrayBuffer", new Int32Array(new SharedArrayBuffer(64))],
    ["{address: bigint}", { address: 0x2000_0000n, length: 4096 }],
    ["{address: pointer}", { address: pointerAt(0x2001_0000n)!, length: 4096 }],
    ["{address} just below 2^53", { address: (1n << 53n) - 4096n, length: 4096 }],
  ];
}

/** Targets both refuse, with the error type of the contract. */
function refused(): [string, unknown, typeof TypeError | typeof RangeError][] {
  return [
    ["a string", "text", TypeError],
    ["null", null, TypeError],
    ["undefined", undefined, TypeError],
    ["a number", 4096, TypeError],
    ["an array", [1, 2, 3], TypeError],
    ["an object without address", { length: 64 }, TypeError],
    ["a detached ArrayBuffer", detachedBuffer(), TypeError],
    ["a view of a detached ArrayBuffer", detachedView(), TypeError],
    ["a resizable ArrayBuffer", new ArrayBuffer(64, { maxByteLength: 128 }), TypeError],
    [
      "a view of a growable SharedArrayBuffer",
      new Uint8Array(new SharedArrayBuffer(64, { maxByteLength: 128 })),
      TypeError,
    ],
    ["a number address", { address: 4096, length: 64 }, TypeError],
    ["a string address", { address: "4096", length: 64 }, TypeError],
    ["an object address that is no pointer", { address: {}, length: 64 }, TypeError],
    ["a string length", { address: 0x1000n, length: "64" }, TypeError],
    ["an empty ArrayBuffer", new ArrayBuffer(0), RangeError],
    ["an empty SharedArrayBuffer", new SharedArrayBuffer(0), RangeError],
    ["an empty view", new Uint8Array(0), RangeError],
    ["address 0", { address: 0n, length: 64 }, RangeError],
    ["a negative address", { address: -5n, length: 64 }, RangeError],
    ["address 2^53", { address: 1n << 53n, length: 64 }, RangeError],
    ["length 0", { address: 0x1000n, length: 0 }, RangeError],
    ["a fractional length", { address: 0x1000n, length: 1.5 }, RangeError],
    ["a negative length", { address: 0x1000n, length: -1 }, RangeError],
    ["a NaN length", { address: 0x1000n, length: NaN }, RangeError],
    ["length 2^53", { address: 0x1000n, length: 2 ** 53 }, RangeError],
  ];
}

Deno.test("MemoryRegion.register takes every target of the contract, and refuses the rest", () => {
  const pd = new UnreachablePd() as unknown as ProtectionDomain;
  for (const [name, target] of accepted()) {
    assert.throws(() => MemoryRegion.register(pd, target), /validation let ibv_reg_mr run/, name);
  }
  for (const [name, target, type] of refused()) {
    assert.throws(() => MemoryRegion.register(pd, target as MemoryTarget), type, name);
  }
  pd.close();
});

Deno.test("RegistrationCache.get takes every target of the contract, and refuses the rest", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { merge: false });
  for (const [name, target] of accepted()) {
    const registration = cache.get(target);
    assert.equal(registration.hit, false, name);
    registration.release();
  }
  for (const [name, target, type] of refused()) {
    assert.throws(() => cache.get(target as MemoryTarget), type, name);
  }
});

Deno.test("the normaliser says what bytes a target names", () => {
  const buffer = new ArrayBuffer(256);
  const view = new Float64Array(buffer, 64, 4);
  const facts = readMemoryTarget(view);
  assert.equal(facts.buffer, buffer);
  assert.equal(facts.offset, 64);
  assert.equal(facts.length, 32);
  assert.ok(Number.isNaN(facts.address));
  assert.equal(facts.key, undefined);
  const native = readMemoryTarget({ address: pointerAt(0x5000n)!, length: 10 });
  assert.deepEqual(native, { buffer: null, offset: 0, length: 10, address: 0x5000, key: 0x5000n });
  // Each property of an {address, length} object is read once, address first.
  const reads: string[] = [];
  const target = {
    get address() {
      reads.push("address");
      return 0x6000n;
    },
    get length() {
      reads.push("length");
      return 8;
    },
  };
  assert.equal(readMemoryTarget(target).length, 8);
  assert.deepEqual(reads, ["address", "length"]);
});
