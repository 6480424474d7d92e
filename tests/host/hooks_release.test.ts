/**
 * One test per way memory is released: each triggers the release through libc's real path and
 * checks that the exact range reached the C handler synchronously, while its bytes were still
 * there, and reached the TypeScript handler at flush().
 */
import assert from "node:assert/strict";
import { type MemHookCallback, memHooks, OPAL_SUCCESS } from "../../hooks/mod.ts";
import { addressOf, pointerAt } from "../../ffi/pointers.ts";
import { address, byteAt, offset, PAGE, probe, probeEvent, probeFind } from "./hooks_probe.ts";

const BYTE = 0xab;
const MADV_DONTNEED = 4, MADV_FREE = 8, MADV_REMOVE = 9;
const MADV_GUARD_INSTALL = 102, MADV_GUARD_REMOVE = 103;
const MREMAP_MAYMOVE = 1;

interface Seen {
  addr: bigint;
  len: number;
  fromAlloc: boolean;
  flags: number;
}

/** Runs `body` with the C probe and a TypeScript recorder registered; cleans up after. */
function withHooks(body: (seen: Seen[]) => void | Promise<void>): () => Promise<void> {
  return async () => {
    assert.equal(memHooks.init(), OPAL_SUCCESS);
    const seen: Seen[] = [];
    const record: MemHookCallback = (addr, len, _cbdata, fromAlloc, flags) =>
      seen.push({ addr, len, fromAlloc, flags });
    memHooks.flush();
    assert.equal(memHooks.registerRelease(record), OPAL_SUCCESS);
    probe.probe_reset();
    assert.equal(probe.probe_register(), OPAL_SUCCESS);
    try {
      await body(seen);
    } finally {
      probe.probe_unregister();
      memHooks.unregisterRelease(record);
      probe.probe_reset();
    }
  };
}

/** The C handler saw exactly [addr, addr + len) with its bytes intact; TS sees it at flush. */
function assertReleased(
  seen: Seen[],
  addr: bigint,
  len: number,
  fromAlloc: boolean,
): void {
  const event = probeFind(addr, len);
  assert.ok(event, `no C event for 0x${addr.toString(16)}+${len}`);
  assert.equal(event.intact, 1, "the bytes were gone when the C handler ran");
  assert.equal(event.fromAlloc, fromAlloc);
  assert.ok(
    !seen.some((e) => e.addr === addr && e.len === len),
    "TypeScript saw it before flush()",
  );
  assert.ok(memHooks.flush() > 0);
  const ts = seen.find((e) => e.addr === addr && e.len === len);
  assert.ok(ts, "TypeScript did not get the event at flush()");
  assert.equal(ts.fromAlloc, fromAlloc);
}

function describeEvents(): string {
  const lines = [];
  for (let i = 0; i < Number(probe.probe_event_total()); i++) {
    const e = probeEvent(i);
    if (e) {
      lines.push(
        `0x${e.addr.toString(16)}+0x${e.len.toString(16)}${e.fromAlloc ? " (allocator)" : ""}`,
      );
    }
  }
  return lines.join(", ") || "nothing";
}

Deno.test(
  "munmap reaches the C handler before the unmap, and TypeScript at flush",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(2 * PAGE), BYTE);
    probe.probe_watch(p, BigInt(2 * PAGE), BYTE);
    assert.equal(probe.probe_munmap(p, BigInt(2 * PAGE)), 0);
    assertReleased(seen, address(p), 2 * PAGE, false);
  }),
);

Deno.test(
  "mremap shrinking reports the tail",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(4 * PAGE), BYTE);
    probe.probe_watch(p, BigInt(4 * PAGE), BYTE);
    assert.equal(address(probe.probe_mremap(p, BigInt(4 * PAGE), BigInt(2 * PAGE), 0)), address(p));
    assertReleased(seen, address(p) + BigInt(2 * PAGE), 2 * PAGE, false);
    probe.probe_munmap(p, BigInt(2 * PAGE));
  }),
);

