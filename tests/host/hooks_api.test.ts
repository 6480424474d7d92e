/**
 * The opal API's contract: return codes, support level, init/finalize twice, patch status, and
 * the prologue decoder that decides what may be patched.
 */
import assert from "node:assert/strict";
import {
  type MemHookCallback,
  memHooks,
  OPAL_ERR_BAD_PARAM,
  OPAL_ERR_NOT_FOUND,
  OPAL_ERR_NOT_SUPPORTED,
  OPAL_ERR_RESOURCE_BUSY,
  OPAL_EXISTS,
  OPAL_MEMORY_CHUNK_SUPPORT,
  OPAL_MEMORY_FREE_SUPPORT,
  OPAL_MEMORY_MALLOC_SUPPORT,
  OPAL_MEMORY_MMAP_SUPPORT,
  OPAL_SUCCESS,
} from "../../hooks/mod.ts";
import { memhooksNative } from "../../ffi/memhooks.ts";
import { PATCH } from "../../ffi/records/memhooks.ts";
import { address, PAGE, probe, probeFind } from "./hooks_probe.ts";

const PATCH_OK = PATCH.OK, PATCH_NOT_INSTALLED = PATCH.NOT_INSTALLED;
const PATCH_UNKNOWN = PATCH.UNKNOWN_PROLOGUE, PATCH_FOREIGN = PATCH.FOREIGN;
const PATCHED = ["munmap", "mremap", "madvise", "mmap", "brk", "sbrk", "shmat", "shmdt"];

Deno.test("the constants have Open MPI's values", () => {
  assert.deepEqual(
    [OPAL_SUCCESS, OPAL_ERR_RESOURCE_BUSY, OPAL_ERR_NOT_SUPPORTED, OPAL_ERR_NOT_FOUND, OPAL_EXISTS],
    [0, -4, -8, -13, -14],
  );
  assert.deepEqual(
    [
      OPAL_MEMORY_FREE_SUPPORT,
      OPAL_MEMORY_MALLOC_SUPPORT,
      OPAL_MEMORY_CHUNK_SUPPORT,
      OPAL_MEMORY_MMAP_SUPPORT,
    ],
    [1, 2, 4, 8],
  );
});

Deno.test("every return code of the TypeScript API", () => {
  memHooks.finalize();
  const fn: MemHookCallback = () => {};
  assert.equal(memHooks.supportLevel(), 0);
  assert.equal(memHooks.registerRelease(fn), OPAL_ERR_NOT_SUPPORTED, "registered with no hooks");
  assert.equal(memHooks.registerAlloc(fn), OPAL_ERR_NOT_SUPPORTED);
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.equal(memHooks.registerRelease(fn, { tag: 1 }), OPAL_SUCCESS);
  assert.equal(memHooks.registerRelease(fn), OPAL_EXISTS);
  assert.equal(memHooks.registerAlloc(fn), OPAL_SUCCESS);
  assert.equal(memHooks.registerAlloc(fn), OPAL_EXISTS);
  assert.equal(memHooks.unregisterRelease(fn), OPAL_SUCCESS);
  assert.equal(memHooks.unregisterRelease(fn), OPAL_ERR_NOT_FOUND);
  assert.equal(memHooks.unregisterAlloc(fn), OPAL_SUCCESS);
  assert.equal(memHooks.unregisterAlloc(() => {}), OPAL_ERR_NOT_FOUND);
  assert.throws(() => memHooks.registerRelease(42 as unknown as MemHookCallback), TypeError);
  assert.throws(() => memHooks.unregisterAlloc("f" as unknown as MemHookCallback), TypeError);
});

Deno.test("every return code of the C API", () => {
  memHooks.finalize();
  assert.equal(probe.probe_register(), OPAL_ERR_NOT_SUPPORTED, "registered with no hooks");
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.equal(probe.probe_register(), OPAL_SUCCESS);
  assert.equal(probe.probe_register(), OPAL_EXISTS);
  assert.equal(probe.probe_register_null(), OPAL_ERR_BAD_PARAM);
  assert.equal(probe.probe_unregister_unknown(), OPAL_ERR_NOT_FOUND);
  assert.equal(probe.probe_unregister(), OPAL_SUCCESS);
  assert.equal(probe.probe_unregister(), OPAL_ERR_NOT_FOUND);
});

