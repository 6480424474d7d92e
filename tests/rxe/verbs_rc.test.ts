// rxe suite: an RC queue pair pair in loopback: SEND/RECV, RDMA WRITE (with immediate), RDMA READ
// of 1 MiB verified byte for byte, a WRITE into shared memory, atomics, completion events, and bad
// work requests.
import assert from "node:assert/strict";
import { addressOf } from "../../ffi/pointers.ts";
import {
  Access,
  gidText,
  QpState,
  RdmaError,
  WcFlags,
  WcOpcode,
  WcStatus,
  WrOpcode,
} from "../../verbs/mod.ts";
import { assertAllSucceeded, firstDifference, openLoopback, pattern } from "./verbs_loopback.ts";

const MiB = 1 << 20;

Deno.test("RC SEND/RECV and SEND with immediate, with a scatter/gather list", async () => {
  using lo = openLoopback();
  const source = pattern(3000, 1);
  const target = new Uint8Array(4096);
  using src = lo.pd.registerMemory(source);
  using dst = lo.pd.registerMemory(target);
  lo.b.postRecv({
    wrId: 1,
    sge: [{ mr: dst, offset: 0, length: 1000 }, { mr: dst, offset: 2000 }],
  });
  lo.a.postSend({
    wrId: 2,
    opcode: WrOpcode.SEND,
    sge: [{ mr: src, offset: 0, length: 1000 }, { mr: src, offset: 1000, length: 2000 }],
  });
  const wcs = await lo.completions(2);
  assertAllSucceeded(wcs);
  const recv = wcs.find((w) => w.wrId === 1n)!;
  assert.equal(recv.opcode, WcOpcode.RECV);
  assert.equal(recv.byteLength, 3000);
  assert.equal(recv.qpNum, lo.b.qpn);
  assert.equal(firstDifference(target.subarray(0, 1000), source.subarray(0, 1000)), -1);
  assert.equal(firstDifference(target.subarray(2000, 4000), source.subarray(1000)), -1);
  assert.equal(target[1500], 0, "the gap between the two receive elements was written");

  lo.b.postRecv({ wrId: 3, sge: { mr: dst } });
  lo.a.postSend({
    wrId: 4,
    opcode: WrOpcode.SEND_WITH_IMM,
    imm: 0xdeadbeef,
    sge: { mr: src, length: 16 },
  });
  const imm = await lo.completions(2);
  assertAllSucceeded(imm);
  const got = imm.find((w) => w.wrId === 3n)!;
  assert.ok(got.flags & WcFlags.WITH_IMM);
  assert.equal(got.immData, 0xdeadbeef);
  assert.equal(got.byteLength, 16);
});

