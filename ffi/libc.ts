/**
 * The `Deno.dlopen` table of the C library: the memory calls that tests, benchmarks and examples
 * make themselves (and setrlimit, for tests that open thousands of descriptors) (so the memory hooks see them as any program's would), and the dynamic linker's
 * look-ups. Opened once, on first use.
 *
 * @module
 */

/** libc's memory and dynamic-linking functions, by C name. */
export const libcSymbols = {
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** int munmap(void *addr, size_t length) */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /** int madvise(void *addr, size_t length, int advice) */
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /** void *mremap(void *old_address, size_t old_size, size_t new_size, int flags, void *new_address) */
  mremap: { parameters: ["pointer", "usize", "usize", "i32", "pointer"], result: "pointer" },
  /** void *malloc(size_t size) */
  malloc: { parameters: ["usize"], result: "pointer" },
  /** void free(void *ptr) */
  free: { parameters: ["pointer"], result: "void" },
  /** int malloc_trim(size_t pad) */
  malloc_trim: { parameters: ["usize"], result: "i32" },
  /** int mallopt(int param, int value) */
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  /** int setrlimit(int resource, const struct rlimit *rlim) (struct rlimit: two rlim_t, 64-bit) */
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The dynamic linker's look-ups (in libc from glibc 2.34, in libdl before). */
export const dlSymbols = {
  /** void *dlopen(const char *filename, int flags) */
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  /** void *dlsym(void *handle, const char *symbol) */
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let libcTable: Deno.DynamicLibrary<typeof libcSymbols>["symbols"] | undefined;
let dlTable: Deno.DynamicLibrary<typeof dlSymbols>["symbols"] | undefined;

/** libc's functions (opened on first use). */
export function libc(): Deno.DynamicLibrary<typeof libcSymbols>["symbols"] {
  libcTable ??= Deno.dlopen("libc.so.6", libcSymbols).symbols;
  return libcTable;
}

/** dlopen and dlsym: from libc, or libdl on a C library older than glibc 2.34. */
export function dl(): Deno.DynamicLibrary<typeof dlSymbols>["symbols"] {
  if (dlTable === undefined) {
    try {
      dlTable = Deno.dlopen("libc.so.6", dlSymbols).symbols;
    } catch {
      dlTable = Deno.dlopen("libdl.so.2", dlSymbols).symbols;
    }
  }
  return dlTable;
}