Deno.test("support level: what the self-test proved, and no MALLOC without LD_PRELOAD", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.equal(
    memHooks.supportLevel(),
    OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_CHUNK_SUPPORT | OPAL_MEMORY_MMAP_SUPPORT,
  );
  assert.equal(memhooksNative().opal_mem_hooks_support_level(), memHooks.supportLevel());
});

Deno.test("init and finalize twice; finalize removes every callback and the patches", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.deepEqual(memHooks.patchStatus().map((p) => p.name), PATCHED);
  assert.ok(memHooks.patchStatus().every((p) => p.status === PATCH_OK));
  let tsEvents = 0;
  const count: MemHookCallback = () => tsEvents++;
  assert.equal(memHooks.registerRelease(count), OPAL_SUCCESS);
  assert.equal(probe.probe_register(), OPAL_SUCCESS);
  probe.probe_reset();

  assert.equal(memHooks.finalize(), OPAL_SUCCESS);
  assert.equal(memHooks.finalize(), OPAL_SUCCESS);
  assert.ok(memHooks.patchStatus().every((p) => p.status === PATCH_NOT_INSTALLED));
  assert.equal(memHooks.supportLevel(), 0);
  const p = probe.probe_map(BigInt(PAGE), 1);
  probe.probe_munmap(p, BigInt(PAGE));
  assert.equal(probeFind(p), undefined, "a callback ran after finalize");
  assert.equal(probe.probe_unregister(), OPAL_ERR_NOT_FOUND, "finalize kept the C callback");
  assert.equal(memHooks.flush(), 0);
  assert.equal(tsEvents, 0);

  assert.equal(memHooks.init(), OPAL_SUCCESS);
  assert.ok(memHooks.patchStatus().every((p) => p.status === PATCH_OK));
  assert.equal(memHooks.registerRelease(count), OPAL_SUCCESS, "finalize kept the TS callback");
  const q = probe.probe_map(BigInt(PAGE), 1);
  probe.probe_munmap(q, BigInt(PAGE));
  assert.ok(memHooks.flush() >= 1);
  assert.ok(tsEvents >= 1);
  memHooks.unregisterRelease(count);
});

Deno.test("a TypeScript callback that throws: the others still get every event, then flush throws", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  const got: bigint[] = [];
  const thrower: MemHookCallback = () => {
    throw new Error("callback failure");
  };
  const recorder: MemHookCallback = (addr) => got.push(addr);
  memHooks.flush();
  memHooks.registerRelease(thrower);
  memHooks.registerRelease(recorder);
  try {
    const a = probe.probe_map(BigInt(PAGE), 1), b = probe.probe_map(BigInt(PAGE), 1);
    probe.probe_munmap(a, BigInt(PAGE));
    probe.probe_munmap(b, BigInt(PAGE));
    assert.throws(() => memHooks.flush(), AggregateError);
    assert.ok(got.includes(address(a)));
    assert.ok(got.includes(address(b)));
    assert.equal(memHooks.flush(), 0, "events were delivered twice");
  } finally {
    memHooks.unregisterRelease(thrower);
    memHooks.unregisterRelease(recorder);
  }
});

Deno.test("callbacks that register and unregister during a delivery: each event goes to the list as it is then", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  const got = { selfRemover: 0, kept: 0, added: 0 };
  const added: MemHookCallback = () => got.added++;
  const selfRemover: MemHookCallback = () => {
    got.selfRemover++;
    memHooks.unregisterRelease(selfRemover);
    memHooks.registerRelease(added);
  };
  const kept: MemHookCallback = () => got.kept++;
  memHooks.flush();
  assert.equal(memHooks.registerRelease(selfRemover), OPAL_SUCCESS);
  assert.equal(memHooks.registerRelease(kept), OPAL_SUCCESS);
  try {
    const a = probe.probe_map(BigInt(PAGE), 1), b = probe.probe_map(BigInt(PAGE), 1);
    probe.probe_munmap(a, BigInt(PAGE));
    probe.probe_munmap(b, BigInt(PAGE));
    // Unregistering from outside flushes first: the callback removes itself during that flush.
    assert.equal(memHooks.unregisterRelease(selfRemover), OPAL_SUCCESS);
    assert.equal(got.selfRemover, 1, "a removed callback got a later event");
    assert.ok(got.kept >= 2, `the other callback got ${got.kept} of 2 events`);
    assert.ok(got.added >= 1, "a callback added during the delivery missed the next event");
    const before = { ...got };
    const c = probe.probe_map(BigInt(PAGE), 1);
    probe.probe_munmap(c, BigInt(PAGE));
    memHooks.flush();
    assert.ok(got.kept > before.kept, "the other callback was removed with the first");
    assert.ok(got.added > before.added, "the added callback was removed with the first");
    assert.equal(got.selfRemover, 1);
  } finally {
    memHooks.unregisterRelease(kept);
    memHooks.unregisterRelease(added);
  }
});

