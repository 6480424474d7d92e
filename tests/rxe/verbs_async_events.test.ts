// rxe suite: a device's asynchronous events. A port taken down and up again (on an rxe device and
// veth pair of the test's own, so no other test's links change) is reported as PORT_ERR, then
// PORT_ACTIVE; a wait times out with null, refuses a second waiter, and ends with EBADF on close.
import assert from "node:assert/strict";
import { type Context, openDevice, PortState, RdmaError } from "../../mod.ts";
import { DEVICE } from "./verbs_loopback.ts";

const LINK = "vethEv0", PEER = "vethEv1", RXE = "rxeEv";

async function run(command: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command(command, { args, stdin: "null" }).output();
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

async function portState(ctx: Context, state: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (ctx.queryPort(1).state !== state) {
    assert.ok(performance.now() < deadline, `port never reached state ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("a port going down and up: PORT_ERR, then PORT_ACTIVE", async () => {
  await run("ip", "link", "add", LINK, "type", "veth", "peer", "name", PEER);
  try {
    await run("ip", "link", "set", PEER, "up");
    await run("ip", "link", "set", LINK, "up");
    await run("rdma", "link", "add", RXE, "type", "rxe", "netdev", LINK);
    try {
      const ctx = openDevice(RXE);
      try {
        await portState(ctx, PortState.ACTIVE);
        const down = ctx.waitAsyncEvent({ timeoutMs: 10_000 });
        await run("ip", "link", "set", LINK, "down");
        assert.deepEqual(await down, { type: 10, typeName: "PORT_ERR", element: "port", port: 1 });
        const up = ctx.waitAsyncEvent({ timeoutMs: 10_000 });
        await run("ip", "link", "set", LINK, "up");
        assert.deepEqual(await up, { type: 9, typeName: "PORT_ACTIVE", element: "port", port: 1 });
      } finally {
        ctx.close();
      }
    } finally {
      await run("rdma", "link", "delete", RXE);
    }
  } finally {
    await run("ip", "link", "delete", LINK);
  }
});

Deno.test("waitAsyncEvent: null on timeout, one waiter at a time, EBADF when the context closes", async () => {
  const ctx = openDevice(DEVICE);
  assert.equal(await ctx.waitAsyncEvent({ timeoutMs: 50 }), null);
  await assert.rejects(() => ctx.waitAsyncEvent({ timeoutMs: -1 }), RangeError);
  const waiting = ctx.waitAsyncEvent();
  await assert.rejects(
    () => ctx.waitAsyncEvent({ timeoutMs: 10 }),
    (e: unknown) => e instanceof RdmaError && e.code === "EBUSY",
  );
  ctx.close();
  await assert.rejects(waiting, (e: unknown) => e instanceof RdmaError && e.code === "EBADF");
  assert.equal(ctx.closed, true);
});
