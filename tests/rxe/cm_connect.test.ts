// rxe suite: the connection manager between the guest's two "hosts" (rxeA at 10.10.0.1, rxeB at
// 10.10.0.2): listen, connect by IP address, SEND and RDMA WRITE over the connection, disconnect
// from either side; a timer keeps ticking while a connect waits.
import assert from "node:assert/strict";
import {
  Access,
  type CmConnection,
  connect,
  listen,
  WcOpcode,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../mod.ts";

const hostA = Deno.env.get("DENO_RDMA_HOST_A") ?? "10.10.0.1";
const hostB = Deno.env.get("DENO_RDMA_HOST_B") ?? "10.10.0.2";

/** The next completion of `conn`, checked successful. */
async function completion(conn: CmConnection, wcs = new WorkCompletions(1)) {
  const n = await conn.cq.pollOrWait(wcs, { timeoutMs: 10_000 });
  assert.equal(n, 1, "a completion within 10 s");
  const wc = wcs.get(0);
  assert.equal(wc.status, WcStatus.SUCCESS, `completion status ${wc.status}`);
  return wc;
}

Deno.test("connect by IP, SEND and RDMA WRITE, peer sees the disconnect", async () => {
  using listener = listen({ host: hostB, port: 0 });
  assert.ok(listener.port > 0);
  assert.equal(listener.host, hostB);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const accepted = listener.accept({ timeoutMs: 20_000 });
  const hello = new TextEncoder().encode("hello from A");
  using client = await connect({
    host: hostB,
    port: listener.port,
    source: hostA,
    privateData: hello,
    timeoutMs: 20_000,
  });
  using server = await accepted;
  clearInterval(timer);
  assert.ok(ticks > 0, "the event loop ran while connecting");
  assert.equal(client.remoteAddress, hostB);
  assert.equal(client.localAddress, hostA);
  assert.equal(server.remoteAddress, hostA);
  assert.equal(server.remotePort, client.localPort);
  assert.deepEqual(server.privateData.subarray(0, hello.length), hello);
  assert.equal(client.context.deviceName, Deno.env.get("DENO_RDMA_DEVICE_A") ?? "rxeA");
  assert.equal(server.context.deviceName, Deno.env.get("DENO_RDMA_DEVICE_B") ?? "rxeB");

  // SEND from the client into a receive the server posted.
  const inbox = new Uint8Array(64);
  using inboxMr = server.pd.registerMemory(inbox);
  server.qp.postRecv({ wrId: 7n, sge: { mr: inboxMr } });
  const message = new TextEncoder().encode("ping over the CM");
  using messageMr = client.pd.registerMemory(message);
  client.qp.postSend({ opcode: WrOpcode.SEND, sge: { mr: messageMr } });
  assert.equal((await completion(client)).opcode, WcOpcode.SEND);
  const recv = await completion(server);
  assert.equal(recv.opcode, WcOpcode.RECV);
  assert.equal(recv.byteLength, message.length);
  assert.deepEqual(inbox.subarray(0, message.length), message);

  // RDMA WRITE from the server into a buffer the client exposes.
  const target = new Uint8Array(4096);
  using targetMr = client.pd.registerMemory(target, {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  const source = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  using sourceMr = server.pd.registerMemory(source);
  server.qp.postSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: sourceMr },
    remoteAddress: targetMr.address,
    rkey: targetMr.rkey,
  });
  assert.equal((await completion(server)).opcode, WcOpcode.RDMA_WRITE);
  assert.deepEqual(target, source);

  // The client disconnects; the server's `closed` says the peer did.
  const serverClosed = server.closed;
  client.disconnect();
  assert.equal(await client.closed, "local");
  assert.equal(await serverClosed, "peer");
});

Deno.test("the listener's side disconnects first", async () => {
  using listener = listen({ host: hostB, port: 0 });
  const accepted = listener.accept({ timeoutMs: 20_000 });
  using client = await connect({ host: hostB, port: listener.port, source: hostA });
  using server = await accepted;
  const clientClosed = client.closed;
  server.close();
  assert.equal(await clientClosed, "peer");
  assert.equal(await server.closed, "local");
});
