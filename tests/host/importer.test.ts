// deno-rdma as a dependency: an application in an empty folder imports it by URL from a loopback
// HTTP server with empty Deno and native caches. Its first run builds the native libraries (and
// says so), later runs load them from the cache, changed C sources make a new entry, two first
// runs build once, a tampered library is refused and rebuilt, each failure names what to do, and
// a prebuilt DENO_RDMA_LIB_DIR works with the documented permissions. On the host
// listDevices() throws RdmaError ENOSYS (no kernel RDMA), which proves the verbs library loaded;
// the registrar double proves the cache and hooks libraries did.
import assert from "node:assert/strict";
import {
  builds,
  DENO,
  entries,
  ENV_FLAG,
  firstUseFlags,
  hostApp,
  laterFlags,
  prebuilt,
  runApp,
  scratch,
  serveTree,
} from "./importer_support.ts";

function assertWorks(run: Awaited<ReturnType<typeof runApp>>) {
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(
    run.result,
    { devices: "ENOSYS", cm: "ENODEV", registrations: 1 },
    run.stdout + run.stderr,
  );
}

Deno.test("first use builds with the documented flags, later runs load from the cache, changed sources build anew", async () => {
  const server = serveTree();
  const changed = serveTree({
    "hooks/native/stats.c":
      Deno.readTextFileSync(new URL("../../hooks/native/stats.c", import.meta.url)) +
      "\n/* a changed source */\n",
  });
  const s = scratch(hostApp(server.base));
  try {
    const env = { DENO_RDMA_CACHE_DIR: s.cache };
    const first = await runApp(s, firstUseFlags(server, s.cache), env);
    assertWorks(first);
    assert.equal(builds(first.stderr), 1, first.stderr);
    assert.match(
      first.stderr,
      new RegExp(`building native libraries into ${s.cache}/[0-9a-f]{32} \\(once\\)`),
    );
    assert.ok(server.requests.includes("hooks/native/opal_memhooks.h"), "headers are fetched too");
    assert.equal(entries(s.cache).length, 1);

    const fetched = server.requests.length;
    const second = await runApp(s, laterFlags(server, s.cache), env);
    assertWorks(second);
    assert.equal(builds(second.stderr), 0, second.stderr);
    assert.equal(server.requests.length, fetched, "a later run fetches nothing");

    Deno.writeTextFileSync(`${s.app}/main.ts`, hostApp(changed.base));
    const third = await runApp(s, firstUseFlags(changed, s.cache), env);
    assertWorks(third);
    assert.equal(builds(third.stderr), 1, third.stderr);
    assert.equal(entries(s.cache).length, 2, "a changed C source is a new entry");
  } finally {
    await server.close();
    await changed.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});

Deno.test("two first runs started together build once", async () => {
  const server = serveTree();
  const s = scratch(hostApp(server.base));
  try {
    const env = { DENO_RDMA_CACHE_DIR: s.cache };
    // Deno's module cache first, so both runs reach the native build at about the same moment.
    const warm = await runApp(s, [], {}, [
      DENO,
      "cache",
      `--allow-import=${server.host}`,
      "main.ts",
    ]);
    assert.equal(warm.code, 0, warm.stderr);
    const runs = await Promise.all([
      runApp(s, firstUseFlags(server, s.cache), env),
      runApp(s, firstUseFlags(server, s.cache), env),
    ]);
    for (const run of runs) assertWorks(run);
    assert.equal(
      builds(runs[0].stderr) + builds(runs[1].stderr),
      1,
      runs.map((r) => r.stderr).join("\n"),
    );
    assert.equal(entries(s.cache).length, 1);
  } finally {
    await server.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});

Deno.test("a library changed after its manifest was written is refused and rebuilt", async () => {
  const server = serveTree();
  const s = scratch(hostApp(server.base));
  try {
    const env = { DENO_RDMA_CACHE_DIR: s.cache };
    assertWorks(await runApp(s, firstUseFlags(server, s.cache), env));
    const [entry] = entries(s.cache);
    const library = `${s.cache}/${entry}/libdeno_rdma_verbs.so`;
    const bytes = Deno.readFileSync(library);
    bytes[bytes.length - 1] ^= 0xff;
    Deno.writeFileSync(library, bytes);
    // Without the right to build, it is refused, not loaded.
    const refused = await runApp(s, laterFlags(server, s.cache), env);
    assert.match(
      refused.stderr,
      /libdeno_rdma_verbs\.so does not match the SHA-256 in manifest\.json/,
    );
    assert.equal(refused.result.error?.reason, "permission", refused.stdout);
    // With it, rebuilt.
    const rebuilt = await runApp(s, firstUseFlags(server, s.cache), env);
    assertWorks(rebuilt);
    assert.equal(builds(rebuilt.stderr), 1, rebuilt.stderr);
    assert.notDeepEqual(Deno.readFileSync(library), bytes);
  } finally {
    await server.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});

Deno.test("each failure says what to do", async () => {
  const server = serveTree();
  const s = scratch(hostApp(server.base));
  try {
    const fail = async (flags: string[], env: Record<string, string>, argv?: string[]) => {
      const run = await runApp(s, flags, { DENO_RDMA_CACHE_DIR: s.cache, ...env }, argv);
      assert.equal(run.result.error?.name, "NativeLibraryError", run.stdout + run.stderr);
      assert.ok((run.result.error?.tried ?? 0) > 0, "the tried list is never empty");
      return run.result.error!;
    };
    const all = ["-A"];

    const noCompiler = await fail(all, { CC: "/nonexistent" });
    assert.equal(noCompiler.reason, "no-compiler");
    assert.match(noCompiler.message, /apt-get install gcc \/ dnf install gcc/);

    // A compiler without rdma-core's headers: fails as gcc does on a missing header.
    const fakeCc = `${s.dir}/cc-without-verbs`;
    Deno.writeTextFileSync(
      fakeCc,
      '#!/bin/sh\nfor a in "$@"; do [ "$a" = --version ] && exec cc --version; done\n' +
        'echo "ffi/native/reg_mr.h:10:10: fatal error: infiniband/verbs.h: No such file or directory" >&2\nexit 1\n',
    );
    Deno.chmodSync(fakeCc, 0o755);
    const noHeader = await fail(all, { CC: fakeCc });
    assert.equal(noHeader.reason, "no-verbs-header");
    assert.match(noHeader.message, /apt-get install libibverbs-dev librdmacm-dev/);
    assert.match(noHeader.message, /dnf install rdma-core-devel/);

    const flags = firstUseFlags(server, s.cache);
    const noRun = await fail(flags.filter((f) => !f.startsWith("--allow-run")), {});
    assert.equal(noRun.reason, "permission");
    assert.equal(noRun.flag, "--allow-run=cc");
    const noNet = await fail(flags.filter((f) => !f.startsWith("--allow-net")), {});
    assert.equal(noNet.flag, `--allow-net=${server.host}`);
    const noWrite = await fail(flags.filter((f) => !f.startsWith("--allow-write")), {});
    assert.equal(noWrite.flag, `--allow-write=${s.cache}`);
    const noRead = await fail(flags.filter((f) => !f.startsWith("--allow-read")), {});
    assert.equal(noRead.flag, `--allow-read=${s.cache}`);
    const noEnv = await fail(flags.filter((f) => f !== ENV_FLAG), {});
    assert.equal(noEnv.flag, ENV_FLAG);
    const noFfi = await fail(flags.filter((f) => f !== "--allow-ffi"), {});
    assert.equal(noFfi.flag, "--allow-ffi");

    // A read-only cache folder: a read-only bind mount in a mount namespace of its own.
    Deno.mkdirSync(s.cache, { recursive: true });
    const readOnly = await fail([], {}, [
      "unshare",
      "-m",
      "sh",
      "-c",
      `mount --bind -o ro "$0" "$0" && exec "$@"`,
      s.cache,
      DENO,
      "run",
      ...flags,
      "main.ts",
    ]);
    assert.equal(readOnly.reason, "cache-read-only");
    assert.ok(
      readOnly.message.includes(`the cache folder ${s.cache} is not writable`),
      readOnly.message,
    );
    assert.match(readOnly.message, /set DENO_RDMA_CACHE_DIR to a writable folder/);
  } finally {
    await server.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});

Deno.test("tools/install.ts run by URL prebuilds a DENO_RDMA_LIB_DIR that needs only the documented flags", async () => {
  const server = serveTree();
  const s = scratch(hostApp(server.base));
  try {
    const libDir = `${s.dir}/libs`;
    const install = await runApp(s, [], { DENO_RDMA_CACHE_DIR: s.cache }, [
      DENO,
      "run",
      "-A",
      `${server.base}tools/install.ts`,
      "--copy-to",
      libDir,
    ]);
    assert.equal(install.code, 0, install.stderr);
    assert.equal(install.stdout.trim(), libDir);
    assert.equal(builds(install.stderr), 1, install.stderr);

    // No cache folder at all, no compiler, no network: only the libraries' folder.
    const { flags, env } = prebuilt(server, libDir, s.dir);
    const run = await runApp(s, flags, env);
    assertWorks(run);
    assert.equal(builds(run.stderr), 0);
  } finally {
    await server.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});