Deno.test("flushIfPending returns 0 with nothing queued, and delivers otherwise", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  let n = 0;
  const count: MemHookCallback = () => n++;
  memHooks.registerRelease(count);
  try {
    memHooks.flush();
    assert.equal(memHooks.flushIfPending(), 0);
    const p = probe.probe_map(BigInt(PAGE), 1);
    probe.probe_munmap(p, BigInt(PAGE));
    assert.ok(memHooks.flushIfPending() >= 1);
    assert.ok(n >= 1);
  } finally {
    memHooks.unregisterRelease(count);
  }
});

Deno.test("the timer delivers without flush, and does not keep the process alive", async () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  const target = probe.probe_map(BigInt(PAGE), 1);
  const at = address(target);
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const waiter: MemHookCallback = (addr) => {
    if (addr === at) resolve(true);
  };
  memHooks.registerRelease(waiter);
  try {
    probe.probe_munmap(target, BigInt(PAGE));
    const timeout = setTimeout(() => resolve(false), 2000);
    const delivered = await promise;
    clearTimeout(timeout);
    assert.ok(delivered, "no delivery within 2 s without flush()");
  } finally {
    memHooks.unregisterRelease(waiter);
  }
  // The same timer must not keep a process alive: a child that registers and returns exits.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { memHooks } from "${new URL("../../hooks/mod.ts", import.meta.url)}";
       memHooks.init(); memHooks.registerRelease(() => {}); console.log("registered");`,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const started = performance.now();
  const out = await child.output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "registered");
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.ok(performance.now() - started < 20_000);
});

Deno.test({
  name: "prologue decoder: patches known prologues, refuses foreign jumps and unknown code",
  ignore: Deno.build.arch !== "x86_64",
}, () => {
  const decode = (bytes: number[]) => {
    const covered = new BigUint64Array(1);
    const status = memhooksNative().memhooks_decode_prologue(
      new Uint8Array(bytes),
      BigInt(bytes.length),
      new Uint8Array(covered.buffer),
    );
    return { status, covered: Number(covered[0]) };
  };
  // glibc 2.36's munmap: mov eax, 11; syscall.
  assert.deepEqual(decode([0xb8, 0x0b, 0, 0, 0, 0x0f, 0x05]), { status: PATCH_OK, covered: 5 });
  // mmap: mov r10d, ecx; test r9d, 0xfff; jne.
  assert.deepEqual(
    decode([0x41, 0x89, 0xca, 0x41, 0xf7, 0xc1, 0xff, 0x0f, 0, 0, 0x75, 0x14]),
    { status: PATCH_OK, covered: 10 },
  );
  // sbrk: push r12; mov r12, [rip + x].
  assert.deepEqual(
    decode([0x41, 0x54, 0x4c, 0x8b, 0x25, 1, 2, 3, 4, 0x80]),
    { status: PATCH_OK, covered: 9 },
  );
  // glibc 2.31's sbrk: push r12; push rbp; mov rbp, [rip + d32].
  assert.deepEqual(
    decode([0x41, 0x54, 0x55, 0x48, 0x8b, 0x2d, 0x9e, 0xcc, 0x0d, 0x00, 0x53]),
    { status: PATCH_OK, covered: 10 },
  );
  // glibc 2.41's sbrk: cmp byte [rip + d32], 0; and its mremap: sub rsp, 0x58; mov [rsp+0x40], r8.
  assert.deepEqual(
    decode([0x80, 0x3d, 0x82, 0x5e, 0x0e, 0x00, 0x00, 0x41, 0x54]),
    { status: PATCH_OK, covered: 7 },
  );
  assert.deepEqual(
    decode([0x48, 0x83, 0xec, 0x58, 0x4c, 0x89, 0x44, 0x24, 0x40, 0x64]),
    { status: PATCH_OK, covered: 9 },
  );
  // An instruction cut short by the end of the bytes is unknown, never read past.
  assert.equal(decode([0x80, 0x3d, 0x82, 0x5e]).status, PATCH_UNKNOWN);
  // endbr64 then mov eax, imm32.
  assert.deepEqual(
    decode([0xf3, 0x0f, 0x1e, 0xfa, 0xb8, 1, 0, 0, 0, 0x0f, 0x05]),
    { status: PATCH_OK, covered: 9 },
  );
  // Already redirected by another interceptor.
  assert.equal(decode([0xe9, 1, 2, 3, 4, 0x0f, 0x05]).status, PATCH_FOREIGN);
  assert.equal(decode([0xeb, 0x10, 0x90, 0x90, 0x90]).status, PATCH_FOREIGN);
  assert.equal(decode([0xff, 0x25, 0, 0, 0, 0]).status, PATCH_FOREIGN);
  assert.equal(
    decode([0x49, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 0x41, 0xff, 0xe3]).status,
    PATCH_FOREIGN,
  );
  assert.equal(decode([0xcc, 0x0b, 0, 0, 0]).status, PATCH_FOREIGN);
  // A syscall or call before 5 bytes are covered, or an instruction it does not know.
  assert.equal(decode([0x0f, 0x05, 0xc3, 0x90, 0x90]).status, PATCH_UNKNOWN);
  assert.equal(decode([0x55, 0xe8, 0, 0, 0, 0]).status, PATCH_UNKNOWN);
  assert.equal(decode([0xc5, 0xf8, 0x77, 0x90, 0x90, 0x90]).status, PATCH_UNKNOWN, "VEX form");
  // Any ordinary instruction the compiler emits decodes: mov rbp, rsp; nop; nop; nop.
  assert.deepEqual(decode([0x48, 0x89, 0xe5, 0x90, 0x90, 0x90]), { status: PATCH_OK, covered: 5 });
  assert.equal(decode([0xb8, 0x0b, 0]).status, PATCH_UNKNOWN, "truncated instruction");
});

Deno.test({
  name: "aarch64 decoder: finds the one svc every path from the entry reaches, refuses the rest",
  ignore: Deno.build.arch !== "aarch64",
}, () => {
  // Instruction words, stored little-endian into 4-aligned memory as in libc's text.
  const decode = (words: number[]) => {
    const code = new Uint32Array(words);
    const covered = new BigUint64Array(1);
    const status = memhooksNative().memhooks_decode_prologue(
      new Uint8Array(code.buffer),
      BigInt(code.byteLength),
      new Uint8Array(covered.buffer),
    );
    return { status, covered: Number(covered[0]) };
  };
  const NOP = 0xd503201f, SVC = 0xd4000001, RET = 0xd65f03c0;
  const CMN = 0xb13ffc1f, BCS = 0x54000042, ERR = 0x17fcfeb2; // cmn; b.cs; b __syscall_error
  // glibc 2.36's munmap: nop; mov x8, #215; svc #0; the error check after it.
  const munmap = [NOP, 0xd2801ae8, SVC, CMN, BCS, RET, ERR];
  assert.deepEqual(decode(munmap), { status: PATCH_OK, covered: 12 });
  // brk: mov x1, x0; mov x8, #214; svc #0.
  assert.deepEqual(decode([0xaa0003e1, 0xd2801ac8, SVC, RET]), { status: PATCH_OK, covered: 12 });
  // mmap: tst x5, #0xfff; b.ne (the EINVAL path, past the svc); sxtw x3 times; mov x8; svc.
  const mmap = [0xf2402cbf, 0x54000121, 0x93407c42, 0x93407c63, 0x93407c84, 0xd2801bc8, SVC];
  assert.deepEqual(decode([...mmap, 0xb140041f, 0x54000128, RET, 0x900005c1, RET]), {
    status: PATCH_OK,
    covered: 28,
  });
  // mremap: a frame with x29/x30 saved and the stack guard, a va_arg path that branches back,
  // then mov x4, x5; mov x8, #216; svc.
  const mremap = [
    0xd10143ff,
    0xf0000585,
    0xf94734a5,
    0xa9037bfd,
    0x9100c3fd,
    0xf90027e4,
    0xf94000a6,
    0xf90017e6,
    0xd2800006,
    0x71001c7f,
    0x54000388,
    0xd2800005,
    0x721f047f,
    0x54000221,
    0x93407c63,
    0xaa0503e4,
    0xd2801b08,
    SVC,
    0xb140041f,
    0x54000348,
    0xa9437bfd,
    0x910143ff,
    RET,
    0xd503201f,
    0xd503201f,
    0xd503201f,
    0xd503201f,
    0xd503201f,
    0xd503201f,
    0xd503201f,
    0x910103e6,
    0xaa0403e5,
    0x910143e7,
    0x128000e4,
    0xa9009fe7,
    0xf9000fe6,
    0x29047fe4,
    0x17ffffe9,
    RET,
  ];
  assert.deepEqual(decode(mremap), { status: PATCH_OK, covered: 72 });
  // The va_arg path clobbering a callee-saved register (x19) before it joins: refused.
  const clobbered = [...mremap];
  clobbered[31] = 0xaa0403f3; // mov x19, x4
  assert.equal(decode(clobbered).status, PATCH_UNKNOWN);
  // Already redirected: B, ldr x16 literal (ldr x16; br x16), movz x15 (UCX's form), brk.
  assert.equal(decode([0x14000010, ...munmap]).status, PATCH_FOREIGN);
  assert.equal(decode([0x58000050, 0xd61f0200, ...munmap]).status, PATCH_FOREIGN);
  assert.equal(decode([0xd280000f, ...munmap]).status, PATCH_FOREIGN);
  assert.equal(decode([0xd4200000, ...munmap]).status, PATCH_FOREIGN);
  // sbrk's stp with writeback moves sp before any svc; a call (bl) clobbers x30; paciasp signs
  // it; no svc; two svcs; an svc whose x8 is unknown.
  assert.equal(decode([0xa9bd7bfd, 0xd2801ae8, SVC, RET]).status, PATCH_UNKNOWN);
  assert.equal(decode([0x94000010, 0xd2801ae8, SVC, RET]).status, PATCH_UNKNOWN);
  assert.equal(decode([0xd503233f, 0xd2801ae8, SVC, RET]).status, PATCH_UNKNOWN);
  assert.equal(decode([NOP, 0xd2801ae8, RET]).status, PATCH_UNKNOWN);
  assert.equal(decode([0xd2801ae8, SVC, SVC, RET]).status, PATCH_UNKNOWN);
  assert.equal(decode([0xaa0003e8, SVC, RET]).status, PATCH_UNKNOWN);
  // A conditional branch back to the entry: the paths disagree on x8.
  assert.equal(decode([NOP, 0xd2801ae8, 0x54ffffc1, SVC, RET]).status, PATCH_UNKNOWN);
});

Deno.test("unregister waits for a callback running on another thread to finish", async () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  probe.probe_reset();
  const p = probe.probe_map(BigInt(PAGE), 7);
  probe.probe_watch(p, BigInt(PAGE), 7);
  assert.equal(probe.probe_register_slow(), OPAL_SUCCESS);
  assert.equal(probe.probe_munmap_async(p, BigInt(PAGE)), 0);
  for (let i = 0; i < 500 && probe.probe_slow_running() === 0; i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.equal(probe.probe_slow_running(), 1, "the slow callback never started");
  assert.equal(probe.probe_unregister_slow_then_running(), 0, "unregister returned mid-callback");
  assert.equal(probe.probe_join_async(), 0);
  probe.probe_reset();
});

Deno.test("a C callback can unregister itself from inside its own call", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  probe.probe_reset();
  const p = probe.probe_map(BigInt(PAGE), 7);
  probe.probe_watch(p, BigInt(PAGE), 7);
  assert.equal(probe.probe_register_self_unregistering(), OPAL_SUCCESS);
  probe.probe_munmap(p, BigInt(PAGE));
  assert.equal(probe.probe_self_unregister_rc(), OPAL_SUCCESS);
  probe.probe_reset();
});

Deno.test("two threads unregistering from inside callbacks at once: one waits, one is refused", () => {
  assert.equal(memHooks.init(), OPAL_SUCCESS);
  // In a child process: if they waited for each other, its alarm would end it (142).
  assert.equal(probe.probe_fork_two_unregisters_in_callbacks(), 0);
});

Deno.test("the libraries that run inside hooks are bound at load (no lazy resolver in a hook)", async () => {
  for (const name of ["libopal_memhooks.so", "libdeno_rdma_rcache.so"]) {
    const path = new URL(`../../build/${name}`, import.meta.url).pathname;
    const out = await new Deno.Command("readelf", { args: ["-d", path] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(new TextDecoder().decode(out.stdout), /\(FLAGS\)\s+.*BIND_NOW/, name);
  }
});
