// rxe suite: devices, queries, registration, and the lifetime and bad-input rules on real handles.
import assert from "node:assert/strict";
import { addressOf } from "../../ffi/pointers.ts";
import {
  Access,
  LinkLayer,
  listDevices,
  openDevice,
  PortState,
  RdmaError,
  WorkCompletions,
} from "../../verbs/mod.ts";
import { DEVICE } from "./verbs_loopback.ts";

const isRdmaError = (code: string) => (e: unknown) => e instanceof RdmaError && e.code === code;

function vmPinKiB(): number {
  const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) =>
    l.startsWith("VmPin:")
  );
  return Number(line?.match(/(\d+)/)?.[1] ?? NaN);
}

Deno.test("the device list has the rxe device with a GUID, node type and transport", () => {
  const device = listDevices().find((d) => d.name === DEVICE);
  assert.ok(device, `no ${DEVICE} in ${listDevices().map((d) => d.name)}`);
  assert.ok(device.guid > 0n);
  assert.match(device.guidText, /^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
  assert.equal(device.nodeType, "ca");
  assert.equal(device.transport, "ib");
});

Deno.test("open rxe0 and query device, port and GID table", () => {
  using ctx = openDevice(DEVICE);
  assert.equal(ctx.deviceName, DEVICE);
  const attr = ctx.queryDevice();
  assert.equal(attr.physPortCount, 1);
  assert.ok(attr.maxQp > 0 && attr.maxCqe > 0 && attr.maxSge > 0);
  assert.ok(attr.nodeGuid > 0n);
  const port = ctx.queryPort(1);
  assert.equal(port.state, PortState.ACTIVE);
  assert.equal(port.linkLayer, LinkLayer.ETHERNET);
  assert.equal(port.lid, 0);
  assert.ok(port.gidTableLength > 0);
  const table = ctx.gidTable(1);
  assert.ok(table.length > 0);
  assert.ok(table.every((e) => e.type === "roce-v1" || e.type === "roce-v2"));
  assert.deepEqual(ctx.queryGid(1, table[0].index).gid, table[0].gid);
  assert.throws(() => ctx.queryPort(2), RdmaError);
  assert.throws(() => ctx.queryPort(0), RangeError);
});

Deno.test("opening the first device without a name works; an unknown name is ENODEV", () => {
  using first = openDevice();
  assert.ok(listDevices().some((d) => d.name === first.deviceName));
  assert.throws(() => openDevice("no_such_device"), isRdmaError("ENODEV"));
});

Deno.test("register and deregister: keys, address, default access, pinned memory", () => {
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  const buffer = new Uint8Array(4 << 20);
  const before = vmPinKiB();
  const mr = pd.registerMemory(buffer);
  assert.equal(mr.length, buffer.length);
  assert.equal(mr.access, Access.LOCAL_WRITE);
  assert.equal(mr.address, addressOf(buffer));
  assert.ok(mr.lkey !== 0);
  assert.ok(vmPinKiB() >= before + 4096, `VmPin ${before} -> ${vmPinKiB()} kB`);
  mr.deregister();
  assert.equal(mr.closed, true);
  assert.ok(vmPinKiB() < before + 4096, "deregistration did not unpin");
  const part = pd.registerMemory(buffer.subarray(100), { offset: 4000, length: 8192 });
  assert.equal(part.address, mr.address + 4100n);
  assert.equal(part.length, 8192);
  assert.equal(part.bytes?.byteOffset, 4100);
  part.close();
  const raw = pd.registerMemory({ address: mr.address, length: 4096 }, {
    access: Access.REMOTE_READ | Access.LOCAL_WRITE,
  });
  assert.equal(raw.access, Access.REMOTE_READ | Access.LOCAL_WRITE);
  raw.close();
});

Deno.test("double deregistration and use after close are RdmaError EBADF", () => {
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  const mr = pd.registerMemory(new Uint8Array(4096));
  mr.deregister();
  assert.throws(() => mr.deregister(), isRdmaError("EBADF"));
  mr.close(); // close stays idempotent
  const cq = ctx.createCompletionQueue({ entries: 4 });
  cq.close();
  assert.throws(() => cq.poll(new WorkCompletions(1)), isRdmaError("EBADF"));
  const other = ctx.allocProtectionDomain();
  other.close();
  assert.throws(() => other.registerMemory(new Uint8Array(64)), isRdmaError("EBADF"));
});

Deno.test("a parent with open children refuses to close, naming them (EBUSY)", () => {
  const ctx = openDevice(DEVICE);
  const pd = ctx.allocProtectionDomain();
  const mr = pd.registerMemory(new Uint8Array(4096));
  const cq = ctx.createCompletionQueue();
  const qp = pd.createQueuePair({ type: "RC", sendCq: cq });
  assert.throws(
    () => pd.close(),
    (e: unknown) =>
      e instanceof RdmaError && e.code === "EBUSY" && /1 MemoryRegion/.test(e.message) &&
      /1 QueuePair/.test(e.message),
  );
  assert.throws(() => cq.close(), isRdmaError("EBUSY"));
  assert.throws(() => ctx.close(), isRdmaError("EBUSY"));
  qp.close();
  cq.close();
  mr.close();
  pd.close();
  ctx.close();
  assert.ok(ctx.closed && pd.closed && mr.closed && cq.closed && qp.closed);
});

Deno.test("bad registration input never reaches the verb", () => {
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  const buffer = new Uint8Array(4096);
  assert.throws(() => pd.registerMemory(new Uint8Array(0)), RangeError);
  assert.throws(() => pd.registerMemory(buffer, { length: 0 }), RangeError);
  assert.throws(() => pd.registerMemory(buffer, { length: -1 }), RangeError);
  assert.throws(() => pd.registerMemory(buffer, { offset: 4097 }), RangeError);
  assert.throws(() => pd.registerMemory(buffer, { offset: 4090, length: 7 }), RangeError);
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => pd.registerMemory("buffer"), TypeError);
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => pd.registerMemory(buffer, { access: "rw" }), TypeError);
});

Deno.test("a verb failure is an RdmaError with the verb and errno (unmapped address)", () => {
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  // Nothing is mapped at the top of the user address space: the kernel refuses to pin it.
  assert.throws(
    () => pd.registerMemory({ address: 0x7ffffff00000n, length: 4096 }),
    (e: unknown) => e instanceof RdmaError && e.verb === "ibv_reg_mr" && e.errno > 0,
  );
});

Deno.test("a queue pair takes completion queues of its own context only", () => {
  using ctx = openDevice(DEVICE);
  using other = openDevice(DEVICE); // the same device opened again: handles of its own
  using pd = ctx.allocProtectionDomain();
  using mine = ctx.createCompletionQueue();
  using theirs = other.createCompletionQueue();
  assert.throws(
    () => pd.createQueuePair({ type: "RC", sendCq: theirs }),
    /must come from the protection domain's context/,
  );
  assert.throws(
    () => pd.createQueuePair({ type: "RC", sendCq: mine, recvCq: theirs }),
    /must come from the protection domain's context/,
  );
  const fake = { poll: () => 0, pointerFor: () => null };
  // @ts-expect-error: not a CompletionQueue, on purpose
  assert.throws(() => pd.createQueuePair({ type: "RC", sendCq: fake }), TypeError);
  using qp = pd.createQueuePair({ type: "RC", sendCq: mine });
  assert.equal(qp.closed, false);
});
