// rxe suite: CompletionQueue.pollChecked: successful completions come back counted and in order;
// a failed one is a CompletionError with its status and work request id, and the completions
// polled with it stay readable; bad input is TypeError/RangeError and a closed queue EBADF.
import assert from "node:assert/strict";
import {
  Access,
  CompletionError,
  Errno,
  type MemoryRegion,
  type PreparedSend,
  RdmaError,
  WcOpcode,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../verbs/mod.ts";
import { type Loopback, openLoopback, pattern } from "./verbs_loopback.ts";

const TIMEOUT_MS = 10_000;

/** A signaled RDMA WRITE of all of `src` to the start of `dst`, on the loopback's first QP. */
function signaledWrite(lo: Loopback, src: MemoryRegion, dst: MemoryRegion): PreparedSend {
  return lo.a.prepareSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
    signaled: true,
  });
}

/** Calls pollChecked until `n` completions arrived or it throws; returns the wrIds and the error. */
async function reap(
  lo: Loopback,
  wcs: WorkCompletions,
  n: number,
): Promise<{ seen: number[]; error?: unknown }> {
  const seen: number[] = [];
  const deadline = performance.now() + TIMEOUT_MS;
  while (seen.length < n) {
    if (performance.now() > deadline) throw new Error(`only ${seen.length} of ${n} arrived`);
    let got: number;
    try {
      got = lo.cq.pollChecked(wcs);
    } catch (error) {
      return { seen, error };
    }
    assert.equal(wcs.count, got);
    for (let i = 0; i < got; i++) {
      assert.equal(wcs.status(i), WcStatus.SUCCESS);
      assert.equal(wcs.opcode(i), WcOpcode.RDMA_WRITE);
      seen.push(wcs.wrId(i));
    }
    if (got === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { seen };
}

Deno.test("pollChecked counts successful completions, in posting order", async () => {
  using lo = openLoopback();
  using src = lo.pd.registerMemory(pattern(256, 7));
  const target = new Uint8Array(256);
  using dst = lo.pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  const write = signaledWrite(lo, src, dst);
  for (let i = 0; i < 40; i++) {
    write.wrId = 1000 + i;
    write.post();
  }
  // Capacity 16 and max 5: a poll never reports more than it was allowed to take.
  const wcs = new WorkCompletions(16);
  const seen: number[] = [];
  const deadline = performance.now() + TIMEOUT_MS;
  while (seen.length < 40 && performance.now() < deadline) {
    const got = lo.cq.pollChecked(wcs, 5);
    assert.ok(got >= 0 && got <= 5, `polled ${got}`);
    for (let i = 0; i < got; i++) seen.push(wcs.wrId(i));
    if (got === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => 1000 + i));
  assert.equal(lo.cq.pollChecked(wcs), 0, "a completion was reported twice");
  assert.deepEqual(target, pattern(256, 7));
});

Deno.test("a failed completion is a CompletionError with its status and wrId", async () => {
  using lo = openLoopback();
  using src = lo.pd.registerMemory(pattern(64, 1));
  using writable = lo.pd.registerMemory(new Uint8Array(64), {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  using localOnly = lo.pd.registerMemory(new Uint8Array(64)); // no remote write: the 4th fails
  const good = signaledWrite(lo, src, writable);
  const bad = signaledWrite(lo, src, localOnly);
  for (let i = 0; i < 3; i++) {
    good.wrId = 100 + i;
    good.post();
  }
  bad.wrId = 103;
  bad.post();
  const wcs = new WorkCompletions(16);
  const { seen, error } = await reap(lo, wcs, 4);
  assert.ok(error instanceof CompletionError, `got ${error}, completions ${seen}`);
  assert.equal(error.status, WcStatus.REM_ACCESS_ERR);
  assert.equal(error.statusName, "REM_ACCESS_ERR");
  assert.equal(error.wrId, 103n);
  assert.equal(error.completion.wrId, 103n);
  assert.match(error.message, /work request 103 completed with REM_ACCESS_ERR/);
  // Everything polled with the failed completion is still readable: the successes before it
  // (in earlier polls or in the same one) are exactly the three good writes.
  assert.ok(error.index < wcs.count);
  assert.equal(wcs.wrId(error.index), 103);
  const before = [...seen];
  for (let i = 0; i < error.index; i++) {
    assert.equal(wcs.status(i), WcStatus.SUCCESS);
    before.push(wcs.wrId(i));
  }
  assert.deepEqual(before, [100, 101, 102]);
});

Deno.test("pollChecked: bad input is a TypeError or RangeError, a closed queue EBADF", () => {
  const lo = openLoopback();
  const wcs = new WorkCompletions(4);
  try {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => lo.cq.pollChecked({ bytes: new Uint8Array(48) } as any), TypeError);
    assert.throws(() => lo.cq.pollChecked(wcs, 0), RangeError);
    assert.throws(() => lo.cq.pollChecked(wcs, 5), RangeError);
    assert.throws(() => lo.cq.pollChecked(wcs, 1.5), RangeError);
    assert.equal(lo.cq.pollChecked(wcs, 4), 0);
  } finally {
    lo[Symbol.dispose]();
  }
  assert.throws(
    () => lo.cq.pollChecked(wcs),
    (e) => e instanceof RdmaError && e.errno === Errno.EBADF && e.verb === "ibv_poll_cq",
  );
});
