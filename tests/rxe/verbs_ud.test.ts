// rxe suite: UD send and receive through an address handle, with the 40-byte GRH in front.
import assert from "node:assert/strict";
import { GRH_BYTES, QpType, RdmaError, WcFlags, WcOpcode } from "../../verbs/mod.ts";
import { assertAllSucceeded, firstDifference, openLoopback, pattern } from "./verbs_loopback.ts";

Deno.test("UD send and receive through an address handle", async () => {
  using lo = openLoopback("UD");
  assert.equal(lo.a.type, QpType.UD);
  const message = pattern(512, 3);
  const inbox = new Uint8Array(GRH_BYTES + 1024);
  using out = lo.pd.registerMemory(message);
  using inMr = lo.pd.registerMemory(inbox);
  const peer = lo.b.localInfo();
  // No gidIndex: the address handle takes the port's default (RoCE v2), as localInfo() does.
  using ah = lo.pd.createAddressHandle({ lid: peer.lid, gid: peer.gid });
  assert.equal(lo.ctx.defaultGidIndex(), peer.gidIndex);
  lo.b.postRecv({ wrId: 1, sge: { mr: inMr } });
  lo.a.postSend({ wrId: 2, sge: { mr: out }, ah, remoteQpn: peer.qpn });
  const wcs = await lo.completions(2);
  assertAllSucceeded(wcs);
  const recv = wcs.find((w) => w.wrId === 1n)!;
  assert.equal(recv.opcode, WcOpcode.RECV);
  assert.equal(recv.byteLength, GRH_BYTES + message.length);
  assert.equal(recv.srcQp, lo.a.qpn);
  assert.ok(recv.flags & WcFlags.GRH, "RoCE delivers a GRH");
  assert.equal(firstDifference(inbox.subarray(GRH_BYTES, GRH_BYTES + 512), message), -1);
});

Deno.test("UD sends need an address handle and a remote QPN; RDMA is refused", () => {
  using lo = openLoopback("UD");
  using mr = lo.pd.registerMemory(new Uint8Array(64));
  assert.throws(() => lo.a.postSend({ sge: { mr }, remoteQpn: lo.b.qpn }), TypeError);
  const peer = lo.b.localInfo();
  using ah = lo.pd.createAddressHandle({ gid: peer.gid, gidIndex: peer.gidIndex });
  assert.throws(() => lo.a.postSend({ sge: { mr }, ah }), TypeError);
  // Anything else with an `address` would reach the provider as a struct ibv_ah *.
  for (const fake of [mr, { address: 16n }]) {
    assert.throws(
      // @ts-expect-error: not an AddressHandle, on purpose
      () => lo.a.postSend({ sge: { mr }, ah: fake, remoteQpn: lo.b.qpn }),
      /UD sends need ah: an AddressHandle/,
    );
  }
  assert.throws(
    () => lo.a.postSend({ opcode: 0, sge: { mr }, ah, remoteAddress: 1, rkey: 1, remoteQpn: 1 }),
    RangeError,
  );
  assert.throws(() => lo.pd.createAddressHandle({}), TypeError);
  // An address handle of another protection domain is refused before it reaches the device.
  using otherPd = lo.ctx.allocProtectionDomain();
  using foreignAh = otherPd.createAddressHandle({ gid: peer.gid, gidIndex: peer.gidIndex });
  assert.throws(
    () => lo.a.postSend({ sge: { mr }, ah: foreignAh, remoteQpn: lo.b.qpn }),
    (e: unknown) =>
      e instanceof RdmaError && e.code === "EINVAL" && /protection domain/.test(e.message),
  );
});
