/**
 * Test support: the second thread of the cache stress test. It replaces the memory of the slots
 * the main thread hands it (mmap MAP_FIXED over them, so the release happens on this thread) and
 * reports back through shared memory. Protocol: see stress.ts.
 *
 * @module
 */
import { pointerAt } from "../../ffi/pointers.ts";
import { mapOver } from "./native_memory.ts";

interface Setup {
  state: SharedArrayBuffer;
  addresses: SharedArrayBuffer;
  lengths: SharedArrayBuffer;
}

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Setup>) => void) | null;
  postMessage(message: unknown): void;
};

self.onmessage = (e) => {
  const state = new Int32Array(e.data.state);
  const addresses = new Float64Array(e.data.addresses);
  const lengths = new Float64Array(e.data.lengths);
  const slots = addresses.length;
  self.postMessage("ready");
  // state[0]: requests posted, state[1]: stop flag, state[2 + i]: slot i (1: replace it).
  for (;;) {
    const posted = Atomics.load(state, 0);
    if (Atomics.load(state, 1) === 1) break;
    for (let i = 0; i < slots; i++) {
      if (Atomics.load(state, 2 + i) !== 1) continue;
      const address = BigInt(addresses[i]);
      const b = {
        pointer: pointerAt(address)!,
        address,
        length: lengths[i],
        bytes: new Uint8Array(0),
      };
      const fresh = mapOver(b);
      fresh.bytes[0] = 0xee;
      Atomics.store(state, 2 + i, 2);
    }
    Atomics.wait(state, 0, posted, 100); // returns at once when a request came meanwhile
  }
  self.postMessage("stopped");
};