Deno.test(
  "mremap moving to a fixed address reports the old range and the target range",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(2 * PAGE), BYTE);
    const target = probe.probe_map(BigInt(2 * PAGE), BYTE);
    probe.probe_watch(p, BigInt(2 * PAGE), BYTE);
    const moved = probe.probe_mremap_fixed(p, BigInt(2 * PAGE), target);
    assert.equal(address(moved), address(target));
    assertReleased(seen, address(p), 2 * PAGE, false);
    const targetEvent = probeFind(target, 2 * PAGE);
    assert.ok(targetEvent, "the target range was not reported");
    probe.probe_munmap(target, BigInt(2 * PAGE));
  }),
);

Deno.test(
  "mremap growth that may move reports the whole old range",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(PAGE), BYTE);
    probe.probe_watch(p, BigInt(PAGE), BYTE);
    const grown = probe.probe_mremap(p, BigInt(PAGE), BigInt(256 * PAGE), MREMAP_MAYMOVE);
    assert.notEqual(address(grown), 2n ** 64n - 1n);
    assertReleased(seen, address(p), PAGE, false);
    probe.probe_munmap(grown, BigInt(256 * PAGE));
  }),
);

for (
  const [name, advice, shared] of [
    ["MADV_DONTNEED", MADV_DONTNEED, false],
    ["MADV_FREE", MADV_FREE, false],
    ["MADV_REMOVE", MADV_REMOVE, true],
  ] as const
) {
  Deno.test(
    `madvise ${name} is reported before the pages go`,
    withHooks((seen) => {
      const len = BigInt(2 * PAGE);
      const p = shared ? probe.probe_map_shared(len, BYTE) : probe.probe_map(len, BYTE);
      probe.probe_watch(p, len, BYTE);
      assert.equal(probe.probe_madvise(p, len, advice), 0);
      assertReleased(seen, address(p), 2 * PAGE, false);
      if (advice !== MADV_FREE) assert.equal(byteAt(p), 0, "the advice did not release the page");
      probe.probe_munmap(p, len);
    }),
  );
}

Deno.test(
  "madvise MADV_GUARD_INSTALL is reported before the pages go (Linux 6.13 zaps them)",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(PAGE), BYTE);
    probe.probe_watch(p, BigInt(PAGE), BYTE);
    // Reported before the call, so also where the kernel refuses the advice (EINVAL before 6.13).
    const installed = probe.probe_madvise(p, BigInt(PAGE), MADV_GUARD_INSTALL) === 0;
    assertReleased(seen, address(p), PAGE, false);
    if (installed) {
      assert.equal(probe.probe_madvise(p, BigInt(PAGE), MADV_GUARD_REMOVE), 0);
      assert.equal(byteAt(p), 0, "the guard did not zap the page");
    }
    probe.probe_munmap(p, BigInt(PAGE));
  }),
);

Deno.test(
  "posix_madvise(POSIX_MADV_DONTNEED) releases nothing in glibc, and reports nothing",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(PAGE), BYTE);
    probe.probe_watch(p, BigInt(PAGE), BYTE);
    assert.equal(probe.probe_posix_madvise_dontneed(p, BigInt(PAGE)), 0);
    assert.equal(byteAt(p), BYTE, "the data did not survive");
    assert.equal(probeFind(p), undefined);
    memHooks.flush();
    assert.ok(!seen.some((e) => e.addr === address(p)));
    probe.probe_munmap(p, BigInt(PAGE));
  }),
);

Deno.test(
  "malloc_trim's release of heap pages is reported, flagged as from the allocator",
  withHooks((seen) => {
    const page = probe.probe_trim_scenario(16, BigInt(64 * 1024), BYTE);
    const event = probeFind(page);
    assert.ok(
      event,
      `no release covered the trimmed page 0x${
        address(page).toString(16)
      }; saw ${describeEvents()}`,
    );
    assert.equal(event.intact, 1);
    assert.equal(event.fromAlloc, true);
    memHooks.flush();
    assert.ok(seen.some((e) => e.addr <= address(page) && address(page) < e.addr + BigInt(e.len)));
  }),
);

