// rxe suite: UC (unreliable connected) queue pairs connect, and carry RDMA WRITE and SEND.
import assert from "node:assert/strict";
import { Access, QpType, WcOpcode, WrOpcode } from "../../verbs/mod.ts";
import { assertAllSucceeded, firstDifference, openLoopback, pattern } from "./verbs_loopback.ts";

Deno.test("UC: connect, then an RDMA WRITE and a SEND land byte for byte", async () => {
  using lo = openLoopback("UC");
  assert.equal(lo.a.type, QpType.UC);
  const source = pattern(3000, 5);
  const target = new Uint8Array(3000);
  const inbox = new Uint8Array(3000);
  using src = lo.pd.registerMemory(source);
  using dst = lo.pd.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  using inMr = lo.pd.registerMemory(inbox, { access: Access.LOCAL_WRITE });
  lo.b.postRecv({ wrId: 1, sge: { mr: inMr } });
  lo.a.postSend({
    wrId: 2,
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  lo.a.postSend({ wrId: 3, opcode: WrOpcode.SEND, sge: { mr: src } });
  const wcs = await lo.completions(3);
  assertAllSucceeded(wcs);
  const recv = wcs.find((w) => w.wrId === 1n);
  assert.equal(recv?.opcode, WcOpcode.RECV);
  assert.equal(recv?.byteLength, source.length);
  assert.equal(firstDifference(target, source), -1);
  assert.equal(firstDifference(inbox, source), -1);
});
