// Shared set-up for the rxe suite: a device, a protection domain, a completion queue and two RC
// queue pairs connected to each other in loopback.
import {
  Access,
  type CompletionQueue,
  type Context,
  openDevice,
  type ProtectionDomain,
  type QueuePair,
  type ScatterGather,
  WcStatus,
  wcStatusName,
  WorkCompletions,
  WrOpcode,
} from "../../verbs/mod.ts";

/** The device the suite runs on (the guest's loopback rxe0 unless told otherwise). */
export const DEVICE = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";

/** Everything remote peers may do, for queue pairs whose regions decide access themselves. */
export const ALL_REMOTE = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ |
  Access.REMOTE_ATOMIC;

export interface Loopback extends Disposable {
  ctx: Context;
  pd: ProtectionDomain;
  cq: CompletionQueue;
  a: QueuePair;
  b: QueuePair;
  wcs: WorkCompletions;
  /** Polls (waiting on the channel) until `n` completions arrived; throws on timeout. */
  completions(n: number, timeoutMs?: number): Promise<ReturnType<WorkCompletions["get"]>[]>;
}

export function openLoopback(type: "RC" | "UC" | "UD" = "RC"): Loopback {
  const ctx = openDevice(DEVICE);
  const pd = ctx.allocProtectionDomain();
  const cq = ctx.createCompletionQueue({ entries: 256, channel: true });
  const a = pd.createQueuePair({ type, sendCq: cq, maxSendSge: 4, maxRecvSge: 4 });
  const b = pd.createQueuePair({ type, sendCq: cq, maxSendSge: 4, maxRecvSge: 4 });
  if (type === "UD") {
    a.connect();
    b.connect();
  } else {
    // UC has no remote reads or atomics: its peers may only write.
    const access = type === "UC" ? Access.LOCAL_WRITE | Access.REMOTE_WRITE : ALL_REMOTE;
    a.connect(b.localInfo(), { access });
    b.connect(a.localInfo(), { access });
  }
  const wcs = new WorkCompletions(16);
  return {
    ctx,
    pd,
    cq,
    a,
    b,
    wcs,
    async completions(n, timeoutMs = 10_000) {
      const out = [];
      const deadline = performance.now() + timeoutMs;
      while (out.length < n) {
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`only ${out.length} of ${n} completions arrived`);
        const got = await cq.pollOrWait(wcs, { timeoutMs: left });
        for (let i = 0; i < got; i++) out.push(wcs.get(i));
      }
      return out;
    },
    [Symbol.dispose]() {
      a.close();
      b.close();
      cq.close();
      pd.close();
      ctx.close();
    },
  };
}

/** One signaled RDMA WRITE of `sge` from `lo.a` to `to` (address, rkey); waits for it to succeed. */
export async function writeAndWait(
  lo: Loopback,
  sge: ScatterGather,
  to: { address: bigint; rkey: number },
  wrId: number,
): Promise<void> {
  lo.a.postSend({
    wrId,
    opcode: WrOpcode.RDMA_WRITE,
    sge,
    remoteAddress: to.address,
    rkey: to.rkey,
    signaled: true,
  });
  assertAllSucceeded(await lo.completions(1));
}

/** Throws unless every completion succeeded, naming the failed status. */
export function assertAllSucceeded(wcs: { status: number; wrId: bigint }[]): void {
  for (const wc of wcs) {
    if (wc.status !== WcStatus.SUCCESS) {
      throw new Error(`work request ${wc.wrId} completed with ${wcStatusName(wc.status)}`);
    }
  }
}

/** A deterministic pattern that differs at every byte position mod 251. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
