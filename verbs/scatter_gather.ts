/**
 * Scatter/gather lists: validating a request's `sge` and encoding it into a descriptor's
 * `struct ibv_sge` array, for the send and receive encodings of queue pairs and shared receive
 * queues.
 *
 * @module
 */
import { MAX_SGE, SGE } from "../ffi/records/verbs.ts";
import { Errno, RdmaError } from "./errors.ts";
import { MemoryRegion } from "./memory_region.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { integerIn } from "./validate.ts";

/** One scatter/gather element: part of a memory region, or a raw address with its lkey. */
export type ScatterGather =
  | { mr: MemoryRegion; offset?: number; length?: number }
  | { address: number | bigint; length: number; lkey: number };

/**
 * The method by which an `{address, length, lkey}` element that stands for a registration it
 * knows (a cache's `Registration`) says whether it may still be posted: it throws (RdmaError
 * EBADF) once it was released. Posting calls it after the request's last getter ran.
 */
export const CHECK_POSTABLE: unique symbol = Symbol("checkPostable");

/** An element that can say whether it may still be posted (see CHECK_POSTABLE). */
export interface Postable {
  [CHECK_POSTABLE](verb: string): void;
}

const TWO_32 = 2 ** 32;

/** A region or address handle of another protection domain: the device would fail the request
 * with a protection error completion, so it is refused at post time. */
export function foreignPdError(verb: string, what: string): RdmaError {
  return new RdmaError(
    verb,
    Errno.EINVAL,
    `${what} belongs to another protection domain than the queue`,
  );
}

/**
 * Encodes scatter/gather lists for one queue (a queue pair or a shared receive queue of `pd`),
 * and remembers what the last list held, so posting allocates nothing.
 */
export class SgeWriter {
  /** Bytes the last list described. */
  bytes = 0;
  /** The regions the last list used: the first `#regionCount` slots (written in place, so that
   * encoding allocates nothing; emptying the array would drop its storage). */
  readonly #regions: (MemoryRegion | null)[] = new Array(MAX_SGE).fill(null);
  #regionCount = 0;
  /** Likewise the elements that check themselves (see CHECK_POSTABLE). */
  readonly #postables: (Postable | null)[] = new Array(MAX_SGE).fill(null);
  #postableCount = 0;

  /** A request is being encoded with this writer (see `begin`). */
  #busy = false;

  /** A writer for the lists of one queue of `pd`. */
  constructor(readonly pd: ProtectionDomain) {}

  /**
   * Starts encoding a request with the queue's shared state (descriptors, this writer): a getter of
   * the request that posts on the same queue again would overwrite it half-way, so that is EBUSY.
   * Pair with `end()` in a `finally`.
   */
  begin(verb: string): void {
    if (this.#busy) {
      throw new RdmaError(
        verb,
        Errno.EBUSY,
        "a getter of the work request posted on the same queue",
      );
    }
    this.#busy = true;
  }

  /** Ends the encoding `begin` started. */
  end(): void {
    this.#busy = false;
  }

  /**
   * Checks the last list's regions and registrations again (EBADF when one was closed, released
   * or its buffer detached): call after the request's last getter ran, before the native post.
   * A getter that ran after an element was checked may have closed it, and a detached buffer's
   * memory may be gone (an inline send would read it).
   */
  recheck(verb: string): void {
    for (let i = 0; i < this.#regionCount; i++) this.#regions[i]!.pointerFor(verb);
    for (let i = 0; i < this.#postableCount; i++) this.#postables[i]![CHECK_POSTABLE](verb);
  }

  /** Drops the last list's regions once posted: a region its user let go must stay collectable. */
  forget(): void {
    for (let i = 0; i < this.#regionCount; i++) this.#regions[i] = null;
    this.#regionCount = 0;
    for (let i = 0; i < this.#postableCount; i++) this.#postables[i] = null;
    this.#postableCount = 0;
  }

  /** A copy of the regions the last list used (for a request that keeps them). */
  regions(): MemoryRegion[] {
    return this.#regions.slice(0, this.#regionCount) as MemoryRegion[];
  }

  /** A copy of the self-checking elements the last list used (for a request that keeps them). */
  postables(): Postable[] {
    return this.#postables.slice(0, this.#postableCount) as Postable[];
  }

  /**
   * Validates `sge` (at most `max` elements; regions open, of this domain, ranges inside them)
   * and writes it at `at` in `view`; returns the element count. TypeError, RangeError, or
   * RdmaError (EBADF for a closed region, EINVAL for another domain's) naming `verb`.
   */
  write(
    view: DataView,
    at: number,
    sge: ScatterGather | readonly ScatterGather[] | undefined,
    max: number,
    verb: string,
  ): number {
    this.bytes = 0;
    this.forget(); // a list that failed half-way left some
    if (sge === undefined) return 0;
    const one = !Array.isArray(sge);
    const count = one ? 1 : (sge as readonly ScatterGather[]).length;
    if (count > max) {
      throw new RangeError(`${count} scatter/gather elements; this queue takes ${max}`);
    }
    let total = 0;
    for (let i = 0; i < count; i++) {
      const e = one ? sge as ScatterGather : (sge as readonly ScatterGather[])[i];
      const o = at + i * SGE.size;
      if (e === null || typeof e !== "object") throw new TypeError("sge must be an object");
      let address: number;
      let length: number;
      let lkey: number;
      if ("mr" in e) {
        // Each field read once: a getter could answer differently, or close the region.
        const mr = e.mr;
        const offsetField = e.offset, lengthField = e.length;
        if (!(mr instanceof MemoryRegion)) throw new TypeError("sge.mr must be a MemoryRegion");
        mr.pointerFor(verb); // EBADF if it was deregistered
        if (mr.pd !== this.pd) throw foreignPdError(verb, "the region");
        this.#regions[this.#regionCount++] = mr;
        const offset = offsetField === undefined
          ? 0
          : integerIn("sge.offset", offsetField, 0, mr.length);
        length = lengthField === undefined
          ? mr.length - offset
          : integerIn("sge.length", lengthField, 1, 0xffffffff);
        if (length <= 0 || offset + length > mr.length) {
          throw new RangeError(
            `sge [${offset}, ${offset + length}) is outside the ${mr.length}-byte region`,
          );
        }
        address = Number(mr.address) + offset;
        lkey = mr.lkey;
      } else if ("lkey" in e) {
        if (CHECK_POSTABLE in e) {
          const postable = e as unknown as Postable;
          postable[CHECK_POSTABLE](verb);
          this.#postables[this.#postableCount++] = postable;
        }
        address = typeof e.address === "bigint" ? Number(e.address) : e.address;
        if (typeof address !== "number" || !Number.isSafeInteger(address) || address <= 0) {
          throw new RangeError("sge.address must be a positive address");
        }
        length = integerIn("sge.length", e.length, 1, 0xffffffff);
        lkey = integerIn("sge.lkey", e.lkey, 0, 0xffffffff);
      } else {
        throw new TypeError("sge must be {mr, offset?, length?} or {address, length, lkey}");
      }
      if (length > 0xffffffff) throw new RangeError("one sge is at most 4 GiB - 1");
      view.setUint32(o + SGE.addr, address % TWO_32, true);
      view.setUint32(o + SGE.addr + 4, Math.floor(address / TWO_32), true);
      view.setUint32(o + SGE.length, length, true);
      view.setUint32(o + SGE.lkey, lkey, true);
      total += length;
    }
    this.bytes = total;
    return count;
  }
}
