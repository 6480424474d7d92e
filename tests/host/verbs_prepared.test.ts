// Prepared send requests without a device: the setters' checks and their effect on the descriptor,
// post() refusing bad counts and closed handles before any verb runs, and the shim's own bounds on
// chained posts. The queue pair and memory region are named doubles whose pointers are never
// given to a verb.
import assert from "node:assert/strict";
import { MAX_CHAIN, MAX_SGE, SEND, SGE } from "../../ffi/records/verbs.ts";
import { pointerAt } from "../../ffi/pointers.ts";
import { verbsNative } from "../../ffi/verbs_symbols.ts";
import { Errno, NativeHandle, PreparedSend, RdmaError, WrOpcode } from "../../verbs/mod.ts";
import { PREPARED_BY_QUEUE_PAIR } from "../../verbs/prepared_send.ts";

/** Test double: a handle with a fake pointer that is only closed, never passed to a verb. */
class ClosableHandleDouble extends NativeHandle {
  constructor(kind: string) {
    super(pointerAt(0x1000n)!, kind, "none", () => 0);
  }
}

/** A send descriptor as QueuePair.prepareSend would encode it: one element of `length` bytes. */
function descriptor(opcode: number, length: number, remoteAddress: bigint): Uint8Array {
  const bytes = new Uint8Array(SEND.size);
  const v = new DataView(bytes.buffer);
  v.setUint32(SEND.opcode, opcode, true);
  v.setUint32(SEND.num_sge, 1, true);
  v.setBigUint64(SEND.remote_addr, remoteAddress, true);
  v.setUint32(SEND.rkey, 0x1234, true);
  v.setBigUint64(SEND.sg_list + SGE.addr, 0x10000n, true);
  v.setUint32(SEND.sg_list + SGE.length, length, true);
  v.setUint32(SEND.sg_list + SGE.lkey, 0x99, true);
  return bytes;
}

function fixture(opcode: number = WrOpcode.RDMA_WRITE, length = 4096, remote = 0x200000n) {
  const bytes = descriptor(opcode, length, remote);
  const qp = new ClosableHandleDouble("QueuePair");
  const mr = new ClosableHandleDouble("MemoryRegion");
  const view = new DataView(bytes.buffer);
  return { bytes, view, qp, mr, w: new PreparedSend(PREPARED_BY_QUEUE_PAIR, bytes, [qp, mr]) };
}

