/**
 * Memory regions: memory registered with a protection domain (ibv_reg_mr / ibv_dereg_mr).
 *
 * Access defaults to local write only; remote read, write and atomic access are only granted when
 * asked for. A region registered from an ArrayBuffer or typed array keeps that buffer alive while
 * it is registered (the buffer is referenced by the region's native state, which outlives the
 * handle until deregistration, even when the handle is leaked).
 *
 * `close()` is idempotent; `deregister()` is the explicit form and throws RdmaError EBADF when the
 * region is already deregistered.
 *
 * @module
 */
import { addressOfPointer, pointerAt, pointerOf } from "../ffi/pointers.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { Access, ACCESS_MASK } from "./constants.ts";
import { Errno, lastError, RdmaError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { integerIn, optionsObject } from "./validate.ts";
import { type MemoryTarget, readMemoryTarget } from "./memory_target.ts";

/** Memory to register (the contract of memory_target.ts). */
export type MemorySource = MemoryTarget;

/** Options of `ProtectionDomain.registerMemory`. */
export interface RegisterOptions {
  /** IBV_ACCESS_* bits (`Access`). Default: `Access.LOCAL_WRITE`. */
  access?: number;
  /** Byte offset into a buffer source. Default 0. */
  offset?: number;
  /** Bytes to register from `offset`. Default: the rest of the buffer. */
  length?: number;
}

interface Resolved {
  address: Deno.PointerObject;
  length: number;
  bytes: Uint8Array | null;
  keepAlive: unknown;
}

function resolve(source: unknown, options: Partial<RegisterOptions>): Resolved {
  const target = readMemoryTarget(source);
  if (target.buffer === null) {
    if (options.offset !== undefined || options.length !== undefined) {
      throw new TypeError("offset and length options apply to buffers; give {address, length}");
    }
    const pointer = pointerAt(target.key!)!; // not null: the address is at least 1
    return { address: pointer, length: target.length, bytes: null, keepAlive: null };
  }
  const { buffer, offset: base, length: size } = target;
  const offset = options.offset === undefined ? 0 : integerIn("offset", options.offset, 0, size);
  const length = options.length === undefined
    ? size - offset
    : integerIn("length", options.length, 1, Number.MAX_SAFE_INTEGER);
  if (length <= 0) throw new RangeError(`cannot register 0 bytes (buffer of ${size} bytes)`);
  if (offset + length > size) {
    throw new RangeError(`offset ${offset} + length ${length} exceeds the ${size}-byte buffer`);
  }
  const bytes = new Uint8Array(buffer, base + offset, length);
  const address = pointerOf(bytes);
  if (address === null) throw new RangeError("the buffer has no backing memory");
  return { address, length, bytes, keepAlive: buffer };
}

/** A registered memory region (struct ibv_mr). */
export class MemoryRegion extends NativeHandle {
  /** Local key, for scatter/gather elements. */
  readonly lkey: number;
  /** Remote key, for the peer's RDMA and atomic operations. */
  readonly rkey: number;
  /** Start address of the registered range. */
  readonly address: bigint;
  /** Length in bytes. */
  readonly length: number;
  /** The IBV_ACCESS_* bits it was registered with. */
  readonly access: number;
  /** The registered bytes when registered from a buffer (null for an address). */
  readonly bytes: Uint8Array | null;
  /** The protection domain it was registered in: only its queue pairs can use the lkey. */
  readonly pd: ProtectionDomain;

  private constructor(
    pd: ProtectionDomain,
    pointer: Deno.PointerObject,
    resolved: Resolved,
    access: number,
  ) {
    super(
      pointer,
      "MemoryRegion",
      "ibv_dereg_mr",
      (p) => verbsNative().drv_dereg_mr(p),
      [pd],
      resolved.keepAlive,
    );
    const shim = verbsNative();
    this.lkey = shim.drv_mr_lkey(pointer);
    this.rkey = shim.drv_mr_rkey(pointer);
    this.address = addressOfPointer(resolved.address);
    this.length = resolved.length;
    this.access = access;
    this.bytes = resolved.bytes;
    this.pd = pd;
  }

  /** ibv_reg_mr. Prefer `ProtectionDomain.registerMemory`. */
  static register(
    pd: ProtectionDomain,
    source: MemorySource,
    options?: RegisterOptions,
  ): MemoryRegion {
    NativeHandle.expect(pd, "ProtectionDomain", "pd");
    const opts = optionsObject("options", options);
    const access = opts.access === undefined
      ? Access.LOCAL_WRITE
      : integerIn("access", opts.access, 0, 0x7fffffff);
    if ((access & ~ACCESS_MASK) !== 0) {
      throw new RangeError(`access has unknown bits: 0x${(access & ~ACCESS_MASK).toString(16)}`);
    }
    const resolved = resolve(source, opts);
    const pdPointer = pd.pointerFor("ibv_reg_mr");
    const pointer = verbsNative().drv_reg_mr(
      pdPointer,
      resolved.address,
      BigInt(resolved.length),
      access,
    );
    if (pointer === null) {
      throw lastError("ibv_reg_mr", `${resolved.length} bytes, access 0x${access.toString(16)}`);
    }
    return new MemoryRegion(pd, pointer, resolved, access);
  }

  /**
   * True when the registered ArrayBuffer was detached (`transfer()`, or a transfer list of
   * `postMessage`/`structuredClone`): its memory may be freed and reused while the region still
   * names it, so it must be deregistered. Always false for a region registered from an address.
   */
  get detached(): boolean {
    // A SharedArrayBuffer has no `detached` (never is): undefined.
    return this.bytes !== null && (this.bytes.buffer as ArrayBuffer).detached === true;
  }

  /**
   * The native pointer, for a call of `verb`; throws RdmaError EBADF after close, and when the
   * registered ArrayBuffer was detached (nothing may be posted through it any more).
   */
  override pointerFor(verb: string): Deno.PointerObject {
    const pointer = super.pointerFor(verb);
    if (this.detached) {
      throw new RdmaError(
        verb,
        Errno.EBADF,
        "the registered ArrayBuffer was detached (transferred); deregister the region",
      );
    }
    return pointer;
  }

  /** True when [address, address + length) lies inside this region. */
  contains(address: bigint, length: number): boolean {
    return address >= this.address &&
      address + BigInt(length) <= this.address + BigInt(this.length);
  }

  /** ibv_dereg_mr. Throws RdmaError EBADF if already deregistered (close() does not). */
  deregister(): void {
    if (this.closed) {
      throw new RdmaError("ibv_dereg_mr", Errno.EBADF, "MemoryRegion is already deregistered");
    }
    this.close();
  }
}
