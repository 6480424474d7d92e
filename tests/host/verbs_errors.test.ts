// RdmaError and the verbs that fail on a machine without RDMA support.
import assert from "node:assert/strict";
import { Errno, listDevices, openDevice, RdmaError } from "../../verbs/mod.ts";

function kernelHasRdma(): boolean {
  try {
    Deno.statSync("/sys/class/infiniband_verbs");
    return true;
  } catch {
    return false;
  }
}

Deno.test("RdmaError carries the verb, errno number, errno name and text", () => {
  const error = new RdmaError("ibv_reg_mr", Errno.ENOMEM, "1048576 bytes");
  assert.ok(error instanceof Error);
  assert.equal(error.name, "RdmaError");
  assert.equal(error.verb, "ibv_reg_mr");
  assert.equal(error.errno, 12);
  assert.equal(error.code, "ENOMEM");
  assert.match(
    error.message,
    /^ibv_reg_mr failed: 1048576 bytes: Cannot allocate memory \(ENOMEM\)$/,
  );
});

Deno.test("an errno the library does not list still gets its name from libc", () => {
  assert.equal(new RdmaError("x", 61).code, "ENODATA");
});

Deno.test({
  name: "without kernel RDMA support, listing devices throws RdmaError ENOSYS",
  ignore: kernelHasRdma(),
  fn() {
    assert.throws(
      () => listDevices(),
      (e: unknown) =>
        e instanceof RdmaError && e.verb === "ibv_get_device_list" && e.code === "ENOSYS",
    );
  },
});

Deno.test({
  name: "without kernel RDMA support, opening a device throws RdmaError ENOSYS",
  ignore: kernelHasRdma(),
  fn() {
    assert.throws(
      () => openDevice(),
      (e: unknown) => e instanceof RdmaError && e.verb === "ibv_open_device" && e.code === "ENOSYS",
    );
  },
});

Deno.test("a bad device name is a TypeError or RangeError before any verb runs", () => {
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => openDevice(42), TypeError);
  assert.throws(() => openDevice(""), RangeError);
  assert.throws(() => openDevice("x".repeat(64)), RangeError);
  assert.throws(() => openDevice("rxe\u00000"), RangeError);
});
