/**
 * Protection domains: the parent of memory regions, queue pairs, shared receive queues and address
 * handles, which must be closed before it (see handle.ts).
 *
 * @module
 */
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { AddressHandle, type PathOptions } from "./address_handle.ts";
import type { Context } from "./context.ts";
import { lastError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import { MemoryRegion, type MemorySource, type RegisterOptions } from "./memory_region.ts";
import { QueuePair, type QueuePairOptions } from "./queue_pair.ts";
import { SharedReceiveQueue, type SharedReceiveQueueOptions } from "./shared_receive_queue.ts";

/** A protection domain (struct ibv_pd). */
export class ProtectionDomain extends NativeHandle {
  /** The context it was allocated on. */
  readonly context: Context;

  private constructor(pointer: Deno.PointerObject, context: Context) {
    super(pointer, "ProtectionDomain", "ibv_dealloc_pd", (p) => verbsNative().drv_dealloc_pd(p), [
      context,
    ]);
    this.context = context;
  }

  /** ibv_alloc_pd. Prefer `Context.allocProtectionDomain()`. */
  static allocate(context: Context): ProtectionDomain {
    NativeHandle.expect(context, "Context", "context");
    const pointer = verbsNative().drv_alloc_pd(context.pointerFor("ibv_alloc_pd"));
    if (pointer === null) throw lastError("ibv_alloc_pd");
    return new ProtectionDomain(pointer, context);
  }

  /**
   * ibv_reg_mr: registers a buffer (or part of it with `offset`/`length`) or `{address, length}`.
   * Access defaults to `Access.LOCAL_WRITE`; ask for remote access explicitly.
   */
  registerMemory(source: MemorySource, options?: RegisterOptions): MemoryRegion {
    return MemoryRegion.register(this, source, options);
  }

  /** ibv_create_qp. The queue pair starts in RESET; `connect()` brings it to RTS. */
  createQueuePair(options: QueuePairOptions): QueuePair {
    return QueuePair.create(this, this.context, options);
  }

  /** ibv_create_srq: receives that several of this domain's queue pairs share (`srq` option). */
  createSharedReceiveQueue(options?: SharedReceiveQueueOptions): SharedReceiveQueue {
    return SharedReceiveQueue.create(this, options);
  }

  /** ibv_create_ah: a UD destination. */
  createAddressHandle(path: PathOptions): AddressHandle {
    return AddressHandle.create(this, path);
  }
}
