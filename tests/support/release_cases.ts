/**
 * The releases the coexistence tests make after another interceptor arrived: munmap, madvise
 * DONTNEED, mremap shrinking in place, mmap MAP_FIXED over the block, and free of a block malloc
 * mapped for itself; each followed by new memory at the same address.
 *
 * @module
 */
import {
  free,
  MADV_DONTNEED,
  madvise,
  malloc,
  mapAnonymous,
  mapOver,
  type NativeBlock,
  remap,
  unmap,
} from "./native_memory.ts";

const MiB = 1 << 20;

export const RELEASE_CASES = ["munmap", "madvise", "mremap", "mmapFixed", "free"] as const;

/** A block cached before the release, and the release, which returns the new memory. */
export interface PreparedRelease {
  block: NativeBlock;
  wasCached: boolean;
  release(): NativeBlock;
}

/** A 1 MiB block for each case, passed to `cached` (which caches it) now. */
export function prepareReleases(
  cached: (b: NativeBlock) => boolean,
): Record<(typeof RELEASE_CASES)[number], PreparedRelease> {
  const prepared = {} as Record<(typeof RELEASE_CASES)[number], PreparedRelease>;
  for (const name of RELEASE_CASES) {
    if (name === "free") {
      const size = 64 * MiB; // above glibc's largest mmap threshold: its own mapping
      const b = malloc(size);
      const part: NativeBlock = { ...b, length: MiB, bytes: b.bytes.subarray(0, MiB) };
      prepared[name] = {
        block: part,
        wasCached: cached(part),
        release() {
          free(b);
          const again = malloc(size);
          return { ...again, length: MiB, bytes: again.bytes.subarray(0, MiB) };
        },
      };
      continue;
    }
    const b = mapAnonymous(MiB);
    prepared[name] = {
      block: b,
      wasCached: cached(b),
      release() {
        switch (name) {
          case "munmap":
            unmap(b);
            return mapAnonymous(MiB, b.address);
          case "madvise":
            madvise(b, 0, MiB, MADV_DONTNEED);
            return b;
          case "mremap": {
            // Shrunk in place: the tail is unmapped, then mapped again. (ucm 1.13's mremap drops
            // the new address, so MREMAP_FIXED fails while it owns mremap.)
            const half = remap(b, MiB / 2);
            mapAnonymous(MiB / 2, half.address + BigInt(MiB / 2));
            return { ...b, address: half.address };
          }
          default:
            return mapOver(b);
        }
      },
    };
  }
  return prepared;
}
