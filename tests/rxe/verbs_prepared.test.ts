// rxe suite: prepared send requests (QueuePair.prepareSend): one RDMA WRITE posted many times with
// changing wrId, remote offset and length lands byte for byte; chains produce one completion each
// (or one per copy when the queue pair signals all); bad input and closed handles are refused.
import assert from "node:assert/strict";
import {
  Access,
  Errno,
  type PreparedSend,
  type QueuePair,
  RdmaError,
  WcOpcode,
  WrOpcode,
} from "../../verbs/mod.ts";
import {
  ALL_REMOTE,
  assertAllSucceeded,
  firstDifference,
  type Loopback,
  openLoopback,
  pattern,
} from "./verbs_loopback.ts";

/** Two RC queue pairs on `lo`'s completion queue that signal only what asks for a completion. */
function selectivePair(lo: Loopback, maxSendWr = 128): { a: QueuePair; b: QueuePair } {
  const options = { type: "RC", sendCq: lo.cq, signalAll: false, maxSendWr } as const;
  const a = lo.pd.createQueuePair(options);
  const b = lo.pd.createQueuePair(options);
  a.connect(b.localInfo(), { access: ALL_REMOTE });
  b.connect(a.localInfo(), { access: ALL_REMOTE });
  return { a, b };
}

/** Polls without waiting for `ms` and returns how many completions arrived. */
async function quietCount(lo: Loopback, ms: number): Promise<number> {
  let seen = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    seen += lo.cq.poll(lo.wcs);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return seen;
}

/**
 * A source holding pattern(sourceBytes, seed), a zeroed remotely writable target, and an RDMA WRITE
 * of the source into the target prepared on `qp` (with `extra` options). Dispose it to deregister.
 */
function preparedWrite(
  lo: Loopback,
  qp: QueuePair,
  sourceBytes: number,
  seed: number,
  targetBytes: number,
  extra: { signaled?: boolean; wrId?: number } = {},
) {
  const source = pattern(sourceBytes, seed);
  const target = new Uint8Array(targetBytes);
  const src = lo.pd.registerMemory(source);
  const dst = lo.pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  const w = qp.prepareSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
    ...extra,
  });
  return {
    source,
    target,
    w,
    [Symbol.dispose]() {
      dst.close();
      src.close();
    },
  };
}

Deno.test("a prepared RDMA WRITE posted 32 times with new wrId, offset and length lands", async () => {
  using lo = openLoopback();
  using write = preparedWrite(lo, lo.a, 1024, 3, 32 * 1024);
  const { source, target, w } = write;
  assert.equal(w.maxLength, 1024);
  const lengthOf = (i: number) => 1024 - i * 24;
  for (let i = 0; i < 32; i++) {
    w.wrId = 100 + i;
    w.remoteOffset = i * 1024;
    w.length = lengthOf(i);
    w.post();
  }
  const wcs = await lo.completions(32);
  assertAllSucceeded(wcs);
  assert.deepEqual(
    wcs.map((wc) => wc.wrId).sort((x, y) => Number(x - y)),
    Array.from({ length: 32 }, (_, i) => BigInt(100 + i)),
  );
  for (const wc of wcs) assert.equal(wc.opcode, WcOpcode.RDMA_WRITE);
  for (let i = 0; i < 32; i++) {
    const slot = target.subarray(i * 1024, (i + 1) * 1024);
    const n = lengthOf(i);
    assert.equal(firstDifference(slot.subarray(0, n), source.subarray(0, n)), -1, `write ${i}`);
    assert.ok(slot.subarray(n).every((b) => b === 0), `write ${i} went past its length`);
  }
});

Deno.test("chained posts: one completion per signaled chain, with the last copy's wrId", async () => {
  using lo = openLoopback();
  const { a, b } = selectivePair(lo);
  using _a = a;
  using _b = b;
  using write = preparedWrite(lo, a, 256, 5, 256, { signaled: true });
  const { source, target, w } = write;
  const chains = [16, 64, 1, 7];
  let wrId = 0;
  for (const count of chains) {
    w.wrId = wrId;
    w.post(count);
    wrId += count;
  }
  const wcs = await lo.completions(chains.length);
  assertAllSucceeded(wcs);
  assert.deepEqual(wcs.map((wc) => wc.wrId), [15n, 79n, 80n, 87n]);
  assert.equal(await quietCount(lo, 200), 0, "an unsignaled copy produced a completion");
  assert.equal(firstDifference(target, source), -1);

  // Unsignaled chains produce nothing; a signaled post after them completes after them (RC order).
  w.signaled = false;
  w.wrId = 1000;
  w.post(32);
  w.signaled = true;
  w.wrId = 2000;
  w.post();
  const last = await lo.completions(1);
  assertAllSucceeded(last);
  assert.equal(last[0].wrId, 2000n);
  assert.equal(await quietCount(lo, 200), 0);
});

Deno.test("chained posts on a queue pair that signals all: a completion per copy", async () => {
  using lo = openLoopback();
  using write = preparedWrite(lo, lo.a, 64, 9, 64, { wrId: 40 });
  const { source, target, w } = write;
  w.post(8);
  const wcs = await lo.completions(8);
  assertAllSucceeded(wcs);
  assert.deepEqual(
    wcs.map((wc) => wc.wrId).sort((x, y) => Number(x - y)),
    [40n, 41n, 42n, 43n, 44n, 45n, 46n, 47n],
  );
  assert.equal(firstDifference(target, source), -1);
});

