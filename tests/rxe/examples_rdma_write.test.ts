// rxe suite: examples/rdma_write.ts, the smallest complete program: one RC RDMA WRITE in loopback
// lands byte for byte; a device or port that does not exist is one readable error line and exit 1.
import assert from "node:assert/strict";
import { Child, example } from "./examples_process.ts";

const DEVICE = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";

Deno.test("rdma_write: a 64 KiB RDMA WRITE in loopback is verified, exit 0", async () => {
  const child = new Child("hostA", example("rdma_write.ts", "-d", DEVICE, "-s", "65536"));
  const { code, output } = await child.finish();
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`^${DEVICE}: RDMA WRITE of 65536 bytes verified$`, "m"));
});

Deno.test("rdma_write: an unknown device is one error line and exit 1", async () => {
  const child = new Child("hostA", example("rdma_write.ts", "-d", "no_such_device"));
  const { code, output } = await child.finish();
  assert.equal(code, 1, output);
  assert.match(output, /^error: ibv_open_device failed: no_such_device: .*\(E[A-Z]+\)$/m);
  assert.doesNotMatch(output, /Uncaught|at main/, "no stack trace");
});

Deno.test("rdma_write: a port the device does not have is one error line and exit 1", async () => {
  const child = new Child("hostA", example("rdma_write.ts", "-d", DEVICE, "-i", "2"));
  const { code, output } = await child.finish();
  assert.equal(code, 1, output);
  assert.match(output, /^error: ibv_query_port failed: port 2: .*\(E[A-Z]+\)$/m);
  assert.doesNotMatch(output, /Uncaught|at main/, "no stack trace");
});
