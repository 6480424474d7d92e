// rxe suite: RC RDMA WRITE between the two ends of the guest's veth pair (two devices, as two
// hosts would be), using only connection info exchanged as plain JSON.
import assert from "node:assert/strict";
import {
  Access,
  type ConnectionInfo,
  GRH_BYTES,
  type LocalInfo,
  openDevice,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../verbs/mod.ts";
import { firstDifference, pattern } from "./verbs_loopback.ts";

const deviceA = Deno.env.get("DENO_RDMA_DEVICE_A") ?? "rxeA";
const deviceB = Deno.env.get("DENO_RDMA_DEVICE_B") ?? "rxeB";

/** One end: a device, its protection domain and completion queue, and a queue pair of `type`. */
function openEnd(device: string, type: "RC" | "UD") {
  const ctx = openDevice(device);
  const pd = ctx.allocProtectionDomain();
  const cq = ctx.createCompletionQueue({ channel: true });
  const qp = pd.createQueuePair({ type, sendCq: cq });
  return {
    ctx,
    pd,
    cq,
    qp,
    [Symbol.dispose]() {
      qp.close();
      cq.close();
      pd.close();
      ctx.close();
    },
  };
}

/** Round-trips through JSON, as connection info sent over a socket would: nothing to convert. */
function overTheWire(info: LocalInfo): ConnectionInfo {
  return JSON.parse(JSON.stringify(info));
}

Deno.test("RC RDMA WRITE from rxeA to rxeB across the veth pair", async () => {
  using a = openEnd(deviceA, "RC");
  using b = openEnd(deviceB, "RC");
  const { pd: pdA, cq: cqA, qp: qpA } = a;
  const { pd: pdB, qp: qpB } = b;
  const infoA = qpA.localInfo();
  const infoB = qpB.localInfo();
  assert.notDeepEqual(infoA.gid, infoB.gid);
  qpA.connect(overTheWire(infoB));
  qpB.connect(overTheWire(infoA), { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });

  const source = pattern(256 * 1024, 5);
  const target = new Uint8Array(source.length);
  using src = pdA.registerMemory(source);
  using dst = pdB.registerMemory(target, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  qpA.postSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: src },
    remoteAddress: dst.address,
    rkey: dst.rkey,
  });
  const wcs = new WorkCompletions(1);
  assert.equal(await cqA.pollOrWait(wcs, { timeoutMs: 10_000 }), 1);
  assert.equal(wcs.status(0), WcStatus.SUCCESS);
  assert.equal(firstDifference(target, source), -1);
});

Deno.test("UD to a link-local GID: the address handle picks a link-local source by itself", async () => {
  using a = openEnd(deviceA, "UD");
  using b = openEnd(deviceB, "UD");
  const { pd: pdA, qp: qpA } = a;
  const { ctx: ctxB, pd: pdB, cq: cqB, qp: qpB } = b;
  qpA.connect();
  qpB.connect();
  const linkLocalB = ctxB.gidTable(1).find((e) => e.type === "roce-v2" && e.gid[0] === 0xfe);
  assert.ok(linkLocalB, "rxeB has a link-local RoCE v2 GID");
  // No gidIndex: an IPv4 source (the port's default) with this destination is refused (EINVAL).
  using ah = pdA.createAddressHandle({ gid: linkLocalB.gid });
  const inbox = new Uint8Array(GRH_BYTES + 64);
  using inMr = pdB.registerMemory(inbox);
  qpB.postRecv({ wrId: 1, sge: { mr: inMr } });
  using out = pdA.registerMemory(pattern(64, 3));
  qpA.postSend({ wrId: 2, sge: { mr: out }, ah, remoteQpn: qpB.qpn });
  const wcs = new WorkCompletions(1);
  assert.equal(await cqB.pollOrWait(wcs, { timeoutMs: 10_000 }), 1);
  assert.equal(wcs.status(0), WcStatus.SUCCESS);
  assert.equal(firstDifference(inbox.subarray(GRH_BYTES), pattern(64, 3)), -1);
});
