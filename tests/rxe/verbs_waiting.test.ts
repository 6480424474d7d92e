// Waiting at scale: every pending wait of the process is served by one native waiter, so the
// thread count stays constant and a completion is noticed at once whatever the number of waits;
// shared completion channels; timeouts and closes of many pending waits.
import assert from "node:assert/strict";
import { libc } from "../../ffi/libc.ts";
import {
  Access,
  type CompletionQueue,
  openDevice,
  pendingWaits,
  RdmaError,
  WorkCompletions,
  WrOpcode,
} from "../../verbs/mod.ts";
import { DEVICE } from "./verbs_loopback.ts";

const WAITS = 2_000;
/** A completion must be noticed within this long after the post, whatever the number of waits. */
const NOTICE_LIMIT_MS = 50;

function threads(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/^Threads:\s+(\d+)/m.exec(status)![1]);
}

/** Room for WAITS completion channels' descriptors (RLIMIT_NOFILE is 7 on Linux). */
function allowDescriptors(n: number): void {
  const limit = new BigUint64Array([BigInt(n), BigInt(n)]);
  assert.equal(libc().setrlimit(7, new Uint8Array(limit.buffer)), 0, "setrlimit(RLIMIT_NOFILE)");
}

/** Tracks how each promise settles (so none is left unhandled), read with `now()`. */
function track<T>(promises: Promise<T>[]): { now(): Promise<string[]> } {
  const states = promises.map(() => "pending");
  promises.forEach((p, i) =>
    p.then(() => states[i] = "fulfilled", (e) => states[i] = `rejected ${(e as RdmaError).code}`)
  );
  return {
    async now() {
      await new Promise((resolve) => setTimeout(resolve, 0));
      return [...states];
    },
  };
}

