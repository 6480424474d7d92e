// Handle lifetime rules (verbs/handle.ts), checked with a named double whose "native object" is a
// JavaScript log instead of a verbs object.
import assert from "node:assert/strict";
import { pointerAt } from "../../ffi/pointers.ts";
import { NativeHandle, RdmaError } from "../../verbs/mod.ts";

/** Test double: a handle whose destroy verb records its name in `log` and returns `result()`. */
class RecordingHandle extends NativeHandle {
  constructor(
    readonly label: string,
    log: string[],
    parents: NativeHandle[] = [],
    result: () => number = () => 0,
  ) {
    super(pointerAt(0x1000n)!, label, `destroy_${label}`, () => {
      const r = result();
      if (r === 0) log.push(label);
      return r;
    }, parents);
  }
}

Deno.test("close is idempotent and destroys once", () => {
  const log: string[] = [];
  const handle = new RecordingHandle("Thing", log);
  assert.equal(handle.closed, false);
  handle.close();
  handle.close();
  handle[Symbol.dispose]();
  assert.deepEqual(log, ["Thing"]);
  assert.equal(handle.closed, true);
});

Deno.test("use after close is RdmaError EBADF naming the verb", () => {
  const handle = new RecordingHandle("Thing", []);
  handle.close();
  assert.throws(
    () => handle.pointerFor("ibv_poll_cq"),
    (e: unknown) => e instanceof RdmaError && e.code === "EBADF" && e.verb === "ibv_poll_cq",
  );
  assert.throws(() => handle.pointer, RdmaError);
});

Deno.test("a parent refuses to close while children are open, naming them", () => {
  const log: string[] = [];
  const parent = new RecordingHandle("ProtectionDomain", log);
  const a = new RecordingHandle("MemoryRegion", log, [parent]);
  const b = new RecordingHandle("MemoryRegion", log, [parent]);
  const q = new RecordingHandle("QueuePair", log, [parent]);
  assert.throws(
    () => parent.close(),
    (e: unknown) =>
      e instanceof RdmaError && e.code === "EBUSY" &&
      e.message.includes("2 MemoryRegions") && e.message.includes("1 QueuePair"),
  );
  assert.equal(parent.closed, false);
  a.close();
  b.close();
  q.close();
  parent.close();
  assert.deepEqual(log, ["MemoryRegion", "MemoryRegion", "QueuePair", "ProtectionDomain"]);
});

Deno.test("using declarations dispose children before parents", () => {
  const log: string[] = [];
  {
    using parent = new RecordingHandle("Context", log);
    using _child = new RecordingHandle("ProtectionDomain", log, [parent]);
  }
  assert.deepEqual(log, ["ProtectionDomain", "Context"]);
});

Deno.test("disposing a parent with open children defers its destruction to the last child", () => {
  const log: string[] = [];
  const parent = new RecordingHandle("ProtectionDomain", log);
  const child = new RecordingHandle("MemoryRegion", log, [parent]);
  parent[Symbol.dispose]();
  assert.equal(parent.closed, true);
  assert.deepEqual(log, []);
  assert.throws(() => parent.pointer, RdmaError);
  assert.equal(child.closed, false);
  child.close();
  assert.deepEqual(log, ["MemoryRegion", "ProtectionDomain"]);
});

Deno.test("an exception unwinding through using is not masked by a parent's disposal", () => {
  const log: string[] = [];
  assert.throws(() => {
    using parent = new RecordingHandle("Context", log);
    new RecordingHandle("ProtectionDomain", log, [parent]); // never closed
    throw new Error("the real failure");
  }, /the real failure/);
});

Deno.test("a failed destroy leaves the handle open and reports the verb's errno", () => {
  const log: string[] = [];
  let result = -16; // EBUSY from the verb itself
  const handle = new RecordingHandle("CompletionQueue", log, [], () => result);
  assert.throws(
    () => handle.close(),
    (e: unknown) =>
      e instanceof RdmaError && e.verb === "destroy_CompletionQueue" && e.errno === 16,
  );
  assert.equal(handle.closed, false);
  result = 0;
  handle.close();
  assert.deepEqual(log, ["CompletionQueue"]);
});

Deno.test("a leaked handle is destroyed by the finalizer, children before parents", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  const log: string[] = [];
  (() => {
    const parent = new RecordingHandle("Parent", log);
    new RecordingHandle("Child", log, [parent]);
  })();
  for (let i = 0; i < 20 && log.length < 2; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.deepEqual(log, ["Child", "Parent"]);
});
