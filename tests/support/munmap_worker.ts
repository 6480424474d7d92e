/**
 * Test support: a Worker that unmaps memory on its own thread, so the release hooks run there.
 * Each message is `{ addresses, length, announce }`: it posts "started" first when `announce` is
 * set, munmaps `length` bytes at each address in turn, then posts the first nonzero munmap result
 * (0 when every call succeeded). Start it with
 * `new Worker(new URL("../support/munmap_worker.ts", import.meta.url), { type: "module" })`.
 *
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { pointerAt } from "../../ffi/pointers.ts";

/** What the worker is asked to do. */
interface MunmapRequest {
  addresses: bigint[];
  length: number;
  announce?: boolean;
}

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<MunmapRequest>) => void) | null;
  postMessage(message: unknown): void;
};

const { munmap } = libc(); // opened before the first request

self.onmessage = (e) => {
  const { addresses, length, announce } = e.data;
  if (announce) self.postMessage("started");
  let result = 0;
  for (const address of addresses) {
    const rc = munmap(pointerAt(address), BigInt(length));
    if (result === 0) result = rc;
  }
  self.postMessage(result);
};
