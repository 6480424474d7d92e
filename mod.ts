/**
 * deno-rdma: RDMA verbs for Deno, with a lazy-unpin registration cache kept correct by native
 * memory-release hooks.
 *
 * - Verbs: {@link listDevices}, {@link openDevice}, {@link Context}, {@link ProtectionDomain},
 *   {@link MemoryRegion}, {@link CompletionQueue}, {@link QueuePair}, {@link RdmaError}, ...
 * - Connection manager: {@link connect}, {@link listen}, {@link CmConnection}, {@link Listener}.
 * - Registration cache: {@link RegistrationCache}, {@link Registration}, and (testing/mod.ts)
 *   {@link createRegistrarDouble}, a test double for code without a device.
 * - Memory hooks (Open MPI's opal mem_hooks API): {@link memHooks} and the `OPAL_*` constants.
 *
 * @module
 */

export * from "./verbs/mod.ts";
export * from "./cm/mod.ts";
export {
  type CachedSge,
  CacheRegistrar,
  type CacheTarget,
  Registration,
  RegistrationCache,
  type RegistrationCacheOptions,
  type RegistrationCacheStats,
} from "./cache/mod.ts";
export {
  createRegistrarDouble,
  RegistrarDouble,
  type RegistrarDoubleCounters,
  type RegistrarDoubleOptions,
} from "./testing/mod.ts";
export * from "./hooks/mod.ts";
export { NativeLibraryError } from "./ffi/loader.ts";