Deno.test("2,000 pending waits: constant threads, and a completion on the last queue noticed at once", async () => {
  allowDescriptors(WAITS + 1024);
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  const cqs: CompletionQueue[] = [];
  try {
    for (let i = 0; i < WAITS; i++) {
      cqs.push(ctx.createCompletionQueue({ entries: 4, channel: true }));
    }
    const last = cqs[WAITS - 1];
    using a = pd.createQueuePair({ type: "RC", sendCq: last });
    using b = pd.createQueuePair({ type: "RC", sendCq: cqs[0] });
    a.connect(b.localInfo(), { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    b.connect(a.localInfo(), { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    const source = new Uint8Array(64).fill(7), target = new Uint8Array(64);
    using src = pd.registerMemory(source);
    using dst = pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });

    const write = () =>
      a.postSend({
        wrId: 1n,
        opcode: WrOpcode.RDMA_WRITE,
        sge: src,
        remoteAddress: dst.address,
        rkey: dst.rkey,
        signaled: true,
      });
    const wcs = new WorkCompletions(4);
    /** Posts a write completing on the last queue; ms from the post to `wait` resolving true. */
    const roundTrip = async (wait: Promise<boolean>) => {
      const posted = performance.now();
      write();
      assert.equal(await wait, true);
      const ms = performance.now() - posted;
      assert.equal(last.poll(wcs), 1);
      assert.equal(wcs.status(0), 0);
      return ms;
    };
    // A few rounds with no other wait pending first: the waiter's thread exists before the
    // thread count is taken, and the path is compiled before it is timed.
    for (let i = 0; i < 5; i++) await roundTrip(last.wait({ timeoutMs: 10_000 }));
    const before = threads();
    const waits = cqs.map((cq) => cq.wait({ timeoutMs: 60_000 }));
    const tracked = track(waits);
    assert.equal(pendingWaits(), WAITS);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const during = threads();
    assert.ok(during - before <= 1, `threads went from ${before} to ${during} with ${WAITS} waits`);

    // The last queue's wait resolves, then four more rounds: the median is the figure.
    const noticed = [await roundTrip(waits[WAITS - 1])];
    for (let i = 0; i < 4; i++) noticed.push(await roundTrip(last.wait({ timeoutMs: 10_000 })));
    const medianMs = noticed.sort((x, y) => x - y)[2];
    console.log(`completion noticed ${medianMs.toFixed(2)} ms after the post, ${WAITS} waits`);
    assert.ok(medianMs < NOTICE_LIMIT_MS, `noticed after ${noticed.map((ms) => ms.toFixed(1))} ms`);
    assert.deepEqual(target, source);
    // Every other wait is still pending: only the ready descriptor was resolved.
    let states = await tracked.now();
    assert.deepEqual(states.filter((s) => s !== "pending"), ["fulfilled"]);
    assert.equal(states[WAITS - 1], "fulfilled");
    assert.equal(pendingWaits(), WAITS - 1);
    assert.ok(threads() - before <= 1, `threads went from ${before} to ${threads()}`);

    // Closing half of the queues rejects exactly their waits, with EBADF, at once.
    a.close();
    b.close();
    for (let i = 0; i < WAITS - 1; i += 2) cqs[i].close();
    states = await tracked.now();
    for (let i = 0; i < WAITS - 1; i++) {
      assert.equal(states[i], i % 2 === 0 ? "rejected EBADF" : "pending", `wait ${i}`);
    }
  } finally {
    for (const cq of cqs) cq.close();
  }
});

Deno.test("closing half of the pending waits rejects exactly those; the rest time out on time", async () => {
  allowDescriptors(WAITS + 1024);
  using ctx = openDevice(DEVICE);
  const cqs: CompletionQueue[] = [];
  try {
    for (let i = 0; i < WAITS; i++) {
      cqs.push(ctx.createCompletionQueue({ entries: 4, channel: true }));
    }
    const timeoutMs = 5_000;
    const started = performance.now();
    const waits = cqs.map((cq) =>
      cq.wait({ timeoutMs }).then(
        (fired) => ({ fired, at: performance.now() - started }),
        (error: unknown) => ({ error, at: performance.now() - started }),
      )
    );
    const tracked = track(waits);
    for (let i = 0; i < WAITS; i += 2) cqs[i].close();
    // One turn of the event loop later, every closed queue's wait has been rejected and none of
    // the others has settled (closing a thousand queues takes well under the time limit).
    const states = await tracked.now();
    assert.ok(performance.now() - started < timeoutMs, "closing took longer than the time limit");
    for (let i = 0; i < WAITS; i++) {
      assert.equal(states[i], i % 2 === 0 ? "fulfilled" : "pending", `wait ${i}`);
    }
    const results = await Promise.all(waits);
    for (let i = 0; i < WAITS; i++) {
      const r = results[i];
      if (i % 2 === 0) {
        assert.ok("error" in r && r.error instanceof RdmaError, `wait ${i} was not rejected`);
        assert.equal((r.error as RdmaError).code, "EBADF");
      } else {
        assert.ok("fired" in r && r.fired === false, `wait ${i}: ${JSON.stringify(r)}`);
        assert.ok(r.at >= timeoutMs - 1, `wait ${i} timed out early, at ${r.at} ms`);
        assert.ok(r.at < timeoutMs + 2_000, `wait ${i} timed out late, at ${r.at} ms`);
      }
    }
    assert.equal(pendingWaits(), 0);
  } finally {
    for (const cq of cqs) cq.close();
  }
});

Deno.test("a shared completion channel says which queues fired; each queue's own wait works too", async () => {
  using ctx = openDevice(DEVICE);
  using pd = ctx.allocProtectionDomain();
  using channel = ctx.createCompletionChannel();
  using cq1 = ctx.createCompletionQueue({ entries: 8, channel });
  using cq2 = ctx.createCompletionQueue({ entries: 8, channel });
  using cq3 = ctx.createCompletionQueue({ entries: 8, channel });
  assert.ok(cq1.hasChannel && cq2.hasChannel && cq3.hasChannel);
  using a = pd.createQueuePair({ type: "RC", sendCq: cq2, recvCq: cq3 });
  using b = pd.createQueuePair({ type: "RC", sendCq: cq1, recvCq: cq3 });
  const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE;
  a.connect(b.localInfo(), { access });
  b.connect(a.localInfo(), { access });
  const source = new Uint8Array(32).fill(3), target = new Uint8Array(32);
  using src = pd.registerMemory(source);
  using dst = pd.registerMemory(target, { access });
  const write = (wrId: bigint) =>
    a.postSend({
      wrId,
      opcode: WrOpcode.RDMA_WRITE,
      sge: src,
      remoteAddress: dst.address,
      rkey: dst.rkey,
      signaled: true,
    });

  assert.deepEqual(await channel.wait({ timeoutMs: 50 }), []);
  const pending = channel.wait({ timeoutMs: 10_000 });
  write(1n);
  const fired = await pending;
  assert.deepEqual(fired, [cq2]);
  const wcs = new WorkCompletions(4);
  assert.equal(cq2.poll(wcs), 1);
  assert.equal(BigInt(wcs.wrId(0)), 1n);

  // The queue's own wait receives its event; the channel's pending wait does not.
  const own = cq2.wait({ timeoutMs: 10_000 });
  const other = channel.wait({ timeoutMs: 300 });
  write(2n);
  assert.equal(await own, true);
  assert.deepEqual(await other, []);
  assert.equal(cq2.poll(wcs), 1);
  assert.equal(BigInt(wcs.wrId(0)), 2n);

  // An event nobody waited for is kept for the next wait.
  write(3n);
  const deadline = performance.now() + 10_000;
  while (cq2.poll(wcs) === 0) {
    assert.ok(performance.now() < deadline, "no completion");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.deepEqual(await channel.wait({ timeoutMs: 10_000 }), [cq2]);

  // The channel refuses to close while its queues are open.
  assert.throws(() => channel.close(), (e) => e instanceof RdmaError && e.code === "EBUSY");
});

Deno.test("hostile channel arguments get typed errors", async () => {
  using ctx = openDevice(DEVICE);
  using other = openDevice(DEVICE);
  using foreign = other.createCompletionChannel();
  assert.throws(
    () => ctx.createCompletionQueue({ channel: 1 as unknown as boolean }),
    TypeError,
  );
  assert.throws(
    () => ctx.createCompletionQueue({ channel: foreign }),
    (e) => e instanceof RdmaError && e.code === "EINVAL",
  );
  const closed = ctx.createCompletionChannel();
  closed.close();
  assert.throws(
    () => ctx.createCompletionQueue({ channel: closed }),
    (e) => e instanceof RdmaError && e.code === "EBADF",
  );
  await assert.rejects(() => closed.wait(), (e) => e instanceof RdmaError && e.code === "EBADF");
  // A getter that closes the channel while the options are read.
  const sneaky = ctx.createCompletionChannel();
  const options = {
    get entries() {
      sneaky.close();
      return 4;
    },
    channel: sneaky,
  };
  assert.throws(
    () => ctx.createCompletionQueue(options),
    (e) => e instanceof RdmaError && e.code === "EBADF",
  );
});
