// rxe suite: the connection manager's failure modes, each ending in its typed error within its
// time limit: no listener (REJECTED), an address nothing answers (ADDR_ERROR) or no route to, a
// request nobody answers (ETIMEDOUT), a rejection with private data, a listener closed with
// requests pending, a connection closed with posts outstanding, and misuse.
import assert from "node:assert/strict";
import { CmErrno, CmEventError, connect, Errno, listen, RdmaError } from "../../mod.ts";

const hostA = Deno.env.get("DENO_RDMA_HOST_A") ?? "10.10.0.1";
const hostB = Deno.env.get("DENO_RDMA_HOST_B") ?? "10.10.0.2";

/** `promise`'s rejection, which must come within `limitMs`. */
async function rejection(promise: Promise<unknown>, limitMs: number): Promise<unknown> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs);
  });
  try {
    await Promise.race([promise, late]);
  } catch (error) {
    assert.ok(performance.now() - started < limitMs);
    return error;
  } finally {
    clearTimeout(timer);
  }
  assert.fail("it resolved");
}

Deno.test("no listener on the port: REJECTED, ECONNREFUSED", async () => {
  const error = await rejection(connect({ host: hostB, port: 17399, source: hostA }), 10_000);
  assert.ok(error instanceof CmEventError, String(error));
  assert.equal(error.event, "REJECTED");
  assert.equal(error.errno, CmErrno.ECONNREFUSED);
  assert.equal(error.code, "ECONNREFUSED");
  assert.equal(error.verb, "rdma_connect");
});

Deno.test("an address nobody answers: ADDR_ERROR within the resolve time", async () => {
  const error = await rejection(
    connect({ host: "10.10.0.99", port: 17398, source: hostA, timeoutMs: 8000 }),
    9000,
  );
  assert.ok(error instanceof RdmaError, String(error));
  assert.equal(error.verb, "rdma_resolve_addr");
  if (error instanceof CmEventError) assert.equal(error.event, "ADDR_ERROR");
  else assert.equal(error.errno, Errno.ETIMEDOUT);
});

Deno.test("an address without a route: rdma_resolve_addr fails", async () => {
  const error = await rejection(connect({ host: "192.0.2.1", port: 17397, timeoutMs: 8000 }), 9000);
  assert.ok(error instanceof RdmaError, String(error));
  assert.equal(error.verb, "rdma_resolve_addr");
});

Deno.test("a request nobody answers: ETIMEDOUT after timeoutMs", async () => {
  using listener = listen({ host: hostB, port: 0 });
  const request = listener.nextRequest({ timeoutMs: 10_000 });
  const error = await rejection(
    connect({ host: hostB, port: listener.port, source: hostA, timeoutMs: 3000 }),
    6000,
  );
  assert.ok(error instanceof RdmaError);
  assert.equal(error.errno, Errno.ETIMEDOUT);
  assert.equal(error.verb, "rdma_connect");
  assert.ok((await request) !== null, "the listener saw the request");
});

Deno.test("rejected with private data: the caller reads it", async () => {
  using listener = listen({ host: hostB, port: 0 });
  const answered = (async () => {
    const request = await listener.nextRequest({ timeoutMs: 10_000 });
    assert.ok(request !== null);
    assert.equal(new TextDecoder().decode(request.privateData.subarray(0, 5)), "knock");
    request.reject(new TextEncoder().encode("go away"));
    assert.throws(
      () => request.reject(),
      (e) => e instanceof RdmaError && e.errno === Errno.EINVAL,
    );
  })();
  const error = await rejection(
    connect({
      host: hostB,
      port: listener.port,
      source: hostA,
      privateData: new TextEncoder().encode("knock"),
    }),
    10_000,
  );
  await answered;
  assert.ok(error instanceof CmEventError, String(error));
  assert.equal(error.event, "REJECTED");
  assert.equal(error.status, 28, "IB_CM_REJ_CONSUMER_DEFINED");
  assert.equal(new TextDecoder().decode(error.privateData.subarray(0, 7)), "go away");
});

Deno.test("closing a listener with a request pending rejects it, and ends a pending accept", async () => {
  const listener = listen({ host: hostB, port: 0 });
  const request = await (async () => {
    // Its rejection is awaited below, handled from the start.
    const connecting = rejection(
      connect({ host: hostB, port: listener.port, source: hostA }),
      10_000,
    );
    const request = await listener.nextRequest({ timeoutMs: 10_000 });
    assert.ok(request !== null);
    const pendingAccept = listener.accept();
    listener.close();
    const closedError = await rejection(pendingAccept, 2000);
    assert.ok(closedError instanceof RdmaError && closedError.errno === Errno.EBADF);
    return connecting;
  })();
  assert.ok(request instanceof CmEventError, String(request));
  assert.equal(request.event, "REJECTED");
  await assert.rejects(listener.nextRequest(), RdmaError);
  listener.close(); // idempotent
});

