/**
 * Protection domains: the parent of memory regions, queue pairs and address handles, which must
 * be closed before it (see handle.ts).
 *
 * @module
 */
import { verbsShim } from "../ffi/verbs_symbols.ts";
import { lastError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import { MemoryRegion, type MemoryRegion as MemoryRegionType } from "./memory_region.ts";
import type { MemorySource, RegisterOptions } from "./memory_region.ts";

/** A protection domain (struct ibv_pd). */
export class ProtectionDomain extends NativeHandle {
  private constructor(pointer: Deno.PointerObject, parent: NativeHandle) {
    super(pointer, "ProtectionDomain", "ibv_dealloc_pd", (p) => verbsShim().drv_dealloc_pd(p), [
      parent,
    ]);
  }

  /** ibv_alloc_pd. Prefer `Context.allocProtectionDomain()`. */
  static allocate(context: NativeHandle): ProtectionDomain {
    const pointer = verbsShim().drv_alloc_pd(context.pointerFor("ibv_alloc_pd"));
    if (pointer === null) throw lastError("ibv_alloc_pd");
    return new ProtectionDomain(pointer, context);
  }

  /**
   * ibv_reg_mr: registers a buffer (or part of it with `offset`/`length`) or `{address, length}`.
   * Access defaults to `Access.LOCAL_WRITE`; ask for remote access explicitly.
   */
  registerMemory(source: MemorySource, options?: RegisterOptions): MemoryRegionType {
    return MemoryRegion.register(this, source, options);
  }
}
