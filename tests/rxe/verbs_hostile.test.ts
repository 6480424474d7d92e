// rxe suite: every public entry point that runs user code (getters and Proxy traps of its request
// or options objects) re-checks what it uses after the last of it. A property-based search puts a
// sabotage (close a handle the call uses, detach or transfer a registered buffer, close and
// re-open) at each property access in turn; the only accepted outcome of a call whose sabotage ran
// is a typed error, and the queue pair it was posted on still works.
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import {
  Access,
  Errno,
  type MemoryRegion,
  openDevice,
  type ProtectionDomain,
  QpState,
  type QueuePair,
  RdmaError,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../verbs/mod.ts";
import { expectRefusedWhenFired, fc } from "../support/hostile.ts";
import { ALL_REMOTE, DEVICE, openLoopback } from "./verbs_loopback.ts";

const SIZE = 256;
const RUNS = 40;

/** A connected RC pair on `lo`'s queue, with inline room, and a region for each end. */
function freshPair(lo: ReturnType<typeof openLoopback>) {
  const options = { type: "RC", sendCq: lo.cq, maxInlineData: 64, maxSendSge: 2 } as const;
  const a = lo.pd.createQueuePair(options);
  const b = lo.pd.createQueuePair(options);
  a.connect(b.localInfo(), { access: ALL_REMOTE });
  b.connect(a.localInfo(), { access: ALL_REMOTE });
  const local = lo.pd.registerMemory(new Uint8Array(SIZE), { access: ALL_REMOTE });
  const remote = lo.pd.registerMemory(new Uint8Array(SIZE), { access: ALL_REMOTE });
  return {
    a,
    b,
    local,
    remote,
    close() {
      for (const h of [a, b, local, remote]) h.close();
    },
  };
}

type Sabotage = "close qp" | "close region" | "detach buffer" | "re-register";

function sabotage(kind: Sabotage, qp: QueuePair, mr: MemoryRegion, pd: ProtectionDomain) {
  return () => {
    switch (kind) {
      case "close qp":
        qp.close();
        break;
      case "close region":
        mr.close();
        break;
      case "detach buffer":
        (mr.bytes!.buffer as ArrayBuffer).transfer();
        break;
      case "re-register": // closed, and a new region over new memory takes its place
        mr.close();
        kept.push(pd.registerMemory(new Uint8Array(SIZE)));
        break;
    }
  };
}
const kept: MemoryRegion[] = [];
const SABOTAGES: Sabotage[] = ["close qp", "close region", "detach buffer", "re-register"];

/** The queue pair, if still open, is in RTS and completes an RDMA WRITE. */
async function assertStillWorks(
  lo: ReturnType<typeof openLoopback>,
  qp: QueuePair,
  rkey: number,
  address: bigint,
) {
  if (qp.closed) return;
  assert.equal(qp.state, QpState.RTS, "the refused post broke the queue pair");
  using mr = lo.pd.registerMemory(new Uint8Array(8));
  qp.postSend({ opcode: WrOpcode.RDMA_WRITE, wrId: 77, sge: { mr }, remoteAddress: address, rkey });
  const [wc] = await lo.completions(1);
  assert.equal(wc.status, WcStatus.SUCCESS);
  assert.equal(wc.wrId, 77n);
}

Deno.test("postSend and prepareSend: a getter that closes or detaches what the request uses is refused", async () => {
  using lo = openLoopback();
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 24 }),
      fc.constantFrom(...SABOTAGES),
      fc.constantFrom(WrOpcode.SEND, WrOpcode.RDMA_WRITE),
      fc.boolean(),
      fc.constantFrom("postSend", "prepareSend"),
      async (at, kind, opcode, inline, method) => {
        const p = freshPair(lo);
        try {
          if (opcode === WrOpcode.SEND) p.b.postRecv({ sge: { mr: p.remote } });
          let posted = false;
          const fired = await expectRefusedWhenFired(
            at,
            sabotage(kind, p.a, p.local, lo.pd),
            (wire) => {
              const wr = wire.arm({
                opcode,
                wrId: 5,
                sge: { mr: p.local, offset: 0, length: 32 },
                inline,
                signaled: true,
                remoteAddress: p.remote.address,
                rkey: p.remote.rkey,
              });
              if (method === "postSend") p.a.postSend(wr);
              else p.a.prepareSend(wr).post();
              posted = true;
            },
            `${method} ${kind}`,
          );
          if (posted) {
            const [wc] = await lo.completions(opcode === WrOpcode.SEND ? 2 : 1);
            assert.equal(wc.status, WcStatus.SUCCESS);
          }
          if (fired) await assertStillWorks(lo, p.a, p.remote.rkey, p.remote.address);
        } finally {
          if (!p.a.closed) p.a.toError();
          p.b.toError();
          while (lo.cq.poll(lo.wcs) > 0) { /* flushed requests */ }
          p.close();
          for (const mr of kept.splice(0)) mr.close();
        }
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("postRecv (queue pair and shared receive queue): a getter that closes or detaches is refused", async () => {
  using lo = openLoopback();
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 12 }),
      fc.constantFrom(...SABOTAGES),
      fc.boolean(),
      async (at, kind, shared) => {
        const p = freshPair(lo);
        using srq = lo.pd.createSharedReceiveQueue({ maxWr: 16 });
        try {
          const closeQueue = shared ? () => srq.close() : () => p.b.close();
          const inner = sabotage(kind, p.b, p.remote, lo.pd);
          const fired = await expectRefusedWhenFired(
            at,
            kind === "close qp" ? closeQueue : inner,
            (wire) => {
              const wr = wire.arm({ wrId: 9, sge: [{ mr: p.remote, length: 64 }] });
              if (shared) srq.postRecv(wr);
              else p.b.postRecv(wr);
            },
            `postRecv ${shared ? "srq" : "qp"} ${kind}`,
          );
          if (fired && !shared && !p.b.closed) assert.equal(p.b.state, QpState.RTS);
        } finally {
          p.a.toError();
          if (!p.b.closed) p.b.toError();
          while (lo.cq.poll(lo.wcs) > 0) { /* flushed requests */ }
          p.close();
          for (const mr of kept.splice(0)) mr.close();
        }
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("an inline send whose wrId getter transfers the registered buffer (and collects it) is EBADF", () => {
  using lo = openLoopback();
  const p = freshPair(lo);
  try {
    let buffer: ArrayBuffer | null = p.local.bytes!.buffer as ArrayBuffer;
    const wr = {
      opcode: WrOpcode.RDMA_WRITE,
      get wrId() {
        structuredClone(buffer, { transfer: [buffer!] });
        buffer = null;
        (globalThis as { gc?: () => void }).gc?.();
        return 1;
      },
      sge: { mr: p.local, length: 64 },
      inline: true,
      remoteAddress: p.remote.address,
      rkey: p.remote.rkey,
    };
    assert.ok(p.local.detached === false);
    assert.throws(
      () => p.a.postSend(wr),
      (e: unknown) => e instanceof RdmaError && e.errno === Errno.EBADF,
    );
    assert.equal(p.local.detached, true);
    assert.equal(p.a.state, QpState.RTS);
  } finally {
    p.close();
  }
});

Deno.test("factories and connection calls: an options getter that closes the parent or the queue pair is EBADF", async () => {
  using lo = openLoopback();
  const { gid, gidIndex } = lo.a.localInfo();
  const calls: [
    string,
    (wire: import("../support/hostile.ts").Tripwire, pd: ProtectionDomain) => unknown,
    (pd: ProtectionDomain, qp: QueuePair) => void,
  ][] = [
    [
      "registerMemory",
      (w, pd) =>
        pd.registerMemory(
          new Uint8Array(SIZE),
          w.arm({ access: Access.LOCAL_WRITE, offset: 0, length: 64 }),
        ),
      (pd) => pd.close(),
    ],
    [
      "createQueuePair",
      (w, pd) =>
        pd.createQueuePair(w.arm({ type: "RC", sendCq: lo.cq, maxSendWr: 4, maxRecvWr: 4 })),
      (pd) => pd.close(),
    ],
    [
      "createSharedReceiveQueue",
      (w, pd) => pd.createSharedReceiveQueue(w.arm({ maxWr: 4, maxSge: 1 })),
      (pd) => pd.close(),
    ],
    [
      "createAddressHandle",
      (w, pd) => pd.createAddressHandle(w.arm({ gid, gidIndex, port: 1 })),
      (pd) => pd.close(),
    ],
  ];
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 8 }), fc.nat({ max: calls.length - 1 }), async (at, which) => {
      const pd = lo.ctx.allocProtectionDomain();
      const [name, call, close] = calls[which];
      let made: { close(): void } | undefined;
      try {
        await expectRefusedWhenFired(at, () => close(pd, lo.a), (w) => {
          made = call(w, pd) as { close(): void };
        }, name);
      } finally {
        made?.close();
        pd.close();
      }
    }),
    { numRuns: RUNS },
  );
  // A context's factory, on a context of its own: a getter closes it.
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 4 }), async (at) => {
      const ctx = openDevice(DEVICE);
      let cq: { close(): void } | undefined;
      try {
        await expectRefusedWhenFired(at, () => ctx.close(), (w) => {
          cq = ctx.createCompletionQueue(w.arm({ entries: 4, channel: true, compVector: 0 }));
        }, "createCompletionQueue");
      } finally {
        cq?.close();
        ctx.close();
      }
    }),
    { numRuns: 12 },
  );
  // A cache's constructor: a getter closes the domain.
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 4 }), async (at) => {
      const pd = lo.ctx.allocProtectionDomain();
      let cache: { close(): void } | undefined;
      try {
        await expectRefusedWhenFired(at, () => pd.close(), (w) => {
          cache = new RegistrationCache(
            pd,
            w.arm({ maxRegions: 8, maxBytes: 1 << 20, merge: true }),
          );
        }, "new RegistrationCache");
      } finally {
        cache?.close();
        pd.close();
      }
    }),
    { numRuns: 12 },
  );
  // The queue pair's own calls: localInfo and connect, with a getter that closes it.
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 12 }), fc.boolean(), async (at, connect) => {
      const qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
      try {
        await expectRefusedWhenFired(at, () => qp.close(), (w) => {
          if (connect) {
            qp.connect(
              w.arm({ ...lo.b.localInfo() }),
              w.arm({ access: Access.LOCAL_WRITE, timeout: 14 }),
            );
          } else qp.localInfo(w.arm({ port: 1, maxDestRdAtomic: 1 }));
        }, connect ? "connect" : "localInfo");
      } finally {
        qp.close();
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("waits: an options getter that closes the queue is EBADF; timeoutMs is checked the same everywhere", async () => {
  using lo = openLoopback();
  for (const method of ["wait", "pollOrWait"] as const) {
    const cq = lo.ctx.createCompletionQueue({ entries: 4, channel: true });
    const wcs = new WorkCompletions(4);
    await expectRefusedWhenFired(0, () => cq.close(), (w) => {
      const options = w.arm({ timeoutMs: 0 });
      return method === "wait" ? cq.wait(options) : cq.pollOrWait(wcs, options);
    }, method);
    cq.close();
  }
  for (const bad of [null, "5", -1, NaN]) {
    const isTyped = (e: unknown) => e instanceof TypeError || e instanceof RangeError;
    await assert.rejects(lo.cq.wait({ timeoutMs: bad as number }), isTyped, `wait ${bad}`);
    await assert.rejects(
      lo.cq.pollOrWait(lo.wcs, { timeoutMs: bad as number }),
      isTyped,
      `pollOrWait ${bad}`,
    );
    await assert.rejects(
      lo.ctx.waitAsyncEvent({ timeoutMs: bad as number }),
      isTyped,
      `waitAsyncEvent ${bad}`,
    );
  }
  assert.equal(await lo.cq.pollOrWait(lo.wcs, { timeoutMs: 0 }), 0);
});

Deno.test("localInfo on a closed queue pair is EBADF", () => {
  using lo = openLoopback();
  const qp = lo.pd.createQueuePair({ type: "RC", sendCq: lo.cq });
  qp.close();
  assert.throws(
    () => qp.localInfo(),
    (e: unknown) => e instanceof RdmaError && e.errno === Errno.EBADF,
  );
});

Deno.test("RegistrationCache.get on a real domain: a target getter that closes the cache and opens another is EBADF", async () => {
  using lo = openLoopback();
  const block = new Uint8Array(4096);
  using anchor = lo.pd.registerMemory(block); // the address of real memory
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 4 }), async (at) => {
      const a = new RegistrationCache(lo.pd);
      let b: RegistrationCache | null = null;
      try {
        const fired = await expectRefusedWhenFired(
          at,
          () => {
            a.close();
            b = new RegistrationCache(lo.pd);
          },
          (w) => a.get(w.arm({ address: anchor.address, length: 4096 })).release(),
          "cache get",
        );
        if (fired) assert.equal((b as RegistrationCache | null)?.stats().inUse, 0);
      } finally {
        a.close();
        (b as RegistrationCache | null)?.close();
      }
    }),
    { numRuns: 12 },
  );
});

Deno.test("a released cached registration cannot be posted", () => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd);
  const p = freshPair(lo);
  try {
    const buffer = new Uint8Array(64);
    const reg = cache.get(buffer);
    const wr = {
      opcode: WrOpcode.RDMA_WRITE,
      get wrId() {
        reg.release();
        return 3;
      },
      sge: reg,
      inline: true,
      remoteAddress: p.remote.address,
      rkey: p.remote.rkey,
    };
    assert.throws(
      () => p.a.postSend(wr),
      (e: unknown) => e instanceof RdmaError && e.errno === Errno.EBADF,
    );
    assert.throws(
      () => p.a.postSend({ ...wr, wrId: 4 }),
      (e: unknown) => e instanceof RdmaError && e.errno === Errno.EBADF,
    );
  } finally {
    p.close();
  }
});