Deno.test(
  "sbrk shrinking is reported with the released range",
  withHooks((seen) => {
    const released = probe.probe_sbrk_scenario(8, BYTE);
    assert.notEqual(released, null);
    assertReleased(seen, address(released), 4 * PAGE, false);
  }),
);

Deno.test(
  "mmap MAP_FIXED over a mapping reports the replaced range",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(2 * PAGE), BYTE);
    probe.probe_watch(p, BigInt(2 * PAGE), BYTE);
    const second = offset(p, PAGE);
    assert.equal(address(probe.probe_mmap_fixed(second, BigInt(PAGE))), address(second));
    assertReleased(seen, address(second), PAGE, false);
    assert.equal(byteAt(second), 0);
    probe.probe_munmap(p, BigInt(2 * PAGE));
  }),
);

Deno.test(
  "shmdt reports the whole attachment",
  withHooks((seen) => {
    const p = probe.probe_shm_attach(BigInt(3 * PAGE), BYTE);
    assert.notEqual(p, null, "System V shared memory is not available");
    probe.probe_watch(p, BigInt(3 * PAGE), BYTE);
    assert.equal(probe.probe_shmdt(p), 0);
    assertReleased(seen, address(p), 3 * PAGE, false);
  }),
);

Deno.test(
  "shmdt of an attachment with a hole reports up to its last piece (the kernel detaches it too)",
  withHooks(() => {
    const p = probe.probe_shm_attach(BigInt(3 * PAGE), BYTE);
    assert.notEqual(p, null, "System V shared memory is not available");
    assert.equal(probe.probe_munmap(offset(p, PAGE), BigInt(PAGE)), 0);
    probe.probe_reset();
    probe.probe_watch(offset(p, 2 * PAGE), BigInt(PAGE), BYTE);
    assert.equal(probe.probe_shmdt(p), 0);
    const event = probeFind(offset(p, 2 * PAGE));
    assert.ok(event, "the piece after the hole was not reported");
    assert.equal(event.addr, address(p));
    assert.equal(event.intact, 1, "reported after the kernel detached it");
  }),
);

Deno.test(
  "shmdt when /proc/self/maps cannot be opened reports everything from the address up",
  withHooks(() => {
    const p = probe.probe_shm_attach(BigInt(2 * PAGE), BYTE);
    assert.notEqual(p, null, "System V shared memory is not available");
    probe.probe_watch(p, BigInt(2 * PAGE), BYTE);
    assert.equal(probe.probe_shmdt_without_fds(p), 0);
    const event = probeFind(p);
    assert.ok(event, "nothing reported");
    assert.equal(event.addr, address(p));
    assert.ok(event.len >= 2 ** 40, `only ${event.len} bytes reported`);
    assert.equal(event.intact, 1);
  }),
);

Deno.test(
  "shmat with SHM_REMAP reports the mapping it replaces",
  withHooks((seen) => {
    const shm = probe.probe_shm_attach(BigInt(2 * PAGE), 0x11);
    assert.notEqual(shm, null, "System V shared memory is not available");
    const p = probe.probe_map(BigInt(2 * PAGE), BYTE);
    probe.probe_watch(p, BigInt(2 * PAGE), BYTE);
    assert.equal(address(probe.probe_shmat_remap(p)), address(p));
    assertReleased(seen, address(p), 2 * PAGE, false);
    assert.equal(byteAt(p), 0x11, "the segment is not mapped over the old range");
    probe.probe_shmdt(p);
    probe.probe_shmdt(shm);
  }),
);

