/**
 * The lazy-unpin registration cache. (Its registrar double, for tests without a device, is
 * testing/mod.ts.)
 *
 * @module
 */
export { type CachedSge, RegistrationCache } from "./registration_cache.ts";
export { Registration } from "./registration.ts";
export type { RegistrationCacheOptions } from "./options.ts";
export type { RegistrationCacheStats } from "./stats.ts";
export type { CacheTarget } from "./targets.ts";
export { CacheRegistrar } from "./registrar.ts";
