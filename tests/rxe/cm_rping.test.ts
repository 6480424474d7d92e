// rxe suite: examples/rping.ts against rdma-core's rping (Debian's rdmacm-utils) across the two
// hosts of the guest, by IP address, each as client and as server, 100 pings with the data
// verified (-V), and against itself.
import assert from "node:assert/strict";
import { Child, example, HOST_A, HOST_B } from "./examples_process.ts";

const COUNT = 100;

/** rdma-core's rping, line-buffered (stdbuf) so a test can wait for its lines. */
function theirs(host: typeof HOST_A, ...args: string[]): Child {
  return new Child(host.netns, ["stdbuf", "-oL", "rping", ...args]);
}

function ours(host: typeof HOST_A, ...args: string[]): Child {
  return new Child(host.netns, example("rping.ts", ...args));
}

/** `output`'s "ping data:" lines: one per ping, each the ping's number and its pattern. */
function assertPings(output: string, prefix: string) {
  const lines = output.split("\n").filter((l) => l.startsWith(`${prefix}ping data: `));
  assert.equal(lines.length, COUNT, output.slice(-2000));
  assert.match(lines[0], new RegExp(`^${prefix}ping data: rdma-ping-0: ABCDEFG`));
  assert.match(lines[COUNT - 1], new RegExp(`^${prefix}ping data: rdma-ping-${COUNT - 1}: `));
}

Deno.test("our rping client against rping -s, -V -C 100", async () => {
  const port = "17301";
  const server = theirs(HOST_B, "-s", "-d", "-v", "-V", "-a", HOST_B.address, "-p", port);
  await server.waitFor(/rdma_listen/);
  await new Promise((resolve) => setTimeout(resolve, 300)); // rdma_listen itself, after the log
  const client = ours(
    HOST_A,
    ...["-c", "-v", "-V", "-C", `${COUNT}`, "-a", HOST_B.address, "-I", HOST_A.address],
    ...["-p", port],
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(c.code, 0, `client:\n${c.output}`);
  assert.equal(s.code, 0, `server:\n${s.output}`);
  assertPings(c.output, "");
  assertPings(s.output, "server ");
});

Deno.test("rping -c against our rping server, -V -C 100", async () => {
  const port = "17302";
  const server = ours(HOST_B, "-s", "-d", "-v", "-a", HOST_B.address, "-p", port);
  await server.waitFor(/listening on/);
  const client = theirs(
    HOST_A,
    ...["-c", "-v", "-V", "-C", `${COUNT}`, "-a", HOST_B.address, "-I", HOST_A.address],
    ...["-p", port],
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(c.code, 0, `client:\n${c.output}`);
  assert.equal(s.code, 0, `server:\n${s.output}`);
  assertPings(c.output, "");
  assertPings(s.output, "server ");
});

Deno.test("our rping against itself, -V -C 100, -S 1000", async () => {
  const port = "17303";
  const size = ["-S", "1000"];
  const server = ours(HOST_B, "-s", "-d", "-V", ...size, "-a", HOST_B.address, "-p", port);
  await server.waitFor(/listening on/);
  const client = ours(
    HOST_A,
    ...["-c", "-v", "-V", "-C", `${COUNT}`, ...size, "-a", HOST_B.address, "-p", port],
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(c.code, 0, `client:\n${c.output}`);
  assert.equal(s.code, 0, `server:\n${s.output}`);
  assertPings(c.output, "");
});
