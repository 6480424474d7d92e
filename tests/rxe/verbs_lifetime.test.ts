// rxe suite: what user code can do to native objects' lifetimes must end in a typed error, never in
// a crash: a worker ended during a wait, a cache over a protection domain, a transferred
// completion buffer, getters in a work request that close handles while it is being encoded.
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { RdmaError, WorkCompletions } from "../../mod.ts";
import { openLoopback } from "./verbs_loopback.ts";

const isRdmaError = (code: string) => (e: unknown) => e instanceof RdmaError && e.code === code;

Deno.test("a worker terminated while cq.wait() runs does not take the process down", async () => {
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--no-check",
      new URL("./lifetime_wait_child.ts", import.meta.url).pathname,
    ],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
  assert.equal(child.signal, null, out);
  assert.equal(child.code, 0, out);
  assert.match(out, /^survived$/m);
});

Deno.test("a registration cache keeps its protection domain open", () => {
  using lo = openLoopback();
  const pd = lo.ctx.allocProtectionDomain();
  const cache = new RegistrationCache(pd);
  assert.throws(
    () => pd.close(),
    (e: unknown) => isRdmaError("EBUSY")(e) && /1 RegistrationCache/.test((e as Error).message),
  );
  cache.get(new Uint8Array(4096)).release(); // still usable
  cache.close();
  pd.close();
  assert.throws(() => new RegistrationCache(pd), isRdmaError("EBADF"));
  // `using` disposes the domain before the cache here: it is closed for its user at once and
  // destroyed after the cache.
  {
    using pd2 = lo.ctx.allocProtectionDomain();
    const cache2 = new RegistrationCache(pd2);
    pd2[Symbol.dispose]();
    assert.equal(pd2.closed, true);
    cache2.get(new Uint8Array(4096)).release();
    cache2.close();
  }
});

Deno.test("a region posted once and then dropped is still collected and deregistered", async () => {
  using lo = openLoopback();
  const pd = lo.ctx.allocProtectionDomain();
  const qp = pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  qp.toInit();
  (() => {
    const mr = pd.registerMemory(new Uint8Array(64));
    qp.postRecv({ wrId: 1, sge: { mr } });
  })();
  qp.close();
  // The safety net deregisters a region nobody references; then the domain can close.
  let closed = false;
  for (let i = 0; i < 50 && !closed; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      pd.close();
      closed = true;
    } catch (e) {
      if (!(e instanceof RdmaError && e.code === "EBUSY")) throw e;
    }
  }
  assert.ok(closed, "something kept the region reachable");
});

Deno.test("a completion buffer transferred away is a TypeError, not a write through null", () => {
  using lo = openLoopback();
  const wcs = new WorkCompletions(4);
  structuredClone(wcs.bytes.buffer, { transfer: [wcs.bytes.buffer as ArrayBuffer] });
  assert.throws(() => lo.cq.poll(wcs), TypeError);
  assert.throws(() => lo.cq.pollChecked(wcs), TypeError);
});

Deno.test("getters that close handles while a request is encoded: EBADF, never a freed pointer", async (t) => {
  await t.step("the queue pair, from postSend and postRecv", () => {
    using lo = openLoopback();
    using mr = lo.pd.registerMemory(new Uint8Array(64));
    const qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
    qp.connect(lo.a.localInfo());
    assert.throws(() =>
      qp.postSend({
        sge: { mr },
        get wrId() {
          qp.close();
          return 1;
        },
      }), isRdmaError("EBADF"));
    const qp2 = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
    assert.throws(() =>
      qp2.postRecv({
        sge: { mr },
        get wrId() {
          qp2.close();
          return 1;
        },
      }), isRdmaError("EBADF"));
  });
  await t.step("a getter that posts on the same queue pair: EBUSY, the outer post intact", () => {
    using lo = openLoopback();
    using mr = lo.pd.registerMemory(new Uint8Array(64));
    assert.throws(() =>
      lo.a.postSend({
        sge: { mr },
        get wrId() {
          lo.a.postSend({ sge: { mr }, wrId: 2 });
          return 1;
        },
      }), isRdmaError("EBUSY"));
    lo.a.postSend({ sge: { mr }, wrId: 3 }); // not left half-encoded
  });
  await t.step("the address handle of a UD send", () => {
    using lo = openLoopback("UD");
    using mr = lo.pd.registerMemory(new Uint8Array(64));
    const peer = lo.b.localInfo();
    const ah = lo.pd.createAddressHandle({ gid: peer.gid });
    assert.throws(() =>
      lo.a.postSend({
        sge: { mr },
        ah,
        get remoteQpn() {
          ah.close();
          return peer.qpn;
        },
      }), isRdmaError("EBADF"));
  });
  await t.step("prepareSend keeps the handles it encoded, not what a second read returns", () => {
    using lo = openLoopback("UD");
    using mr = lo.pd.registerMemory(new Uint8Array(64));
    const peer = lo.b.localInfo();
    const handles = [
      lo.pd.createAddressHandle({ gid: peer.gid }),
      lo.pd.createAddressHandle({ gid: peer.gid }),
    ];
    let reads = 0;
    const prepared = lo.a.prepareSend({
      sge: { mr },
      get ah() {
        return handles[reads++];
      },
      remoteQpn: peer.qpn,
    });
    assert.equal(reads, 1, "wr.ah read once");
    // The request is bound to the handle it encoded: closing the other changes nothing, closing
    // that one makes the next post EBADF (rather than hand the provider a destroyed ibv_ah).
    handles[1].close();
    prepared.post();
    handles[0].close();
    assert.throws(() => prepared.post(), isRdmaError("EBADF"));
  });
});
