// rxe suite: the registration cache under a low RLIMIT_MEMLOCK (in a child without CAP_IPC_LOCK):
// ENOMEM from ibv_reg_mr evicts idle regions and retries once; with nothing to evict the error
// names the limit.
import assert from "node:assert/strict";

Deno.test("ENOMEM under RLIMIT_MEMLOCK: evict idle regions and retry, then a clear error", async () => {
  const device = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";
  const deno = Deno.execPath();
  const script = "ulimit -l 4096 && exec setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock " +
    `"${deno}" run -A --no-check tests/support/memlock_child.ts ${device}`;
  const { code, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr) + text);
  const out = JSON.parse(text.trim().split("\n").pop()!);
  assert.equal(out.retryHit, false);
  assert.equal(out.afterRetry.limitRetries, 1);
  assert.equal(out.afterRetry.evictions, 3);
  assert.equal(out.afterRetry.regions, 1);
  assert.equal(out.error?.name, "RdmaError");
  assert.match(out.error.code, /^(ENOMEM|EAGAIN)$/);
  assert.match(out.error.message, /RLIMIT_MEMLOCK 4194304 bytes/);
  assert.equal(out.final.inUse, 0);
});
