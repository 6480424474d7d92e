// rxe suite: shared receive queues. Two queue pairs draw their receives from one SRQ; its limit,
// once armed, raises one SRQ_LIMIT_REACHED event; misuse is a typed error.
import assert from "node:assert/strict";
import { RdmaError, WcOpcode, WcStatus } from "../../mod.ts";
import { openLoopback } from "./verbs_loopback.ts";

const isRdmaError = (code: string) => (e: unknown) => e instanceof RdmaError && e.code === code;

Deno.test("two queue pairs receive through one shared receive queue", async () => {
  using lo = openLoopback();
  using srq = lo.pd.createSharedReceiveQueue({ maxWr: 16 });
  assert.ok(srq.query().maxWr >= 16);
  const inbox = new Uint8Array(4 * 64);
  using inMr = lo.pd.registerMemory(inbox);
  for (let i = 0; i < 4; i++) {
    srq.postRecv({ wrId: 100 + i, sge: { mr: inMr, offset: 64 * i, length: 64 } });
  }
  using b1 = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, srq });
  using b2 = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, srq });
  using a1 = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  using a2 = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  a1.connect(b1.localInfo());
  b1.connect(a1.localInfo());
  a2.connect(b2.localInfo());
  b2.connect(a2.localInfo());
  const messages = [new TextEncoder().encode("to b1"), new TextEncoder().encode("to b2 here")];
  using m1 = lo.pd.registerMemory(messages[0]);
  using m2 = lo.pd.registerMemory(messages[1]);
  a1.postSend({ wrId: 1, sge: { mr: m1 } });
  a2.postSend({ wrId: 2, sge: { mr: m2 } });
  const wcs = await lo.completions(4);
  assert.ok(wcs.every((w) => w.status === WcStatus.SUCCESS), wcs.map((w) => w.status).join());
  const received = wcs.filter((w) => w.opcode === WcOpcode.RECV);
  assert.equal(received.length, 2);
  for (const [qp, message] of [[b1, messages[0]], [b2, messages[1]]] as const) {
    const wc = received.find((w) => w.qpNum === qp.qpn);
    assert.ok(wc, `no receive completed on ${qp.qpn}`);
    assert.equal(wc.byteLength, message.length);
    const slot = Number(wc.wrId) - 100;
    assert.deepEqual(inbox.subarray(64 * slot, 64 * slot + message.length), message);
  }
});

Deno.test("an armed limit raises one SRQ_LIMIT_REACHED event", async () => {
  using lo = openLoopback();
  using srq = lo.pd.createSharedReceiveQueue({ maxWr: 16 });
  using inMr = lo.pd.registerMemory(new Uint8Array(4 * 64));
  for (let i = 0; i < 4; i++) {
    srq.postRecv({ wrId: i, sge: { mr: inMr, offset: 64 * i, length: 64 } });
  }
  using b = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, srq });
  using a = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  a.connect(b.localInfo());
  b.connect(a.localInfo());
  srq.armLimit(4);
  assert.equal(srq.query().limit, 4);
  const event = lo.ctx.waitAsyncEvent({ timeoutMs: 10_000 });
  using out = lo.pd.registerMemory(new Uint8Array(8));
  a.postSend({ wrId: 9, sge: { mr: out } }); // leaves 3 receives: fewer than 4
  await lo.completions(2);
  const ev = await event;
  assert.equal(ev?.typeName, "SRQ_LIMIT_REACHED");
  assert.equal(ev?.element, "srq");
  using other = lo.pd.createSharedReceiveQueue();
  assert.ok(srq.concerns(ev!), "the event names this queue");
  assert.ok(!other.concerns(ev!) && !lo.cq.concerns(ev!) && !b.concerns(ev!));
  assert.equal(srq.query().limit, 0, "disarmed once reported");
});

Deno.test("shared receive queues refuse misuse with typed errors", () => {
  using lo = openLoopback();
  using srq = lo.pd.createSharedReceiveQueue();
  using qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, srq });
  using mr = lo.pd.registerMemory(new Uint8Array(64));
  assert.throws(() => qp.postRecv({ sge: { mr } }), isRdmaError("EINVAL"));
  assert.throws(
    () => srq.close(),
    (e: unknown) => isRdmaError("EBUSY")(e) && /1 QueuePair/.test((e as Error).message),
  );
  using otherPd = lo.ctx.allocProtectionDomain();
  assert.throws(() => otherPd.createQueuePair({ type: "RC", sendCq: lo.cq, srq }), TypeError);
  assert.throws(
    () => lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq, srq: mr as never }),
    TypeError,
  );
  using foreign = otherPd.registerMemory(new Uint8Array(64));
  assert.throws(() => srq.postRecv({ sge: { mr: foreign } }), isRdmaError("EINVAL"));
  assert.throws(() => srq.postRecv({ sge: [{ mr }, { mr }] }), RangeError, "one sge by default");
  assert.throws(() => lo.pd.createSharedReceiveQueue({ maxWr: 0 }), RangeError);
  assert.throws(() => lo.pd.createQueuePair({ type: "UC", sendCq: lo.cq, srq }), TypeError);
  assert.throws(() => srq.armLimit(0), RangeError);
});