Deno.test("a prepared SEND with immediate and inline data reaches a receive", async () => {
  using lo = openLoopback();
  const { a, b } = (() => {
    const options = { type: "RC", sendCq: lo.cq, maxInlineData: 64 } as const;
    const a = lo.pd.createQueuePair(options);
    const b = lo.pd.createQueuePair(options);
    a.connect(b.localInfo());
    b.connect(a.localInfo());
    return { a, b };
  })();
  using _a = a;
  using _b = b;
  const source = pattern(48, 11);
  const target = new Uint8Array(64);
  using src = lo.pd.registerMemory(source);
  using dst = lo.pd.registerMemory(target);
  const w = a.prepareSend({
    opcode: WrOpcode.SEND_WITH_IMM,
    imm: 0xfeedf00d,
    sge: { mr: src },
    inline: true,
    wrId: 1,
  });
  for (let i = 0; i < 3; i++) {
    b.postRecv({ wrId: 10 + i, sge: { mr: dst } });
    w.wrId = 1 + i;
    w.post();
    const wcs = await lo.completions(2);
    assertAllSucceeded(wcs);
    const recv = wcs.find((wc) => wc.opcode === WcOpcode.RECV)!;
    assert.equal(recv.wrId, BigInt(10 + i));
    assert.equal(recv.immData, 0xfeedf00d);
    assert.equal(recv.byteLength, 48);
  }
  assert.equal(firstDifference(target.subarray(0, 48), source), -1);
});

Deno.test("prepareSend and post refuse bad input and closed handles", async (t) => {
  using lo = openLoopback();
  const buffer = new Uint8Array(4096);
  using dst = lo.pd.registerMemory(buffer, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  const src = lo.pd.registerMemory(new Uint8Array(4096));
  const write = {
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  };

  await t.step("the same checks as postSend", () => {
    assert.throws(() => lo.a.prepareSend({ ...write, rkey: undefined }), TypeError);
    assert.throws(() => lo.a.prepareSend({ ...write, opcode: 99 }), RangeError);
    assert.throws(
      () => lo.a.prepareSend({ ...write, sge: { mr: src, offset: 4000, length: 200 } }),
      RangeError,
    );
    // @ts-expect-error: wrong type on purpose
    assert.throws(() => lo.a.prepareSend(null), TypeError);
  });
  await t.step(
    "a chain longer than the send queue: ENOMEM, saying how many were posted",
    async () => {
      using lo2 = openLoopback();
      const { a, b } = selectivePair(lo2, 8);
      using _a = a;
      using _b = b;
      using s2 = lo2.pd.registerMemory(new Uint8Array(64));
      using d2 = lo2.pd.registerMemory(new Uint8Array(64), {
        access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
      });
      const w = a.prepareSend({
        opcode: WrOpcode.RDMA_WRITE,
        sge: { mr: s2 },
        remoteAddress: d2.address,
        rkey: d2.rkey,
        signaled: true,
      });
      const capacity = 64;
      let error: unknown;
      try {
        w.post(capacity);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof RdmaError, `posting ${capacity} into 8 slots did not fail`);
      assert.equal(error.errno, Errno.ENOMEM);
      const match = / (\d+) of 64 posted/.exec(error.message);
      assert.ok(match, error.message);
      assert.ok(Number(match[1]) >= 8 && Number(match[1]) < 64, error.message);
      // Every accepted copy was unsignaled (the signaled last one was refused): nothing completes.
      assert.equal(await quietCount(lo2, 200), 0);
      a.toError();
      await quietCount(lo2, 100);
    },
  );
  await t.step(
    "deregistered region, after a post that used it: EBADF, nothing posted",
    async () => {
      const w = lo.a.prepareSend(write);
      w.post(); // the handles are checked now, and not again until something closes
      await quietCount(lo, 100);
      src.close();
      assert.throws(() => w.post(), (e) => e instanceof RdmaError && e.errno === Errno.EBADF);
      assert.equal(await quietCount(lo, 100), 0);
    },
  );
  await t.step(
    "region whose ArrayBuffer was transferred: EBADF on post and prepared post, nothing posted",
    async () => {
      let source = new Uint8Array(4096);
      using moved = lo.pd.registerMemory(source);
      const w = lo.a.prepareSend({ ...write, sge: { mr: moved } });
      w.post(); // checked once; nothing closes afterwards, so only the detach can stop the next
      await quietCount(lo, 100);
      source = new Uint8Array(source.buffer.transfer(8192)); // the registered memory is freed
      assert.equal(moved.detached, true);
      const detached = (e: unknown) =>
        e instanceof RdmaError && e.errno === Errno.EBADF && /detached/.test(e.message);
      assert.throws(() => w.post(), detached);
      assert.throws(() => lo.a.postSend({ ...write, sge: { mr: moved } }), detached);
      assert.throws(() => lo.b.postRecv({ sge: { mr: moved } }), detached);
      assert.equal(await quietCount(lo, 100), 0);
      assert.equal(source.byteLength, 8192);
    },
  );
  await t.step("closed queue pair: EBADF", () => {
    using s3 = lo.pd.registerMemory(new Uint8Array(64));
    const qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
    const w: PreparedSend = qp.prepareSend({ ...write, sge: { mr: s3 } });
    qp.close();
    assert.throws(() => w.post(), (e) => e instanceof RdmaError && e.errno === Errno.EBADF);
    assert.throws(() => qp.prepareSend(write), (e) => e instanceof RdmaError);
  });
});