Deno.test("closing a connection with posts outstanding: a pending wait ends with EBADF", async () => {
  using listener = listen({ host: hostB, port: 0 });
  const accepted = listener.accept({ timeoutMs: 10_000 });
  const client = await connect({ host: hostB, port: listener.port, source: hostA });
  using server = await accepted;
  const buffer = new Uint8Array(256);
  const mr = client.pd.registerMemory(buffer);
  for (let i = 0; i < 8; i++) client.qp.postRecv({ wrId: BigInt(i), sge: { mr } });
  // The queue pair is the connection's: it refuses to close on its own.
  assert.throws(() => client.qp.close(), (e) => e instanceof RdmaError && e.errno === Errno.EBUSY);
  const waiting = client.cq.wait({ timeoutMs: 10_000 });
  client.close();
  const error = await rejection(waiting, 2000);
  assert.ok(error instanceof RdmaError && error.errno === Errno.EBADF, String(error));
  assert.throws(
    () => client.disconnect(),
    (e) => e instanceof RdmaError && e.errno === Errno.EBADF,
  );
  assert.throws(() => client.qp.postRecv({ sge: { mr } }), RdmaError);
  mr.close(); // the connection's protection domain goes with its last region
  assert.ok(client.pd.closed);
  assert.equal(await server.closed, "peer");
});

Deno.test("wrong arguments are TypeError or RangeError before anything is created", async () => {
  // deno-lint-ignore no-explicit-any
  const bad = (options: any) => connect(options);
  await assert.rejects(bad({ host: 5, port: 1 }), TypeError);
  await assert.rejects(bad({ host: hostB }), TypeError);
  await assert.rejects(bad({ host: hostB, port: 70000 }), RangeError);
  await assert.rejects(bad({ host: hostB, port: 1, privateData: new Uint8Array(300) }), RangeError);
  await assert.rejects(bad({ host: hostB, port: 1, privateData: "x" }), TypeError);
  await assert.rejects(bad({ host: hostB, port: 1, timeoutMs: NaN }), RangeError);
  await assert.rejects(bad({ host: hostB, port: 1, qp: { maxSendWr: -1 } }), RangeError);
  await assert.rejects(bad({ host: hostB, port: 1, pd: {} }), TypeError);
  assert.throws(() => listen({ port: -1 }), RangeError);
  using everywhere = listen({ port: 0 });
  assert.equal(everywhere.host, "0.0.0.0");
  assert.ok(everywhere.port > 0);
  using first = listen({ host: hostB, port: 0 });
  assert.throws(
    () => listen({ host: hostB, port: first.port }),
    (e) => e instanceof RdmaError && e.verb === "rdma_listen" && e.code === "EADDRINUSE",
  );
});

Deno.test("a pd closed while connect runs (by a getter, or by closing its connection while the address resolves): EBADF, nothing left behind", async () => {
  using listener = listen({ host: hostB, port: 0 });
  const opened = async () => {
    const accepted = listener.accept({ timeoutMs: 20_000 });
    const conn = await connect({ host: hostB, port: listener.port, source: hostA });
    return { conn, server: await accepted };
  };
  const first = await opened();
  const resolving = connect({
    host: hostB,
    port: listener.port,
    source: hostA,
    pd: first.conn.pd,
    timeoutMs: 20_000,
  });
  first.conn.close(); // its pd goes with it, while the second connect resolves the address
  first.server.close();
  const error = await rejection(resolving, 20_000);
  assert.ok(error instanceof RdmaError, String(error));
  assert.equal(error.code, "EBADF");

  const second = await opened();
  const hostile = {
    host: hostB,
    port: listener.port,
    source: hostA,
    pd: second.conn.pd,
    get timeoutMs() {
      second.conn.close(); // user code closes the pd after it was handed over
      second.server.close();
      return 20_000;
    },
  };
  const closedByGetter = await rejection(connect(hostile), 20_000);
  assert.ok(closedByGetter instanceof RdmaError, String(closedByGetter));
  assert.equal(closedByGetter.code, "EBADF");

  // The listener and the device are still fine: a plain connection works.
  const third = await opened();
  assert.equal(third.conn.open, true);
  third.conn.close();
  third.server.close();
});
