/**
 * A cached registration, as `RegistrationCache.get` hands it out: its keys and bytes, and the
 * release that gives it back to the cache.
 *
 * @module
 */
import { CHECK_POSTABLE } from "../verbs/scatter_gather.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { releasedError } from "./errors.ts";
import type { RegistrationCache } from "./registration_cache.ts";

/** @internal RegistrationCache's release of a region handle (see RegistrationCache). */
export const PUT: unique symbol = Symbol("put");
/** @internal RegistrationCache's [start, end) of a held region handle. */
export const BOUNDS: unique symbol = Symbol("bounds");
/** @internal Proof that a Registration is being made by the cache (see its constructor). */
export const MADE_BY_CACHE: unique symbol = Symbol("RegistrationCache");

/** A cached registration: use `lkey`/`rkey`, then `release()` (or `using`). */
export class Registration implements Disposable {
  /** Local key, for scatter/gather elements. */
  readonly lkey: number;
  /** Remote key, for a peer's RDMA READ/WRITE (only with remote access). */
  readonly rkey: number;
  /** Bytes asked for (from `address`). */
  readonly length: number;
  /** IBV_ACCESS_* bits of the underlying region (a superset of those asked for). */
  readonly access: number;
  /** True when the cache already had a covering region. */
  readonly hit: boolean;
  readonly #address: number;
  readonly #handle: number;
  #cache: RegistrationCache | null;
  /** Keeps a registered buffer alive (and its memory mapped) while held. */
  #target: unknown;

  /** Made by RegistrationCache.get only (its handle goes to native code on release). */
  constructor(
    token: typeof MADE_BY_CACHE,
    cache: RegistrationCache,
    target: unknown,
    address: number,
    length: number,
    hit: boolean,
    handle: number,
    lkey: number,
    rkey: number,
    access: number,
  ) {
    if (token !== MADE_BY_CACHE) {
      throw new TypeError("a Registration comes from RegistrationCache.get");
    }
    this.#cache = cache;
    this.#target = target;
    this.#address = address;
    this.length = length;
    this.hit = hit;
    this.#handle = handle;
    this.lkey = lkey;
    this.rkey = rkey;
    this.access = access;
  }

  /** First byte asked for. */
  get address(): bigint {
    return BigInt(this.#address);
  }

  /** First byte of the registered region (merging can make it larger than what was asked). */
  get regionAddress(): bigint {
    return BigInt(this.#bounds()[0]);
  }

  /** Bytes in the registered region. */
  get regionLength(): number {
    const [start, end] = this.#bounds();
    return end - start;
  }

  #bounds(): [number, number] {
    const cache = this.#cache;
    if (cache === null) throw releasedError("Registration.region");
    return cache[BOUNDS](this.#handle);
  }

  /** True after `release()`. */
  get released(): boolean {
    return this.#cache === null;
  }

  /** Gives the registration back to the cache; a second call throws RdmaError EBADF. */
  release(): void {
    const cache = this.#cache;
    if (cache === null) throw releasedError("Registration.release");
    this.#cache = null;
    this.#target = null;
    cache[PUT](this.#handle);
  }

  /** Releases unless already released. */
  [Symbol.dispose](): void {
    if (this.#cache !== null) this.release();
  }

  /** @internal Posting it as a scatter/gather element: RdmaError EBADF once released. */
  [CHECK_POSTABLE](verb: string): void {
    if (this.#cache === null) {
      throw new RdmaError(verb, Errno.EBADF, "the cached registration was released");
    }
    if (this.#cache.closed) {
      throw new RdmaError(verb, Errno.EBADF, "the registration cache was closed");
    }
  }
}
