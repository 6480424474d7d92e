/**
 * RC RDMA WRITE in loopback: two queue pairs on one device, one writes 1 MiB into the other's
 * memory, and the bytes are checked.
 *
 *     deno run -A examples/rdma_write.ts [device]
 *
 * @module
 */
import { Access, openDevice, WcStatus, wcStatusName, WorkCompletions, WrOpcode } from "../mod.ts";

const device = Deno.args[0];
const size = 1 << 20;

using ctx = openDevice(device); // the first device when no name is given
using pd = ctx.allocProtectionDomain();
using cq = ctx.createCompletionQueue({ channel: true });
using writer = pd.createQueuePair({ type: "RC", sendCq: cq });
using target = pd.createQueuePair({ type: "RC", sendCq: cq });

// The target lets its peer write; the writer needs nothing remote.
writer.connect(target.localInfo());
target.connect(writer.localInfo(), { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });

const source = new Uint8Array(size).map((_, i) => i % 251);
const destination = new Uint8Array(size);
using sourceMr = pd.registerMemory(source);
using destinationMr = pd.registerMemory(destination, {
  access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
});

writer.postSend({
  wrId: 1,
  opcode: WrOpcode.RDMA_WRITE,
  sge: { mr: sourceMr },
  remoteAddress: destinationMr.address,
  rkey: destinationMr.rkey,
});

const completions = new WorkCompletions(1);
if (await cq.pollOrWait(completions, { timeoutMs: 10_000 }) !== 1) {
  throw new Error("no completion within 10 s");
}
if (completions.status(0) !== WcStatus.SUCCESS) {
  throw new Error(`RDMA WRITE failed: ${wcStatusName(completions.status(0))}`);
}
const mismatch = destination.findIndex((byte, i) => byte !== source[i]);
if (mismatch >= 0) throw new Error(`byte ${mismatch} differs after the RDMA WRITE`);
console.log(`${ctx.deviceName}: RDMA WRITE of ${size} bytes verified`);
