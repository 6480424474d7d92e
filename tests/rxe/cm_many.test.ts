// rxe suite: many connections through one listener, 200 in sequence and 16 at once, each
// checked with a SEND; afterwards the process has the file descriptors it had before.
import assert from "node:assert/strict";
import {
  type CmConnection,
  connect,
  listen,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../mod.ts";

const hostA = Deno.env.get("DENO_RDMA_HOST_A") ?? "10.10.0.1";
const hostB = Deno.env.get("DENO_RDMA_HOST_B") ?? "10.10.0.2";

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

/** A SEND of `n` (4 bytes) from `from` into a receive `to` posted. */
async function exchange(from: CmConnection, to: CmConnection, n: number) {
  const inbox = new Uint8Array(4);
  using inMr = to.pd.registerMemory(inbox);
  to.qp.postRecv({ sge: { mr: inMr } });
  const out = new Uint8Array(new Uint32Array([n]).buffer);
  using outMr = from.pd.registerMemory(out);
  from.qp.postSend({ opcode: WrOpcode.SEND, sge: { mr: outMr } });
  const wcs = new WorkCompletions(1);
  for (const conn of [from, to]) {
    assert.equal(await conn.cq.pollOrWait(wcs, { timeoutMs: 10_000 }), 1);
    assert.equal(wcs.status(0), WcStatus.SUCCESS);
  }
  assert.equal(new Uint32Array(inbox.buffer)[0], n);
}

/** Connects `count` clients, `parallel` at a time, to a listener that accepts in a loop. */
async function run(count: number, parallel: number) {
  using listener = listen({ host: hostB, port: 0, backlog: 32 });
  const accepted: CmConnection[] = [];
  const serving = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  for (let done = 0; done < count; done += parallel) {
    const clients = await Promise.all(
      Array.from(
        { length: Math.min(parallel, count - done) },
        () => connect({ host: hostB, port: listener.port, source: hostA, timeoutMs: 30_000 }),
      ),
    );
    while (accepted.length < clients.length) await new Promise((r) => setTimeout(r, 5));
    const servers = accepted.splice(0);
    for (const server of servers) {
      const client = clients.find((c) => c.localPort === server.remotePort);
      assert.ok(client !== undefined, "each accepted connection is one of the clients");
      await exchange(client, server, done + clients.indexOf(client));
    }
    for (const c of [...clients, ...servers]) c.close();
  }
  listener.close();
  await serving;
  assert.equal(listener.failedAccepts, 0, String(listener.lastAcceptError));
}

Deno.test("200 connections in sequence, then 16 at once, leave no file descriptors", async () => {
  await run(1, 1); // the first use opens librdmacm's device contexts, which stay
  const before = openFds();
  await run(200, 1);
  assert.equal(openFds(), before, "after 200 in sequence");
  await run(16, 16);
  assert.equal(openFds(), before, "after 16 at once");
});
