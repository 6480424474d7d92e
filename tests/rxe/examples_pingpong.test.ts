// rxe suite: examples/rc_pingpong.ts against rdma-core's ibv_rc_pingpong (Debian's ibverbs-utils)
// across the two hosts of the guest, each as client and as server, with the content check (-c) on
// both sides; and against itself with completion events (-e).
import assert from "node:assert/strict";
import { Child, example, HOST_A, HOST_B } from "./examples_process.ts";

const ITERS = "20";
const REPORT =
  /^\d+ bytes in \d+\.\d\d seconds = \d+\.\d\d Mbit\/sec\n\d+ iters in \d+\.\d\d seconds = \d+\.\d\d usec\/iter$/m;
const ADDRESS =
  /(local|remote) address: +LID 0x([0-9a-f]{4}), QPN 0x([0-9a-f]{6}), PSN 0x([0-9a-f]{6}), GID (\S+)/g;

/** { local: "qpn/psn/gid", remote: ... } from a report. */
function addresses(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of output.matchAll(ADDRESS)) out[m[1]] = `${m[3]}/${m[4]}/${m[5]}`;
  return out;
}

/** Both ended with 0, printed the report, and each saw the other's address. */
function assertPaired(
  server: { code: number; output: string },
  client: { code: number; output: string },
) {
  assert.equal(server.code, 0, `server:\n${server.output}`);
  assert.equal(client.code, 0, `client:\n${client.output}`);
  for (const r of [server, client]) {
    assert.match(r.output, REPORT);
    assert.doesNotMatch(r.output, /invalid data/);
  }
  const s = addresses(server.output);
  const c = addresses(client.output);
  assert.ok(s.local && c.local, "both printed their local address");
  assert.equal(s.remote, c.local);
  assert.equal(c.remote, s.local);
  assert.match(c.local, new RegExp(`/::ffff:${HOST_A.address.replaceAll(".", "\\.")}$`));
}

/** Our rc_pingpong ("ours") or rdma-core's ("theirs") on `host`'s device and RoCE v2 GID index. */
function pingpong(host: typeof HOST_A, which: "ours" | "theirs", ...args: string[]): Child {
  const device = ["-d", host.device, "-g", host.gidIndex, ...args];
  return new Child(
    host.netns,
    which === "ours" ? example("rc_pingpong.ts", ...device) : ["ibv_rc_pingpong", ...device],
  );
}

Deno.test("our rc_pingpong client against ibv_rc_pingpong's server, -c on both", async () => {
  const port = "18611";
  const common = ["-n", ITERS, "-c", "-p", port];
  const server = pingpong(HOST_B, "theirs", ...common);
  // The C server's stdout is a pipe, so its output stays buffered until it exits: there is no
  // line to wait for. Our client retries while the port is still closed.
  const client = pingpong(HOST_A, "ours", ...common, HOST_B.address);
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assertPaired(s, c);
});

Deno.test("ibv_rc_pingpong's client against our rc_pingpong server, -c on both", async () => {
  const port = "18612";
  const common = ["-n", ITERS, "-c", "-p", port];
  const server = pingpong(HOST_B, "ours", ...common);
  await server.waitFor(/local address/); // printed once it listens
  const client = pingpong(HOST_A, "theirs", ...common, HOST_B.address);
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assertPaired(s, c);
});

Deno.test("rc_pingpong against itself, sleeping on completion events (-e)", async () => {
  const common = ["-n", ITERS, "-c", "-e", "-s", "8192", "-p", "18613"];
  const server = pingpong(HOST_B, "ours", ...common);
  await server.waitFor(/local address/);
  const client = pingpong(HOST_A, "ours", ...common, HOST_B.address);
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assertPaired(s, c);
  assert.match(c.output, /^327680 bytes in /m); // 8192 bytes * 20 iters * 2
});

Deno.test("our rc_pingpong server with -c exits 1 when the data is not what -c writes", async () => {
  // ibv_rc_pingpong's client without -c leaves 0x7b at every page start, where -c expects 0.
  const common = ["-n", "5", "-p", "18614"];
  const server = pingpong(HOST_B, "ours", ...common, "-c");
  await server.waitFor(/local address/);
  const client = pingpong(HOST_A, "theirs", ...common, HOST_B.address);
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(c.code, 0, c.output);
  assert.equal(s.code, 1, s.output);
  assert.match(s.output, /invalid data in page 0/);
  assert.match(s.output, REPORT, "the report is printed before the check");
});