Deno.test(
  "free of a large malloc block is reported from the allocator before the unmap",
  withHooks((seen) => {
    // Above glibc's largest dynamic mmap threshold (32 MiB): always a chunk of its own mapping.
    const size = 40 << 20;
    const p = probe.probe_malloc_fill(BigInt(size), BYTE);
    probe.probe_watch(p, BigInt(size), BYTE);
    probe.probe_free(p);
    const event = probeFind(p);
    assert.ok(event, "no release covered the block");
    assert.equal(event.intact, 1);
    assert.equal(event.fromAlloc, true);
    assert.ok(event.len >= size);
    memHooks.flush();
    assert.ok(seen.some((e) => e.addr === event.addr && e.len === event.len && e.fromAlloc));
  }),
);

Deno.test(
  "a large ArrayBuffer collected by V8 is reported",
  withHooks(async (seen) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, "run with --v8-flags=--expose-gc");
    const size = 64 << 20;
    let bytes: Uint8Array | undefined = new Uint8Array(size).fill(BYTE);
    const at = addressOf(bytes);
    probe.probe_watch(pointerAt(at), BigInt(size), BYTE);
    bytes = undefined;
    let event = probeFind(at);
    for (let i = 0; i < 200 && !event; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
      event = probeFind(at);
    }
    assert.ok(event, "the backing store was not released");
    assert.equal(event.intact, 1);
    assert.equal(event.fromAlloc, true);
    memHooks.flush();
    assert.ok(seen.some((e) => e.addr <= at && at < e.addr + BigInt(e.len)));
  }),
);

Deno.test(
  "a release on another native thread reaches both handlers",
  withHooks((seen) => {
    const p = probe.probe_map(BigInt(PAGE), BYTE);
    probe.probe_watch(p, BigInt(PAGE), BYTE);
    assert.equal(probe.probe_munmap_on_thread(p, BigInt(PAGE)), 0);
    const event = probeFind(p, PAGE);
    assert.ok(event);
    assert.notEqual(event.thread, probe.probe_gettid());
    assertReleased(seen, address(p), PAGE, false);
  }),
);

Deno.test(
  "a handler that frees memory: the nested release is dispatched after, and not lost",
  () => {
    assert.equal(memHooks.init(), OPAL_SUCCESS);
    const seen: Seen[] = [];
    const record: MemHookCallback = (addr, len, _c, fromAlloc, flags) =>
      seen.push({ addr, len, fromAlloc, flags });
    memHooks.registerRelease(record);
    probe.probe_reset();
    const victim = probe.probe_map(BigInt(PAGE), 0x22);
    const p = probe.probe_map(BigInt(PAGE), BYTE);
    const nestedBefore = memHooks.stats().nested;
    assert.equal(probe.probe_register_freeing(victim, BigInt(PAGE)), OPAL_SUCCESS);
    try {
      probe.probe_watch(p, BigInt(PAGE), BYTE);
      probe.probe_munmap(p, BigInt(PAGE));
      const outer = probe.probe_find(p, BigInt(PAGE));
      const inner = probe.probe_find(victim, BigInt(PAGE));
      assert.ok(outer >= 0 && inner > outer, `outer ${outer}, nested ${inner}`);
      assert.equal(probeEvent(inner)?.nested, true);
      assert.ok(memHooks.stats().nested > nestedBefore);
      memHooks.flush();
      assert.ok(seen.some((e) => e.addr === address(victim) && (e.flags & 0x10) !== 0));
    } finally {
      probe.probe_unregister_freeing();
      memHooks.unregisterRelease(record);
      probe.probe_reset();
    }
  },
);

Deno.test(
  "an alloc handler that frees memory: the release handlers see it before the mmap returns",
  withHooks(() => {
    // Not watched: a release made inside a handler reaches the handlers after the kernel's unmap.
    const victim = probe.probe_map(BigInt(PAGE), BYTE);
    assert.equal(probe.probe_register_unmapping_alloc(victim, BigInt(PAGE)), OPAL_SUCCESS);
    try {
      const p = probe.probe_map(BigInt(PAGE), 0x11); // the alloc handler unmaps the victim
      assert.ok(probeFind(victim, PAGE), "the release was not dispatched before mmap returned");
      probe.probe_munmap(p, BigInt(PAGE));
    } finally {
      probe.probe_unregister_unmapping_alloc();
    }
  }),
);
