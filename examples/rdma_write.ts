/**
 * RC RDMA WRITE in loopback: two queue pairs on one device, one writes a buffer into the other's
 * memory, and the bytes are checked. The smallest complete program: device, protection domain,
 * completion queue, two connected queue pairs, two registrations, one write, one completion.
 *
 *     deno run -A examples/rdma_write.ts [-d <device>] [-i <port>] [-s <bytes>]
 *
 * Exits 0 when every byte arrived, 1 on a failed verb, completion or data check.
 *
 * @module
 */
import { Access, openDevice, WcStatus, wcStatusName, WorkCompletions, WrOpcode } from "../mod.ts";
import { DEVICE_PORT_FLAGS, type FlagSpec, integerOption, parseOptions } from "./lib/options.ts";
import { runMain } from "./lib/run_main.ts";

const USAGE = "rdma_write.ts [options]";
const FLAGS: Record<string, FlagSpec> = {
  ...DEVICE_PORT_FLAGS,
  size: { short: "s", type: "string", help: "<bytes>  size of the write (default 1048576)" },
};
const MAX_SIZE = 1 << 30;
const TIMEOUT_MS = 10_000;

async function main(): Promise<number> {
  const parsed = parseOptions(Deno.args, USAGE, FLAGS, 0);
  const size = integerOption(parsed, "size", 1 << 20, 1, MAX_SIZE, USAGE, FLAGS);
  const port = integerOption(parsed, "ib-port", 1, 1, 255, USAGE, FLAGS);

  using ctx = openDevice(parsed.values["ib-dev"] as string | undefined); // first device by default
  using pd = ctx.allocProtectionDomain();
  using cq = ctx.createCompletionQueue({ channel: true });
  using writer = pd.createQueuePair({ type: "RC", sendCq: cq });
  using target = pd.createQueuePair({ type: "RC", sendCq: cq });

  // The target lets its peer write; the writer needs nothing remote.
  writer.connect(target.localInfo({ port }), { port });
  target.connect(writer.localInfo({ port }), {
    port,
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });

  const source = new Uint8Array(size).map((_, i) => i % 251);
  const destination = new Uint8Array(size);
  using sourceMr = pd.registerMemory(source);
  using destinationMr = pd.registerMemory(destination, {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });

  writer.postSend({
    wrId: 1,
    opcode: WrOpcode.RDMA_WRITE,
    sge: { mr: sourceMr },
    remoteAddress: destinationMr.address,
    rkey: destinationMr.rkey,
  });

  // Sleeps on the completion channel rather than spinning.
  const completions = new WorkCompletions(1);
  if (await cq.pollOrWait(completions, { timeoutMs: TIMEOUT_MS }) !== 1) {
    throw new Error(`no completion within ${TIMEOUT_MS / 1000} s`);
  }
  if (completions.status(0) !== WcStatus.SUCCESS) {
    throw new Error(`RDMA WRITE failed: ${wcStatusName(completions.status(0))}`);
  }
  const mismatch = destination.findIndex((byte, i) => byte !== source[i]);
  if (mismatch >= 0) {
    console.error(`data check failed: byte ${mismatch} differs after the RDMA WRITE`);
    return 1;
  }
  console.log(`${ctx.deviceName}: RDMA WRITE of ${size} bytes verified`);
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