Deno.test("prepared send: setters write the descriptor in place", async (t) => {
  await t.step("wrId as number and bigint", () => {
    const { w, view } = fixture();
    w.wrId = 2 ** 40 + 7;
    assert.equal(view.getBigUint64(SEND.wr_id, true), 2n ** 40n + 7n);
    assert.equal(w.wrId, 2n ** 40n + 7n);
    w.wrId = (1n << 64n) - 1n;
    assert.equal(view.getBigUint64(SEND.wr_id, true), (1n << 64n) - 1n);
    // Either side of 2^32: the high word is cleared, then carries.
    for (const id of [0, 7, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
      w.wrId = id;
      assert.equal(view.getBigUint64(SEND.wr_id, true), BigInt(id));
    }
  });
  await t.step("remoteOffset adds to the prepared address", () => {
    const { w, view } = fixture();
    w.remoteOffset = 4096 * 3;
    assert.equal(view.getBigUint64(SEND.remote_addr, true), 0x200000n + 12288n);
    assert.equal(w.remoteOffset, 12288);
    w.remoteOffset = 0;
    assert.equal(view.getBigUint64(SEND.remote_addr, true), 0x200000n);
  });
  await t.step("remoteOffset above 2^53 goes through bigint arithmetic", () => {
    const { w, view } = fixture(WrOpcode.RDMA_WRITE, 64, 0xffff_0000_0000_0000n);
    w.remoteOffset = 0x10;
    assert.equal(view.getBigUint64(SEND.remote_addr, true), 0xffff_0000_0000_0010n);
  });
  await t.step("length and signaled", () => {
    const { w, view } = fixture();
    assert.equal(w.maxLength, 4096);
    w.length = 64;
    assert.equal(view.getUint32(SEND.sg_list + SGE.length, true), 64);
    assert.equal(w.length, 64);
    assert.equal(w.signaled, false);
    w.signaled = true;
    assert.equal(view.getUint32(SEND.send_flags, true), 2);
    w.signaled = false;
    assert.equal(view.getUint32(SEND.send_flags, true), 0);
  });
});

Deno.test("prepared send: bad values are TypeError/RangeError and change nothing", async (t) => {
  const { w, bytes } = fixture();
  const before = bytes.slice();
  const unchanged = () => assert.deepEqual(bytes, before);
  await t.step("wrId", () => {
    assert.throws(() => (w.wrId = -1), RangeError);
    assert.throws(() => (w.wrId = 1.5), RangeError);
    assert.throws(() => (w.wrId = 2 ** 53), RangeError);
    assert.throws(() => (w.wrId = NaN), RangeError);
    assert.throws(() => (w.wrId = 1n << 64n), RangeError);
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => (w.wrId = "1"), TypeError);
    unchanged();
  });
  await t.step("remoteOffset", () => {
    assert.throws(() => (w.remoteOffset = -8), RangeError);
    assert.throws(() => (w.remoteOffset = 0.5), RangeError);
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => (w.remoteOffset = 8n), RangeError);
    const atMax = fixture(WrOpcode.RDMA_WRITE, 64, 0xffff_ffff_ffff_fff0n).w;
    assert.throws(() => (atMax.remoteOffset = 0x10), RangeError);
    unchanged();
  });
  await t.step("length: 1 .. maxLength", () => {
    assert.throws(() => (w.length = 0), RangeError);
    assert.throws(() => (w.length = 4097), RangeError);
    assert.throws(() => (w.length = 2.5), RangeError);
    unchanged();
  });
  await t.step("signaled must be a boolean", () => {
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => (w.signaled = 1), TypeError);
    unchanged();
  });
  await t.step("setters that do not apply to the opcode", () => {
    const send = fixture(WrOpcode.SEND).w;
    assert.throws(() => (send.remoteOffset = 0), TypeError);
    const atomic = fixture(WrOpcode.ATOMIC_FETCH_AND_ADD, 8).w;
    assert.throws(() => (atomic.length = 4), TypeError);
    assert.throws(() => (atomic.remoteOffset = 4), RangeError);
    atomic.remoteOffset = 16;
    assert.equal(atomic.remoteOffset, 16);
  });
  await t.step("the constructor checks its descriptor", () => {
    const qp = new ClosableHandleDouble("QueuePair");
    const token: typeof PREPARED_BY_QUEUE_PAIR = PREPARED_BY_QUEUE_PAIR;
    assert.throws(() => new PreparedSend(token, new Uint8Array(8), [qp]), TypeError);
    assert.throws(() => new PreparedSend(token, new Uint8Array(SEND.size), []), TypeError);
  });
  await t.step("only QueuePair.prepareSend makes one", () => {
    const qp = new ClosableHandleDouble("QueuePair");
    assert.throws(
      // @ts-expect-error: without the module's token, on purpose
      () => new PreparedSend(Symbol("forged"), descriptor(WrOpcode.SEND, 8, 0n), [qp]),
      /comes from QueuePair.prepareSend/,
    );
  });
});

Deno.test("prepared send: post() refuses bad counts and closed handles before posting", async (t) => {
  await t.step("count outside [1, MAX_CHAIN]", () => {
    const { w } = fixture();
    for (const count of [0, -1, MAX_CHAIN + 1, 1.5, NaN]) {
      assert.throws(() => w.post(count), RangeError, `count ${count}`);
    }
  });
  await t.step("closed queue pair: EBADF", () => {
    const { w, qp } = fixture();
    qp.close();
    assert.throws(() => w.post(), (e) => e instanceof RdmaError && e.errno === Errno.EBADF);
  });
  await t.step("deregistered region: EBADF", () => {
    const { w, mr } = fixture();
    mr.close();
    assert.throws(
      () => w.post(4),
      (e) => e instanceof RdmaError && e.errno === Errno.EBADF && /MemoryRegion/.test(e.message),
    );
  });
});

Deno.test("drv_post_send_chain refuses chains and lists it cannot hold, before touching the QP", () => {
  const shim = verbsNative();
  // A pointer that would fault if dereferenced: these checks must come first.
  const notAQp = pointerAt(0x10n)!;
  const posted = new Uint32Array([7]);
  const bytes = descriptor(WrOpcode.RDMA_WRITE, 64, 0x1000n);
  assert.equal(shim.drv_post_send_chain(notAQp, bytes, 0, 1, posted), -Errno.EINVAL);
  assert.equal(shim.drv_post_send_chain(notAQp, bytes, MAX_CHAIN + 1, 1, posted), -Errno.EINVAL);
  new DataView(bytes.buffer).setUint32(SEND.num_sge, MAX_SGE + 1, true);
  assert.equal(shim.drv_post_send_chain(notAQp, bytes, 1, 1, posted), -Errno.EINVAL);
  assert.equal(shim.drv_last_errno(), Errno.EINVAL);
  assert.equal(posted[0], 7, "nothing was posted, so the count is untouched");
});
