/**
 * RDMA WRITE latency, with perftest's main flags and result table (compare with `ib_write_lat`).
 *
 *     deno run -A examples/write_lat.ts [options]          # server
 *     deno run -A examples/write_lat.ts [options] <host>   # client
 *
 * A ping-pong of RDMA WRITEs: each end writes its message into the other's buffer, whose last byte
 * carries the iteration number, and busy-polls the last byte of its own buffer for the peer's
 * write. Latency is half the time between consecutive posts (RTT/2), as perftest reports it, over
 * the iterations after 1000 unmeasured warm-up round trips (V8 compiles the data path meanwhile).
 * At the end each end checks every byte of the peer's last message and exits 1 on a mismatch.
 *
 * @module
 */
import { WorkCompletions, WrOpcode } from "../mod.ts";
import { parsePerftestArgs } from "./lib/perftest_flags.ts";
import { banner, latencyStatistics, latencyTable, RULE } from "./lib/perftest_report.ts";
import { fillPattern, openSession, patternMismatch, type Session } from "./lib/perftest_session.ts";
import { runMain } from "./lib/run_main.ts";

const USAGE = "write_lat.ts [options] [host]   (start the server without <host>)";
/** One message is in flight at a time (perftest's TX depth for latency). */
const TX_DEPTH = 1;
/**
 * Every write asks for a completion, as perftest's do: on rxe an unsignaled write asks for no
 * acknowledgement, and runs of them made round trips several times slower. Completions are reaped
 * without waiting, once per round trip; the send queue has room for a few not yet reaped.
 */
const SEND_QUEUE = 16;
/**
 * Round trips before the measured ones, with short pauses, so V8 has compiled the data path (its
 * compiler threads need a CPU that the two spinning ends would otherwise hold).
 */
const WARMUP = 1000;
const WARMUP_PAUSE_EVERY = 100;
/** How long to spin for the peer's write before giving up. */
const SPIN_TIMEOUT_MS = 10_000;
const CLIENT_SEED = 1;
const SERVER_SEED = 2;

/** The iteration mark carried in a message's last byte: 1..255, never the initial 0. */
function mark(iteration: number): number {
  return (iteration % 255) + 1;
}

/**
 * Runs `total` round trips (the first WARMUP of them with pauses); returns each one's post time in
 * milliseconds. The buffer is two halves: this end sends from [0, size) and the peer writes into
 * [size, 2 * size).
 */
async function pingPong(s: Session, size: number, total: number): Promise<Float64Array> {
  const sendHalf = s.buffer.subarray(0, size);
  const receiveHalf = s.buffer.subarray(size, 2 * size);
  const wcs = new WorkCompletions(SEND_QUEUE);
  // Validated and encoded once, like perftest's one reused ibv_send_wr: each post is one FFI call.
  // Inline when the message fits (perftest's rule; its default inline size on rxe is 0).
  const write = s.qp.prepareSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: s.mr, length: size },
    remoteAddress: s.remoteAddress + BigInt(size),
    rkey: s.remoteKey,
    signaled: true,
    inline: size <= s.maxInlineData,
  });
  const posted = new Float64Array(total);
  let outstanding = 0;
  // One FFI call polls and checks every status (a failed write throws a CompletionError).
  const reap = (block: boolean) => {
    let n: number;
    do n = s.cq.pollChecked(wcs); while (n === 0 && block);
    outstanding -= n;
  };
  const waitForPeer = (iteration: number) => {
    const expected = mark(iteration);
    // Atomics.load so the compiler re-reads memory the device writes on every spin.
    for (let spins = 1; Atomics.load(receiveHalf, size - 1) !== expected; spins++) {
      if (
        (spins & 0xffff) === 0 &&
        performance.now() - posted[Math.max(0, iteration - 1)] > SPIN_TIMEOUT_MS
      ) {
        throw new Error(`no write from the peer for iteration ${iteration} within 10 s`);
      }
    }
  };
  // What the next post needs that does not depend on the peer's message (the mark in our own send
  // half, the request id); written only after the previous post returned, and before waiting.
  const prepare = (iteration: number) => {
    while (outstanding >= SEND_QUEUE) reap(true);
    sendHalf[size - 1] = mark(iteration);
    write.wrId = iteration;
  };
  const send = (iteration: number) => {
    write.post();
    // Stamped as the post returns rather than before it: the period between stamps is the same
    // round trip, but the clock read then overlaps with the write in flight instead of delaying it.
    posted[iteration] = performance.now();
    outstanding++;
  };
  const isClient = s.isClient;
  // Round trips from..to-1. The warm-up runs this same function in chunks, so the timed call runs
  // code V8 has already optimized, without the warm-up's pauses in its loop.
  const rounds = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      // Completions are reaped right after the post, while the write is in flight (as perftest
      // polls for its completion after each post), and the next post is prepared then too: only
      // the post itself sits between the peer's write landing and ours leaving.
      if (isClient) {
        send(i);
        reap(false);
        if (i + 1 < total) prepare(i + 1);
        waitForPeer(i);
      } else {
        waitForPeer(i);
        send(i);
        reap(false);
        if (i + 1 < total) prepare(i + 1);
      }
    }
  };
  posted[0] = performance.now();
  prepare(0);
  for (let i = 0; i < WARMUP; i += WARMUP_PAUSE_EVERY) {
    rounds(i, Math.min(i + WARMUP_PAUSE_EVERY, WARMUP));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  rounds(WARMUP, total);
  while (outstanding > 0) reap(true);
  return posted;
}

async function main(): Promise<number> {
  const args = parsePerftestArgs(Deno.args, USAGE, "RDMA_Write Latency Test", {
    size: 2,
    iters: 1000,
    txDepth: TX_DEPTH,
    latency: true,
  });
  const { size, iters } = args.session;
  using s = await openSession({ ...args.session, bufferBytes: 2 * size, txDepth: SEND_QUEUE });
  console.log(banner("RDMA_Write Latency Test", [
    ["Device", s.ctx.deviceName],
    ["Number of qps", 1],
    ["Connection type", "RC"],
    ["TX depth", TX_DEPTH],
    ["CQ Moderation", 1],
    ["Max inline data", `${s.maxInlineData}[B]`],
    ["Warm-up", `${WARMUP} iterations (not measured)`],
    ["Mtu", `${s.mtuBytes}[B]`],
    ["GID index", s.gidIndex],
    ["Data ex. method", args.session.rdmaCm ? "rdma_cm" : "Ethernet"],
  ]));
  console.log(s.addressLines.join("\n"));
  console.log(RULE);

  const ownSeed = s.isClient ? CLIENT_SEED : SERVER_SEED;
  const peerSeed = s.isClient ? SERVER_SEED : CLIENT_SEED;
  fillPattern(s.buffer.subarray(0, size - 1), ownSeed);
  const total = WARMUP + iters;
  const posted = await pingPong(s, size, total);
  const samples: number[] = [];
  for (let i = WARMUP + 1; i < total; i++) samples.push((posted[i] - posted[i - 1]) * 1000 / 2);
  console.log(latencyTable(latencyStatistics(size, iters, samples)));

  // The peer's last message: its pattern, then the last iteration's mark.
  const received = s.buffer.subarray(size, 2 * size);
  const bad = patternMismatch(received.subarray(0, size - 1), peerSeed);
  if (bad >= 0 || received[size - 1] !== mark(total - 1)) {
    const at = bad >= 0 ? bad : size - 1;
    console.error(`data check failed: received byte ${at} is 0x${received[at].toString(16)}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
