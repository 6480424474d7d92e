/**
 * The lazy-unpin registration cache and its registrar double.
 *
 * @module
 */
export {
  type CachedSge,
  type CacheTarget,
  Registration,
  RegistrationCache,
  type RegistrationCacheOptions,
  type RegistrationCacheStats,
} from "./registration_cache.ts";
export {
  createRegistrarDouble,
  RegistrarDouble,
  type RegistrarDoubleCounters,
  type RegistrarDoubleOptions,
} from "./registrar_double.ts";
