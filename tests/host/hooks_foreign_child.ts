/**
 * Run by hooks_foreign.test.ts in a process of its own: another interceptor patches libc's shmdt
 * first, then the hooks are installed; prints what init reported, as JSON.
 *
 * @module
 */
import { memHooks } from "../../hooks/mod.ts";
import { PAGE, probe } from "./hooks_probe.ts";

const patched = probe.probe_patch_foreign_shmdt();
const initCode = memHooks.init();
const level = memHooks.supportLevel();
const status = Object.fromEntries(memHooks.patchStatus().map((p) => [p.name, p.status]));
const callsBefore = probe.probe_foreign_calls();
const shm = probe.probe_shm_attach(BigInt(PAGE), 1);
const detached = shm === null ? null : probe.probe_shmdt(shm);
console.log(JSON.stringify({
  patched,
  initCode,
  level,
  status,
  firstByte: probe.probe_libc_shmdt_first_byte(),
  detached,
  foreignCalled: probe.probe_foreign_calls() > callsBefore,
}));
memHooks.finalize();
