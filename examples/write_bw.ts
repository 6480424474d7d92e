/**
 * RDMA WRITE bandwidth, with perftest's main flags and result table (compare with `ib_write_bw`).
 *
 *     deno run -A examples/write_bw.ts [options]          # server: the side written to
 *     deno run -A examples/write_bw.ts [options] <host>   # client: the side that writes
 *
 * The client keeps up to 128 writes outstanding (perftest's tx depth), posts them through one
 * prepared request (`-l N`: chains of N writes per post, one completion each), asks for a
 * completion every `-Q`th (CQ moderation; default 1, more completions than ib_write_bw's 100 at
 * 8 KiB and below, but faster on rxe: rxe does its protocol work inside each post, and a long run
 * of unsignaled writes makes those posts slower), and measures from the first post to the last
 * completion, after 2 s of unmeasured warm-up writes (V8 compiles the data path meanwhile). The
 * client's buffer holds a byte pattern; at the end the server checks every byte it received and
 * both ends exit 1 on a mismatch. Runs against itself (not against ib_write_bw: the out-of-band
 * exchange is this project's).
 *
 * @module
 */
import { WorkCompletions, WrOpcode } from "../mod.ts";
import { parsePerftestArgs } from "./lib/perftest_flags.ts";
import { type BandwidthResult, bandwidthTable, banner, RULE } from "./lib/perftest_report.ts";
import { fillPattern, openSession, patternMismatch, type Session } from "./lib/perftest_session.ts";
import { runMain } from "./lib/run_main.ts";

const USAGE = "write_bw.ts [options] [host]   (start the server without <host>)";
const TX_DEPTH = 128;
const DEFAULT_CQ_MODERATION = 1;
/** Longest chain of writes one post may carry (PreparedSend.post's bound). */
const MAX_POST_LIST = 64;
const PEAK_SPAN = TX_DEPTH;
/** Completions taken per poll (perftest's CTX_POLL_BATCH). */
const POLL_BATCH = 16;
/**
 * Writes before the measured ones, for at least WARMUP_MS and WARMUP_WRITES, yielding now and then,
 * so V8 has compiled the data path (its compiler threads need CPU time the busy-polling loop would
 * otherwise hold). Under emulation that takes seconds: the first thousands of posts run several
 * times slower than later ones. Each warm-up round is two full windows, so every branch of the
 * measured loop (the peak bookkeeping too) has run before it is timed: a branch that never ran
 * would cost a deoptimization and a recompilation in the middle of the measurement.
 */
const WARMUP_WRITES = 1024;
const WARMUP_MS = 2000;
const WARMUP_YIELD_EVERY = 2 * TX_DEPTH;
const CLIENT_SEED = 1;

/**
 * Posts unmeasured writes (see WARMUP_MS), pausing every WARMUP_YIELD_EVERY, with the measured
 * run's CQ moderation and post list.
 */
