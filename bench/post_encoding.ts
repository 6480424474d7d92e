/**
 * The TypeScript cost of posting: `postRecv` and `postSend` (an RDMA WRITE of one region) with
 * the shim's two post calls replaced by no-ops and the queue pair and region built over dummy
 * native memory (a double: no device, nothing reaches a provider), so only validation and
 * encoding are timed. Prints ns per call, median of 7 rounds of 1,000,000 calls.
 *
 *     deno run -A --no-check bench/post_encoding.ts
 *
 * @module
 */
import { pointerOf } from "../ffi/pointers.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { MemoryRegion, NativeHandle, QpType, QueuePair, WrOpcode } from "../verbs/mod.ts";

const shim = verbsNative();
for (const name of ["drv_post_recv", "drv_post_send"]) {
  Object.defineProperty(shim, name, { value: () => 0, writable: true, configurable: true });
}

/** Zeroed memory standing for a native object; never given to a verb. */
const dummies: Uint8Array[] = [];
function dummyPointer(): Deno.PointerObject {
  const bytes = new Uint8Array(4096);
  dummies.push(bytes);
  return pointerOf(bytes)!;
}

class DummyHandle extends NativeHandle {
  constructor(kind: string) {
    super(dummyPointer(), kind, "none", () => 0);
  }
}

const pd = new DummyHandle("ProtectionDomain");
const context = new DummyHandle("Context");
const cq = new DummyHandle("CompletionQueue");
// The private constructors, as the factories call them after their verbs succeed.
const qp = Reflect.construct(QueuePair as unknown as () => unknown, [
  dummyPointer(),
  pd,
  context,
  QpType.RC,
  cq,
  cq,
  4,
  4,
  64,
  null,
]) as QueuePair;
const buffer = new Uint8Array(4096);
const mr = Reflect.construct(MemoryRegion as unknown as () => unknown, [
  pd,
  dummyPointer(),
  {
    address: pointerOf(buffer),
    length: buffer.length,
    bytes: buffer,
    keepAlive: buffer,
  },
  1,
]) as MemoryRegion;

const recv = { wrId: 1, sge: { mr } };
const write = { wrId: 1, sge: { mr }, opcode: WrOpcode.RDMA_WRITE, remoteAddress: 4096n, rkey: 1 };
const CALLS = 1_000_000;
console.log("| call | ns per call (median of 7) |");
console.log("| --- | ---: |");
for (
  const [name, post] of [
    ["postRecv", () => qp.postRecv(recv)],
    ["postSend (RDMA WRITE)", () => qp.postSend(write)],
  ] as const
) {
  for (let i = 0; i < 100_000; i++) post(); // warm up
  const samples: number[] = [];
  for (let round = 0; round < 7; round++) {
    const start = performance.now();
    for (let i = 0; i < CALLS; i++) post();
    samples.push(((performance.now() - start) * 1e6) / CALLS);
  }
  samples.sort((a, b) => a - b);
  console.log(`| ${name} | ${samples[3].toFixed(1)} |`);
}
