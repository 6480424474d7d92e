/**
 * Run by cache_refuse.test.ts in a process of its own: another interceptor patches libc's shmdt
 * before the hooks are installed, so they cannot report every release; creating a cache must then
 * fail. Prints what happened, as JSON.
 *
 * @module
 */
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { probe } from "./hooks_probe.ts";

const patched = probe.probe_patch_foreign_shmdt();
let error: Record<string, unknown> | null = null;
try {
  new RegistrationCache(createRegistrarDouble()).close();
} catch (e) {
  error = { name: (e as Error).name, code: (e as { code?: string }).code, message: String(e) };
}
console.log(JSON.stringify({ patched, error }));
