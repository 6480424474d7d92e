/**
 * The lazy-unpin registration cache. (Its registrar double, for tests without a device, is
 * testing/mod.ts.)
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
export { CacheRegistrar } from "./registrar.ts";
