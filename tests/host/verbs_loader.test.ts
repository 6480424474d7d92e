// The native library loader: search order and the error it gives when nothing loads.
import assert from "node:assert/strict";
import {
  candidatePaths,
  LIB_DIR_ENV,
  NativeLibraryError,
  nativeLibraryPath,
  openNativeLibrary,
} from "../../ffi/loader.ts";

function withEnv(value: string | undefined, body: () => void) {
  const saved = Deno.env.get(LIB_DIR_ENV);
  if (value === undefined) Deno.env.delete(LIB_DIR_ENV);
  else Deno.env.set(LIB_DIR_ENV, value);
  try {
    body();
  } finally {
    if (saved === undefined) Deno.env.delete(LIB_DIR_ENV);
    else Deno.env.set(LIB_DIR_ENV, saved);
  }
}

Deno.test("the environment folder is searched before the local build", () => {
  withEnv("/opt/rdma-libs/", () => {
    const paths = candidatePaths("libdeno_rdma_verbs.so");
    assert.equal(paths[0], "/opt/rdma-libs/libdeno_rdma_verbs.so");
    assert.match(paths[1], /\/build\/libdeno_rdma_verbs\.so$/);
  });
});

Deno.test("the built verbs shim is found in build/", () => {
  withEnv(undefined, () => {
    assert.match(nativeLibraryPath("libdeno_rdma_verbs.so"), /\/build\/libdeno_rdma_verbs\.so$/);
  });
});

Deno.test("a library in the environment folder wins over the local build", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/libdeno_rdma_verbs.so`, "");
    withEnv(dir, () => {
      assert.equal(nativeLibraryPath("libdeno_rdma_verbs.so"), `${dir}/libdeno_rdma_verbs.so`);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a missing library lists every path tried and says how to build", () => {
  withEnv("/nonexistent-rdma-dir", () => {
    assert.throws(
      () => nativeLibraryPath("libnot_there.so"),
      (e: unknown) =>
        e instanceof NativeLibraryError && e.attempts.length === 2 &&
        e.message.includes("/nonexistent-rdma-dir/libnot_there.so") &&
        /build\/libnot_there\.so/.test(e.message) && e.message.includes("deno task build"),
    );
  });
});

Deno.test("a file that is not a library reports the dlopen error for each path", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/libbroken.so`, "not an ELF file");
    withEnv(dir, () => {
      assert.throws(
        () => openNativeLibrary("libbroken.so", { f: { parameters: [], result: "void" } }),
        (e: unknown) =>
          e instanceof NativeLibraryError && e.attempts.length === 2 &&
          e.attempts[0].path === `${dir}/libbroken.so` && e.attempts[0].error.length > 0 &&
          /deno task build/.test(e.message),
      );
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a file name with a slash is a TypeError", () => {
  assert.throws(() => candidatePaths("../libx.so"), TypeError);
  assert.throws(() => candidatePaths(""), TypeError);
});
