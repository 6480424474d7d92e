/**
 * The hooks under load and in hard places: a million releases with no flush, installation while
 * native threads loop on mmap/munmap, fork, and releases made by V8's own threads.
 */
import assert from "node:assert/strict";
import {
  type MemHookCallback,
  memHooks,
  MEMHOOKS_EVENT_COALESCED,
  OPAL_SUCCESS,
} from "../../hooks/mod.ts";
import { PATCH } from "../../ffi/records/memhooks.ts";
import { address, PAGE, probe, probeEvent } from "./hooks_probe.ts";

function rssBytes(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error("no VmRSS in /proc/self/status");
  return Number(kb[1]) * 1024;
}

Deno.test("1,000,000 releases with no flush: bounded memory, and the delivered ranges cover all", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  const ranges: { addr: bigint; len: number; flags: number }[] = [];
  const record: MemHookCallback = (addr, len, _c, _fromAlloc, flags) =>
    ranges.push({ addr, len, flags });
  memHooks.flush();
  memHooks.registerRelease(record);
  try {
    const before = rssBytes();
    const coalescedBefore = memHooks.stats().coalesced;
    const window = 256;
    const base = address(probe.probe_release_storm(1_000_000n, window));
    const grown = rssBytes() - before;
    assert.ok(grown < 16 << 20, `RSS grew by ${grown} bytes`);
    const delivered = memHooks.flush();
    // The ring's 4096 events and the covering ranges; other threads may add a few meanwhile.
    assert.ok(delivered <= 4096 + 2 + 200, `${delivered} events: the queue is not bounded`);
    assert.ok(memHooks.stats().coalesced - coalescedBefore > 900_000n);
    assert.ok(ranges.some((r) => (r.flags & MEMHOOKS_EVENT_COALESCED) !== 0));
    // Every page of the window, released 3906 times each, lies in some delivered range.
    for (let i = 0; i < window; i++) {
      const page = base + BigInt(i * PAGE);
      assert.ok(
        ranges.some((r) => r.addr <= page && page + BigInt(PAGE) <= r.addr + BigInt(r.len)),
        `page ${i} of the window was lost`,
      );
    }
  } finally {
    memHooks.unregisterRelease(record);
  }
});

Deno.test("hooks installed and removed while 4 native threads loop on mmap/madvise/mremap/munmap", () => {
  memHooks.finalize();
  for (let round = 0; round < 2; round++) {
    assert.equal(probe.probe_loop_start(4, 10_000n), 0);
    assert.equal(memHooks.init(), OPAL_SUCCESS);
    assert.equal(probe.probe_register(), OPAL_SUCCESS, "a C handler during the loop");
    if (round === 1) memHooks.finalize();
    assert.equal(probe.probe_loop_join(), 40_000n);
    probe.probe_unregister();
  }
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.ok(memHooks.patchStatus().every((p) => p.status === PATCH.OK));
});

Deno.test("fork: the child unmaps with the hooks installed, its handler runs, nothing deadlocks", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.equal(probe.probe_register(), OPAL_SUCCESS);
  try {
    assert.equal(probe.probe_fork_child_unmaps(), 0);
    // Again while 4 threads are inside the hooks and the handler: nothing they held or counted
    // may reach the child.
    assert.equal(probe.probe_loop_start(4, 25_000n), 0);
    for (let i = 0; i < 10; i++) assert.equal(probe.probe_fork_child_unmaps(), 0);
    assert.equal(probe.probe_loop_join(), 100_000n);
  } finally {
    probe.probe_unregister();
  }
});

Deno.test("fork: queue events behind a cell another thread was filling still reach the child", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  const listener: MemHookCallback = () => {};
  // The probe takes a subscriber of its own and jams a cell of it; this isolate's queue records
  // releases beside it, so the child also has a subscriber that was not jammed.
  memHooks.registerRelease(listener);
  try {
    assert.equal(probe.probe_fork_child_drains_behind_stuck_cell(), 0);
  } finally {
    memHooks.flush();
    memHooks.unregisterRelease(listener);
  }
});

Deno.test("releases made on V8's own threads reach the C handler", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, "run with --v8-flags=--expose-gc");
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  probe.probe_reset();
  assert.equal(probe.probe_register(), OPAL_SUCCESS);
  try {
    const mainThread = probe.probe_gettid();
    const threads = new Set<number>();
    for (let round = 0; round < 40 && ![...threads].some((t) => t !== mainThread); round++) {
      // The probe keeps the first 4096 events: start each round empty, or the process's other
      // releases fill it and later rounds' events are never read.
      probe.probe_reset();
      let buffers: Uint8Array[] | undefined = [];
      for (let i = 0; i < 32; i++) buffers.push(new Uint8Array(8 << 20).fill(1));
      buffers = undefined;
      // A forced full GC may sweep array buffers on this thread; a GC the allocation pressure
      // starts sweeps them concurrently, on V8's worker threads. Alternate both.
      if (round % 2 === 0) gc();
      else for (let i = 0; i < 16; i++) new Uint8Array(8 << 20).fill(2);
      await new Promise((r) => setTimeout(r, 50));
      const total = Number(probe.probe_event_total());
      for (let i = 0; i < Math.min(total, 4096); i++) {
        const event = probeEvent(i);
        if (event !== undefined) threads.add(event.thread);
      }
    }
    assert.ok(
      [...threads].some((t) => t !== mainThread),
      `every release was on the JavaScript thread (${[...threads]})`,
    );
  } finally {
    probe.probe_unregister();
    probe.probe_reset();
  }
});
