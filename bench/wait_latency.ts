/**
 * Wake-up latency with many pending waits, in the soft-RoCE guest:
 *
 *     deno task softroce -- deno run -A --no-check bench/wait_latency.ts [--rounds N]
 *
 * For 1, 100 and 2,000 completion queues, each with its own channel and a pending `wait()`, an
 * RDMA WRITE completes on the last queue: the time from the post to its wait resolving, against
 * the time from the post to a busy-polling loop seeing the completion with the same waits
 * pending. Also the process's thread count with the waits pending. Medians over `--rounds`.
 *
 * @module
 */
import { libc } from "../ffi/libc.ts";
import { numberArgument } from "../tools/args.ts";
import { Access, type CompletionQueue, openDevice, WorkCompletions, WrOpcode } from "../mod.ts";
import { median } from "./cache_bench.ts";

const DEVICE = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";
const rounds = numberArgument("--rounds", 21);

function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

// Room for 2,000 completion channels' descriptors (RLIMIT_NOFILE is 7).
libc().setrlimit(7, new Uint8Array(new BigUint64Array([8192n, 8192n]).buffer));

using ctx = openDevice(DEVICE);
using pd = ctx.allocProtectionDomain();
const source = new Uint8Array(64), target = new Uint8Array(64);
using src = pd.registerMemory(source);
const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE;
using dst = pd.registerMemory(target, { access });
const wcs = new WorkCompletions(4);

console.log(`| pending waits | threads | wait() noticed after post [ms] | busy poll [ms] |`);
console.log(`| ---: | ---: | ---: | ---: |`);
for (const n of [1, 100, 2_000]) {
  const cqs: CompletionQueue[] = [];
  for (let i = 0; i < n; i++) cqs.push(ctx.createCompletionQueue({ entries: 8, channel: true }));
  const last = cqs[n - 1];
  const a = pd.createQueuePair({ type: "RC", sendCq: last });
  const b = pd.createQueuePair({ type: "RC", sendCq: cqs[0] });
  a.connect(b.localInfo(), { access });
  b.connect(a.localInfo(), { access });
  const write = () =>
    a.postSend({
      wrId: 1n,
      opcode: WrOpcode.RDMA_WRITE,
      sge: src,
      remoteAddress: dst.address,
      rkey: dst.rkey,
      signaled: true,
    });
  const others = cqs.slice(0, n - 1).map((cq) => cq.wait().catch(() => false));
  const waited: number[] = [], polled: number[] = [];
  let threadCount = 0;
  for (let r = -3; r < rounds; r++) {
    const pending = last.wait({ timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    threadCount = threads();
    let t = performance.now();
    write();
    if (!(await pending)) throw new Error("the wait timed out");
    const waitMs = performance.now() - t;
    while (last.poll(wcs) === 0);
    t = performance.now();
    write();
    while (last.poll(wcs) === 0);
    const pollMs = performance.now() - t;
    if (r >= 0) {
      waited.push(waitMs);
      polled.push(pollMs);
    }
  }
  console.log(
    `| ${n.toLocaleString("en")} | ${threadCount} | ${median(waited).toFixed(2)} | ${
      median(polled).toFixed(2)
    } |`,
  );
  a.close();
  b.close();
  for (const cq of cqs) cq.close();
  await Promise.all(others);
}
console.log(`\nmedians of ${rounds} rounds; ${Deno.build.arch}, TCG guest`);