Deno.test("RC RDMA WRITE of 1 MiB lands byte for byte; WRITE with immediate notifies", async () => {
  using lo = openLoopback();
  const source = pattern(MiB, 7);
  const target = new Uint8Array(MiB);
  using src = lo.pd.registerMemory(source);
  using dst = lo.pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  lo.a.postSend({
    wrId: 10,
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  assertAllSucceeded(await lo.completions(1));
  assert.equal(firstDifference(target, source), -1);

  target.fill(0);
  lo.b.postRecv({ wrId: 11 });
  lo.a.postSend({
    wrId: 12,
    opcode: WrOpcode.RDMA_WRITE_WITH_IMM,
    imm: 42,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  const wcs = await lo.completions(2);
  assertAllSucceeded(wcs);
  const notice = wcs.find((w) => w.wrId === 11n)!;
  assert.equal(notice.opcode, WcOpcode.RECV_RDMA_WITH_IMM);
  assert.equal(notice.immData, 42);
  assert.equal(notice.byteLength, MiB);
  assert.equal(firstDifference(target, source), -1);
});

Deno.test("RC RDMA WRITE into a registered SharedArrayBuffer is seen through another view", async () => {
  using lo = openLoopback();
  const source = pattern(64 * 1024, 5);
  const shared = new SharedArrayBuffer(64 * 1024);
  using src = lo.pd.registerMemory(source);
  using dst = lo.pd.registerMemory(shared, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  assert.equal(dst.length, shared.byteLength);
  assert.equal(dst.detached, false);
  lo.a.postSend({
    wrId: 13,
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  assertAllSucceeded(await lo.completions(1));
  assert.equal(firstDifference(new Uint8Array(shared), source), -1);
});

Deno.test("RC RDMA READ of 1 MiB is byte for byte", async () => {
  using lo = openLoopback();
  const remote = pattern(MiB, 99);
  const local = new Uint8Array(MiB);
  using r = lo.pd.registerMemory(remote, { access: Access.LOCAL_WRITE | Access.REMOTE_READ });
  using l = lo.pd.registerMemory(local);
  lo.a.postSend({
    wrId: 20,
    opcode: WrOpcode.RDMA_READ,
    sge: { mr: l },
    remoteAddress: r.address,
    rkey: r.rkey,
  });
  const [wc] = await lo.completions(1);
  assertAllSucceeded([wc]);
  assert.equal(wc.opcode, WcOpcode.RDMA_READ);
  assert.equal(firstDifference(local, remote), -1);
});

Deno.test("RC atomics: fetch-add and compare-swap return the old value and update memory", async () => {
  using lo = openLoopback();
  const counter = new BigUint64Array(1);
  const result = new BigUint64Array(1);
  counter[0] = 40n;
  using c = lo.pd.registerMemory(counter, { access: Access.LOCAL_WRITE | Access.REMOTE_ATOMIC });
  using res = lo.pd.registerMemory(result);
  lo.a.postSend({
    wrId: 30,
    opcode: WrOpcode.ATOMIC_FETCH_AND_ADD,
    sge: { mr: res },
    remoteAddress: c.address,
    rkey: c.rkey,
    compareAdd: 2,
  });
  assertAllSucceeded(await lo.completions(1));
  assert.equal(result[0], 40n);
  assert.equal(counter[0], 42n);

  lo.a.postSend({
    wrId: 31,
    opcode: WrOpcode.ATOMIC_CMP_AND_SWP,
    sge: { mr: res },
    remoteAddress: c.address,
    rkey: c.rkey,
    compareAdd: 42,
    swap: 0x1_0000_0000n,
  });
  assertAllSucceeded(await lo.completions(1));
  assert.equal(result[0], 42n);
  assert.equal(counter[0], 0x1_0000_0000n);

  lo.a.postSend({
    wrId: 32,
    opcode: WrOpcode.ATOMIC_CMP_AND_SWP,
    sge: { mr: res },
    remoteAddress: c.address,
    rkey: c.rkey,
    compareAdd: 7, // does not match: no swap
    swap: 9,
  });
  assertAllSucceeded(await lo.completions(1));
  assert.equal(result[0], 0x1_0000_0000n);
  assert.equal(counter[0], 0x1_0000_0000n);
});

Deno.test("remote access is only what the region granted: a WRITE to a local-only region fails", async () => {
  using lo = openLoopback();
  using src = lo.pd.registerMemory(new Uint8Array(64));
  const target = new Uint8Array(64);
  using dst = lo.pd.registerMemory(target); // default: local write only
  lo.a.postSend({
    wrId: 40,
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  const [wc] = await lo.completions(1);
  assert.equal(wc.status, WcStatus.REM_ACCESS_ERR);
  // The device moved the queue pair to ERR; `state` asks the device, not libibverbs' copy.
  assert.equal(lo.a.state, QpState.ERR);
});

Deno.test("connect() uses the port and GID index localInfo() announced", () => {
  using lo = openLoopback();
  // Another routable RoCE v2 entry than the default (rxe0 sits on the loopback device: ::1 beside
  // ::ffff:127.0.0.1); the peer's path uses the same kind of address, as if both ends chose it.
  const table = lo.ctx.gidTable(1);
  const linkLocal = (g: Uint8Array) => g[0] === 0xfe && (g[1] & 0xc0) === 0x80;
  const other = table.find((e) =>
    e.type === "roce-v2" && e.index !== lo.a.defaultGidIndex() && !linkLocal(e.gid)
  );
  assert.ok(other, JSON.stringify(table.map((e) => [e.index, e.text, e.type])));
  using qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  const mine = qp.localInfo({ gidIndex: other.index });
  assert.equal(mine.gid, gidText(other.gid));
  qp.connect(lo.b.localInfo({ gidIndex: other.index }));
  const attributes = qp.queryAttributes();
  assert.equal(attributes.gidIndex, other.index, "the source GID is the one announced");
  assert.equal(attributes.port, 1);
  // Announced an IPv6 GID, given the peer's IPv4 one: named, rather than RTR's bare EINVAL.
  using mixed = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  mixed.localInfo({ gidIndex: other.index });
  assert.throws(
    () => mixed.connect(lo.b.localInfo()),
    (e: unknown) => e instanceof RangeError && /one is IPv4, the other IPv6/.test(e.message),
  );
});

Deno.test("inline data beyond what the queue pair takes is a RangeError naming its limit", () => {
  using lo = openLoopback();
  using qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, maxInlineData: 64 });
  assert.ok(qp.maxInlineData >= 64);
  const big = qp.maxInlineData + 1;
  using mr = lo.pd.registerMemory(new Uint8Array(big));
  assert.throws(
    () => qp.postSend({ sge: { mr }, inline: true }),
    (e: unknown) => e instanceof RangeError && e.message.includes(`takes ${qp.maxInlineData}`),
  );
});

Deno.test("a completion queue's EBUSY counts each queue pair once", () => {
  using lo = openLoopback();
  const cq = lo.ctx.createCompletionQueue();
  const qps = [0, 1].map(() => lo.pd.createQueuePair({ type: "RC", sendCq: cq }));
  assert.throws(
    () => cq.close(),
    (e: unknown) => e instanceof RdmaError && /open 2 QueuePairs;/.test(e.message),
  );
  for (const qp of qps) qp.close();
  cq.close();
});

Deno.test("cq.wait() does not block the event loop: a timer fires while it waits", async () => {
  using lo = openLoopback();
  using src = lo.pd.registerMemory(new Uint8Array(64));
  const target = new Uint8Array(64);
  using dst = lo.pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  let timerFired = false;
  const waiting = lo.cq.wait({ timeoutMs: 5000 });
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      timerFired = true;
      lo.a.postSend({
        opcode: WrOpcode.RDMA_WRITE,
        sge: { mr: src },
        remoteAddress: dst.address,
        rkey: dst.rkey,
      });
      resolve();
    }, 50)
  );
  assert.equal(await waiting, true);
  assert.ok(timerFired);
  assert.equal(lo.cq.poll(lo.wcs), 1);
  assert.equal(
    await lo.cq.wait({ timeoutMs: 150 }),
    false,
    "a wait with nothing to come times out",
  );
});

Deno.test("closing a queue during wait() rejects the wait with EBADF", async () => {
  using lo = openLoopback();
  const cq = lo.ctx.createCompletionQueue({ channel: true });
  const waiting = cq.wait();
  cq.close();
  await assert.rejects(waiting, (e: unknown) => e instanceof RdmaError && e.code === "EBADF");
  assert.equal(cq.closed, true);
});

Deno.test("bad work requests: TypeError, RangeError, or RdmaError, never a crash", async (t) => {
  using lo = openLoopback();
  using mr = lo.pd.registerMemory(new Uint8Array(4096), {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  const remote = { remoteAddress: mr.address, rkey: mr.rkey };
  await t.step("out-of-range scatter/gather", () => {
    assert.throws(() => lo.a.postSend({ sge: { mr, offset: 4000, length: 200 } }), RangeError);
    assert.throws(() => lo.a.postSend({ sge: { mr, offset: -1 } }), RangeError);
    assert.throws(() => lo.a.postSend({ sge: { mr, length: 0 } }), RangeError);
    const many = Array.from({ length: 5 }, () => ({ mr, length: 8 }));
    assert.throws(() => lo.a.postSend({ sge: many }), RangeError);
  });
  await t.step("wrong types and missing fields", () => {
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => lo.a.postSend({ sge: { mr: {} } }), TypeError);
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => lo.a.postSend(null), TypeError);
    assert.throws(() => lo.a.postSend({ opcode: WrOpcode.RDMA_WRITE, sge: { mr } }), TypeError);
    assert.throws(() => lo.a.postSend({ opcode: WrOpcode.SEND_WITH_IMM, sge: { mr } }), TypeError);
    assert.throws(() => lo.a.postSend({ opcode: 99 }), RangeError);
  });
  await t.step("atomics need one aligned 8-byte element", () => {
    const atomic = { opcode: WrOpcode.ATOMIC_FETCH_AND_ADD, compareAdd: 1, ...remote };
    assert.throws(() => lo.a.postSend({ ...atomic, sge: { mr, length: 16 } }), RangeError);
    assert.throws(
      () => lo.a.postSend({ ...atomic, sge: { mr, length: 8 }, remoteAddress: mr.address + 4n }),
      RangeError,
    );
  });
  await t.step("a deregistered region in a request is EBADF", () => {
    const gone = lo.pd.registerMemory(new Uint8Array(64));
    gone.deregister();
    assert.throws(
      () => lo.a.postSend({ sge: { mr: gone } }),
      (e: unknown) => e instanceof RdmaError && e.code === "EBADF",
    );
  });
  await t.step("a region of another protection domain is EINVAL, before the device", () => {
    using otherPd = lo.ctx.allocProtectionDomain();
    using foreign = otherPd.registerMemory(new Uint8Array(64));
    const isForeign = (e: unknown) =>
      e instanceof RdmaError && e.code === "EINVAL" && /protection domain/.test(e.message);
    assert.throws(() => lo.a.postSend({ sge: { mr: foreign } }), isForeign);
    assert.throws(() => lo.a.postRecv({ sge: { mr: foreign } }), isForeign);
    assert.throws(() => lo.a.prepareSend({ sge: { mr: foreign } }), isForeign);
    assert.equal(foreign.pd, otherPd);
  });
  await t.step("connection parameters are checked", () => {
    using qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
    assert.throws(() => qp.connect(), TypeError);
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => qp.connect({ ...lo.a.localInfo(), qpn: "1" }), TypeError);
    assert.throws(() => qp.connect({ ...lo.a.localInfo(), gid: "nonsense" }), RangeError);
    assert.throws(() => qp.toRts(), RdmaError, "RESET -> RTS is refused by the verb");
    // A read/atomic depth beyond the device's: a RangeError naming the limit, not a bare EINVAL.
    const limit = lo.ctx.queryDevice().maxQpInitRdAtom;
    assert.ok(limit < 255, `precondition: the device takes fewer than 255 (${limit})`);
    assert.throws(
      () => qp.connect(lo.a.localInfo(), { maxRdAtomic: 255 }),
      (e: unknown) => e instanceof RangeError && e.message.includes(`(${limit})`),
    );
  });
  await t.step("a closed queue pair is EBADF", () => {
    const qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
    qp.close();
    assert.throws(
      () => qp.postRecv({}),
      (e: unknown) => e instanceof RdmaError && e.code === "EBADF",
    );
  });
});

Deno.test("moving a queue pair to ERR flushes its posted receives", async () => {
  using lo = openLoopback();
  using mr = lo.pd.registerMemory(new Uint8Array(256));
  lo.b.postRecv({ wrId: 50, sge: { mr } });
  lo.b.postRecv({ wrId: 51, sge: { mr } });
  lo.b.toError();
  const wcs = await lo.completions(2);
  assert.deepEqual(wcs.map((w) => w.wrId).sort(), [50n, 51n]);
  assert.ok(wcs.every((w) => w.status === WcStatus.WR_FLUSH_ERR));
});

Deno.test("queryAttributes reports what the provider gave; an oversized request names it", () => {
  using lo = openLoopback();
  using qp = lo.pd.createQueuePair({
    type: "RC",
    sendCq: lo.cq,
    maxSendWr: 33,
    maxSendSge: 2,
    maxInlineData: 64,
  });
  const caps = qp.queryAttributes();
  assert.ok(caps.maxSendWr >= 33, JSON.stringify(caps));
  assert.ok(caps.maxSendSge >= 2 && caps.maxRecvSge >= 1, JSON.stringify(caps));
  assert.ok(caps.maxInlineData >= 64, JSON.stringify(caps));
  // More inline data than a send queue entry holds: the error says what was asked.
  assert.throws(
    () => lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, maxInlineData: 65536 }),
    (e: unknown) =>
      e instanceof RdmaError && e.verb === "ibv_create_qp" &&
      e.message.includes("65536 bytes inline"),
  );
  qp.close();
  assert.throws(
    () => qp.queryAttributes(),
    (e: unknown) => e instanceof RdmaError && e.code === "EBADF",
  );
});

Deno.test("read/atomic depths: each end announces what it accepts, the other issues no more", () => {
  using lo = openLoopback();
  const device = lo.ctx.queryDevice();
  // openLoopback connected a and b with each other's localInfo(): the defaults on both sides.
  const a = lo.a.queryAttributes();
  assert.equal(a.maxDestRdAtomic, Math.min(16, device.maxQpRdAtom));
  assert.equal(a.maxRdAtomic, Math.min(a.maxDestRdAtomic, device.maxQpInitRdAtom));
  // A peer that accepts 2: this end issues 2; asking for more than the peer accepts is refused.
  using b = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  const peer = { ...lo.a.localInfo({ maxDestRdAtomic: 2 }) };
  assert.equal(peer.maxDestRdAtomic, 2);
  using c = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  assert.throws(
    () => c.connect(peer, { maxRdAtomic: 4 }),
    (e: unknown) => e instanceof RangeError && e.message.includes("the peer accepts (2)"),
  );
  b.connect(peer);
  assert.equal(b.queryAttributes().maxRdAtomic, 2);
  // Asking for fewer than this end announced: the announcement wins (the peer may issue that).
  using e = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  const announced = e.localInfo().maxDestRdAtomic;
  assert.ok(announced > 1);
  e.connect(lo.b.localInfo(), { maxDestRdAtomic: 1 });
  assert.equal(e.queryAttributes().maxDestRdAtomic, announced);
  // A peer that does not say (a C program's exchange): one at a time.
  using d = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  const { maxDestRdAtomic: _, ...silent } = lo.a.localInfo();
  d.connect(silent);
  assert.equal(d.queryAttributes().maxRdAtomic, 1);
});

Deno.test("a region keeps its buffer alive when nothing else references it", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  using lo = openLoopback();
  // Only the region references the buffer from here on.
  using target = lo.pd.registerMemory(new Uint8Array(MiB), {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const source = pattern(MiB, 11);
  using src = lo.pd.registerMemory(source);
  lo.a.postSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: target.address,
    rkey: target.rkey,
  });
  assertAllSucceeded(await lo.completions(1));
  const bytes = target.bytes!;
  assert.equal(addressOf(bytes), target.address);
  assert.equal(firstDifference(bytes, source), -1);
});
