/**
 * Checks, from inside the soft-RoCE guest, what every other rxe test relies on: the three rxe
 * devices, an unlimited locked-memory limit, and the environment the runner promises.
 */
import assert from "node:assert/strict";

const env = (name: string) => Deno.env.get(name);

Deno.test("runs inside the soft-RoCE guest", () => {
  assert.equal(env("DENO_RDMA_GUEST"), "1");
});

Deno.test("rxe0, rxeA and rxeB are registered RDMA devices", () => {
  const devices = [...Deno.readDirSync("/sys/class/infiniband")].map((e) => e.name).sort();
  for (const name of ["rxe0", "rxeA", "rxeB"]) assert.ok(devices.includes(name), `${name} missing`);
  for (const name of ["rxe0", "rxeA", "rxeB"]) {
    const state = Deno.readTextFileSync(`/sys/class/infiniband/${name}/ports/1/state`);
    assert.match(state, /ACTIVE/, `${name} port 1 is not active: ${state.trim()}`);
  }
});

Deno.test("locked memory is unlimited", () => {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  const line = limits.split("\n").find((l) => l.startsWith("Max locked memory"));
  assert.ok(line, "no 'Max locked memory' line in /proc/self/limits");
  const [soft, hard] = line.slice("Max locked memory".length).trim().split(/\s+/);
  assert.equal(soft, "unlimited");
  assert.equal(hard, "unlimited");
});

Deno.test("the two hosts' addresses, devices and RoCE v2 GID indexes are exported", () => {
  assert.equal(env("DENO_RDMA_HOST_A"), "10.10.0.1");
  assert.equal(env("DENO_RDMA_HOST_B"), "10.10.0.2");
  assert.equal(env("DENO_RDMA_DEVICE_A"), "rxeA");
  assert.equal(env("DENO_RDMA_DEVICE_B"), "rxeB");
  const cases = [
    ["rxeA", "DENO_RDMA_GID_INDEX_A", "0000:0000:0000:0000:0000:ffff:0a0a:0001"],
    ["rxeB", "DENO_RDMA_GID_INDEX_B", "0000:0000:0000:0000:0000:ffff:0a0a:0002"],
    ["rxe0", "DENO_RDMA_GID_INDEX_LO", "0000:0000:0000:0000:0000:ffff:7f00:0001"],
  ];
  for (const [device, variable, gid] of cases) {
    const index = env(variable);
    assert.match(index ?? "", /^\d+$/, `${variable} is not a GID index`);
    const port = `/sys/class/infiniband/${device}/ports/1`;
    assert.equal(Deno.readTextFileSync(`${port}/gids/${index}`).trim(), gid);
    assert.equal(Deno.readTextFileSync(`${port}/gid_attrs/types/${index}`).trim(), "RoCE v2");
  }
});

Deno.test("the working directory is the host directory the runner started in", () => {
  // tools/test.ts starts the guest from the repository root; the repo is visible at the same path.
  assert.ok(Deno.statSync(`${Deno.cwd()}/tests/rxe/guest_smoke.test.ts`).isFile);
});
