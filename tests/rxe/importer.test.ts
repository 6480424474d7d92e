// deno-rdma as a dependency, in the guest: an application in an empty folder under /tmp (the
// guest's only writable place; the host's file system is read-only) imports it by URL from a
// loopback HTTP server started here, with an empty Deno cache, and opens the rxe device and does
// an RDMA WRITE through a registration cache, with the documented permissions of a prebuilt
// library folder and no -A. The libraries are the checkout's, built on the host: building on
// first use is proven by the host tests (tests/host/importer.test.ts), and compiling under the
// guest's emulation would take minutes.
import assert from "node:assert/strict";
import { builds, prebuilt, ROOT, runApp, scratch, serveTree } from "../host/importer_support.ts";

const DEVICE = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";

function rdmaApp(base: string): string {
  return `import {
  Access, NativeLibraryError, openDevice, RegistrationCache, WorkCompletions, WrOpcode,
} from "${base}mod.ts";
const result: Record<string, unknown> = {};
try {
  using ctx = openDevice(${JSON.stringify(DEVICE)});
  using pd = ctx.allocProtectionDomain();
  using cq = ctx.createCompletionQueue({ entries: 16, channel: true });
  using a = pd.createQueuePair({ type: "RC", sendCq: cq });
  using b = pd.createQueuePair({ type: "RC", sendCq: cq });
  const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE;
  a.connect(b.localInfo(), { access });
  b.connect(a.localInfo(), { access });
  using cache = new RegistrationCache(pd);
  const source = new Uint8Array(8192).map((_, i) => (i * 7 + 3) & 0xff);
  const target = new Uint8Array(8192);
  using src = cache.get(source);
  using dst = cache.get(target, access);
  a.postSend({ wrId: 1n, opcode: WrOpcode.RDMA_WRITE, sge: src, remoteAddress: dst.address, rkey: dst.rkey, signaled: true });
  const wcs = new WorkCompletions(4);
  const n = await cq.pollOrWait(wcs);
  result.completions = n;
  result.status = wcs.status(0);
  result.landed = target.every((v, i) => v === source[i]);
} catch (e) {
  result.error = e instanceof NativeLibraryError
    ? { name: e.name, reason: e.reason, flag: e.flag, message: e.message }
    : { name: String((e as Error)?.name), message: String((e as Error)?.stack ?? e) };
}
console.log(JSON.stringify(result));
`;
}

Deno.test("an importing application opens rxe0 and does an RDMA WRITE through the cache", async () => {
  const server = serveTree();
  const s = scratch(rdmaApp(server.base));
  try {
    assert.ok(s.dir.startsWith("/tmp/"), s.dir);
    const { flags, env } = prebuilt(server, `${ROOT}/build`, s.dir);
    const run = await runApp(s, flags, env);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      run.result,
      { completions: 1, status: 0, landed: true },
      run.stdout + run.stderr,
    );
    assert.equal(builds(run.stderr), 0, run.stderr);
  } finally {
    await server.close();
    Deno.removeSync(s.dir, { recursive: true });
  }
});
