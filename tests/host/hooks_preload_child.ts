/**
 * Run by hooks_preload.test.ts under `LD_PRELOAD=build/libopal_memhooks.so`: exercises malloc and
 * free through the preloaded allocator wrappers and prints what the handlers saw, as JSON.
 *
 * @module
 */
import { type MemHookCallback, memHooks } from "../../hooks/mod.ts";
import { address, PAGE, probe, probeFind } from "./hooks_probe.ts";

const BYTE = 0xab;
const size = 1 << 20;
const initCode = memHooks.init();
const level = memHooks.supportLevel();
const allocs: { addr: bigint; len: number; fromAlloc: boolean }[] = [];
const onAlloc: MemHookCallback = (addr, len, _c, fromAlloc) =>
  allocs.push({ addr, len, fromAlloc });
const registerAllocCode = memHooks.registerAlloc(onAlloc);
probe.probe_reset();
// Under LD_PRELOAD every free in the process is an event: record only the watched ones.
probe.probe_record_watched_only(1);
probe.probe_register();
probe.probe_register_alloc();
const allocsBefore = probe.probe_alloc_total();

const p = probe.probe_malloc_fill(BigInt(size), BYTE);
const cAllocEvents = Number(probe.probe_alloc_total() - allocsBefore);
memHooks.flush();
const at = address(p);
const tsAllocSeen = allocs.some((e) =>
  e.addr <= at && at + BigInt(size) <= e.addr + BigInt(e.len) && e.fromAlloc
);

probe.probe_watch(p, BigInt(size), BYTE);
probe.probe_free(p);
const freeEvent = probeFind(p);

const q = probe.probe_map(BigInt(PAGE), BYTE);
probe.probe_watch(q, BigInt(PAGE), BYTE);
probe.probe_munmap(q, BigInt(PAGE));
const munmapEvent = probeFind(q, PAGE);

probe.probe_unregister();
probe.probe_unregister_alloc();
probe.probe_record_watched_only(0);
memHooks.unregisterAlloc(onAlloc);
console.log(JSON.stringify({
  initCode,
  level,
  registerAllocCode,
  cAllocEvents,
  tsAllocSeen,
  free: freeEvent && { intact: freeEvent.intact, fromAlloc: freeEvent.fromAlloc },
  munmap: munmapEvent && { intact: munmapEvent.intact, fromAlloc: munmapEvent.fromAlloc },
}));
