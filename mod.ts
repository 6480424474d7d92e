/**
 * deno-rdma: RDMA verbs for Deno, with a lazy-unpin registration cache kept correct by native
 * memory-release hooks.
 *
 * - Verbs: {@link listDevices}, {@link openDevice}, {@link Context}, {@link ProtectionDomain},
 *   {@link MemoryRegion}, {@link CompletionQueue}, {@link QueuePair}, {@link RdmaError}, ...
 * - Registration cache: {@link RegistrationCache}, {@link Registration}, and
 *   {@link createRegistrarDouble} for tests without a device.
 * - Memory hooks (Open MPI's opal mem_hooks API): {@link memHooks} and the `OPAL_*` constants.
 *
 * @module
 */

export * from "./verbs/mod.ts";
export {
  type CachedSge,
  type CacheTarget,
  createRegistrarDouble,
  RegistrarDouble,
  type RegistrarDoubleCounters,
  type RegistrarDoubleOptions,
  Registration,
  RegistrationCache,
  type RegistrationCacheOptions,
  type RegistrationCacheStats,
} from "./cache/mod.ts";
export * from "./hooks/mod.ts";
export { NativeLibraryError } from "./ffi/loader.ts";
