/**
 * What a RegistrationCache registers memory with, when not a protection domain's ibv_reg_mr: a
 * native registrar (struct rcache_registrar, cache/native/rcache.h). The registrar double of
 * testing/mod.ts is one.
 *
 * @module
 */

/** @internal The method a CacheRegistrar gives a cache being created its native registrar by. */
export const NATIVE_REGISTRAR: unique symbol = Symbol("nativeRegistrar");

/**
 * A registrar a RegistrationCache can use instead of a ProtectionDomain: native code that
 * registers and deregisters memory for it (the registrar double, `createRegistrarDouble()`).
 */
export abstract class CacheRegistrar {
  /**
   * @internal The struct rcache_registrar * for a cache being created over this registrar
   * (called once per cache, right before it is created).
   */
  abstract [NATIVE_REGISTRAR](): Deno.PointerValue;
}