async function warmUp(s: Session, size: number, cqMod: number, postList: number): Promise<void> {
  const until = performance.now() + WARMUP_MS;
  for (let done = 0; done < WARMUP_WRITES || performance.now() < until;) {
    runWrites(s, size, WARMUP_YIELD_EVERY, cqMod, postList, false);
    done += WARMUP_YIELD_EVERY;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Posts `iters` RDMA WRITEs with a window of TX_DEPTH and returns the measured bandwidth. */
function runWrites(
  s: Session,
  size: number,
  iters: number,
  cqMod: number,
  postList: number,
  progress: boolean,
): BandwidthResult {
  const wcs = new WorkCompletions(POLL_BATCH);
  // Validated and encoded once, like perftest's one reused ibv_send_wr: each post is one FFI call.
  const write = s.qp.prepareSend({
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: s.mr, length: size },
    remoteAddress: s.remoteAddress,
    rkey: s.remoteKey,
    inline: size <= s.maxInlineData,
    signaled: true,
  });
  let signaled = true;
  let posted = 0;
  let completed = 0;
  let peak = 0;
  let nextProgress = 0.1;
  const start = performance.now();
  let lastCompletion = start;
  let lastCount = 0;
  while (completed < iters) {
    while (posted < iters && posted + postList - completed <= TX_DEPTH) {
      const count = Math.min(postList, iters - posted);
      // A chain asks for one completion, for its last write (perftest: cq_mod = post_list).
      const last = posted + count;
      const signal = count > 1 || last % cqMod === 0 || last === iters;
      // Only what changes is written into the prepared request: its id matters only when it
      // asks for a completion (a chain's last copy gets id `last - 1`), and the flag rarely flips.
      if (signal) write.wrId = posted;
      if (signal !== signaled) write.signaled = signaled = signal;
      write.post(count);
      posted = last;
    }
    // One FFI call polls and checks every status (a failure throws a CompletionError); a
    // completion accounts for every write up to its own, as perftest's ccnt += cq_mod.
    const n = s.cq.pollChecked(wcs);
    if (n > 0) {
      completed = wcs.wrId(n - 1) + 1;
      // Peak: the best rate over spans of at least a full window of writes (shorter spans measure
      // how completions bunch up, not bandwidth).
      if (completed - lastCount >= PEAK_SPAN || completed === iters) {
        const now = performance.now();
        const rate = (completed - lastCount) * size / ((now - lastCompletion) / 1000);
        if (completed - lastCount >= PEAK_SPAN && rate > peak) peak = rate;
        lastCompletion = now;
        lastCount = completed;
      }
      if (progress && completed / iters >= nextProgress) {
        console.error(`  ${Math.floor((completed / iters) * 100)}% of ${iters} writes`);
        nextProgress = Math.floor((completed / iters) * 10 + 1) / 10;
      }
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const average = size * iters / seconds;
  return {
    bytes: size,
    iters,
    peakBytesPerSecond: Math.max(peak, average),
    averageBytesPerSecond: average,
    messagesPerSecond: iters / seconds,
  };
}

async function main(): Promise<number> {
  const args = parsePerftestArgs(
    Deno.args,
    USAGE,
    "RDMA_Write BW Test",
    { size: 65536, iters: 5000, txDepth: TX_DEPTH },
    {
      "cq-mod": {
        short: "Q",
        type: "string",
        help: "<n>  generate a completion every <n> writes (default 1, at most 128)",
      },
      post_list: {
        short: "l",
        type: "string",
        help: "<n>  post chains of <n> writes in one call, one completion each (default 1)",
      },
      progress: { type: "boolean", help: "print progress to stderr (client)" },
    },
  );
  const cqMod = args.integer("cq-mod", DEFAULT_CQ_MODERATION, 1, TX_DEPTH);
  const postList = args.integer("post_list", 1, 1, MAX_POST_LIST);
  const { size, iters } = args.session;
  using s = await openSession(args.session);
  console.log(banner("RDMA_Write BW Test", [
    ["Device", s.ctx.deviceName],
    ["Number of qps", 1],
    ["Connection type", "RC"],
    ["TX depth", TX_DEPTH],
    ["CQ Moderation", postList > 1 ? postList : cqMod],
    ["Post List", postList],
    ["Max inline data", `${s.maxInlineData}[B]`],
    ["Warm-up", `${WARMUP_MS / 1000} s (not measured)`],
    ["Mtu", `${s.mtuBytes}[B]`],
    ["GID index", s.gidIndex],
    ["Data ex. method", args.session.rdmaCm ? "rdma_cm" : "Ethernet"],
  ]));
  console.log(s.addressLines.join("\n"));
  console.log(RULE);

  let result: BandwidthResult;
  if (s.isClient) {
    fillPattern(s.buffer.subarray(0, size), CLIENT_SEED);
    await warmUp(s, size, cqMod, postList);
    result = runWrites(s, size, iters, cqMod, postList, args.values.progress === true);
    // The server checks what landed and answers "ok" or what differs.
    await s.link.writeLine(JSON.stringify(result));
    const verdict = await s.link.readLine();
    if (verdict !== "ok") {
      console.log(bandwidthTable(result, args.reportGbits));
      console.error(`data check failed on the server: ${verdict}`);
      return 1;
    }
  } else {
    result = JSON.parse(await s.link.readLine()) as BandwidthResult;
    // Every write carried the same pattern to the same place: the bytes must be exactly it.
    const bad = patternMismatch(s.buffer.subarray(0, size), CLIENT_SEED);
    const verdict = bad < 0 ? "ok" : `byte ${bad} is 0x${s.buffer[bad].toString(16)}`;
    await s.link.writeLine(verdict);
    if (bad >= 0) {
      console.log(bandwidthTable(result, args.reportGbits));
      console.error(`data check failed: ${verdict}`);
      return 1;
    }
  }
  console.log(bandwidthTable(result, args.reportGbits));
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
