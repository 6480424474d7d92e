// rxe suite: UD through the connection manager: an endpoint on rxeA finds one on rxeB by IP
// address and port (the CM's SIDR exchange) and sends to it; both join an IP multicast group,
// one sends to the group and the other receives, then both leave.
import assert from "node:assert/strict";
import {
  GRH_BYTES,
  openUdEndpoint,
  RdmaError,
  type UdEndpoint,
  WcOpcode,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../mod.ts";

const hostA = Deno.env.get("DENO_RDMA_HOST_A") ?? "10.10.0.1";
const hostB = Deno.env.get("DENO_RDMA_HOST_B") ?? "10.10.0.2";

/** The next completion of `endpoint`, checked successful. */
async function completion(endpoint: UdEndpoint) {
  const wcs = new WorkCompletions(1);
  assert.equal(await endpoint.cq.pollOrWait(wcs, { timeoutMs: 10_000 }), 1, "a completion");
  const wc = wcs.get(0);
  assert.equal(wc.status, WcStatus.SUCCESS, `status ${wc.status}`);
  return wc;
}

Deno.test("a UD send to an endpoint resolved by address and port", async () => {
  using b = openUdEndpoint({ host: hostB, port: 0, listen: true });
  using a = openUdEndpoint({ host: hostA });
  assert.ok(b.port > 0);
  const inbox = new Uint8Array(GRH_BYTES + 64);
  using inboxMr = b.pd.registerMemory(inbox);
  b.qp.postRecv({ sge: { mr: inboxMr } });
  const answered = b.answer({ timeoutMs: 20_000 });
  const destination = await a.resolve({
    host: hostB,
    port: b.port,
    privateData: new TextEncoder().encode("who"),
    timeoutMs: 20_000,
  });
  const request = await answered;
  assert.equal(request.remoteAddress, hostA);
  assert.equal(new TextDecoder().decode(request.privateData.subarray(0, 3)), "who");
  assert.equal(destination.remoteQpn, b.qp.qpn);
  const message = new TextEncoder().encode("datagram via the CM");
  using messageMr = a.pd.registerMemory(message);
  a.qp.postSend({ opcode: WrOpcode.SEND, sge: { mr: messageMr }, ...destination });
  assert.equal((await completion(a)).opcode, WcOpcode.SEND);
  const recv = await completion(b);
  assert.equal(recv.byteLength, GRH_BYTES + message.length);
  assert.deepEqual(inbox.subarray(GRH_BYTES, GRH_BYTES + message.length), message);
});

Deno.test("resolving a UD port nobody listens on is refused", async () => {
  using a = openUdEndpoint({ host: hostA });
  await assert.rejects(
    a.resolve({ host: hostB, port: 17390, timeoutMs: 10_000 }),
    (e) => e instanceof RdmaError && e.verb === "rdma_connect",
  );
});

Deno.test("multicast: join, send to the group, receive, leave", async () => {
  const group = "239.1.2.3";
  using a = openUdEndpoint({ host: hostA });
  using b = openUdEndpoint({ host: hostB });
  const toGroupFromA = await a.join(group);
  await b.join(group);
  assert.equal(toGroupFromA.remoteQpn, 0xffffff);
  const inbox = new Uint8Array(GRH_BYTES + 64);
  using inboxMr = b.pd.registerMemory(inbox);
  b.qp.postRecv({ sge: { mr: inboxMr } });
  const message = new TextEncoder().encode("to the group");
  using messageMr = a.pd.registerMemory(message);
  a.qp.postSend({ opcode: WrOpcode.SEND, sge: { mr: messageMr }, ...toGroupFromA });
  assert.equal((await completion(a)).opcode, WcOpcode.SEND);
  assert.equal((await completion(b)).byteLength, GRH_BYTES + message.length);
  assert.deepEqual(inbox.subarray(GRH_BYTES, GRH_BYTES + message.length), message);
  a.leave(group);
  b.leave(group);
  assert.throws(() => a.leave(group), RdmaError);
});
