// rxe suite: examples/write_bw.ts and write_lat.ts against themselves across the guest's two
// hosts (server on B, client on A), with perftest's result rows and the data checks passing.
import assert from "node:assert/strict";
import { Child, example, HOST_A, HOST_B } from "./examples_process.ts";

async function runPair(name: string, serverArgs: string[], clientArgs: string[]) {
  const server = new Child(HOST_B.netns, example(name, "-d", HOST_B.device, ...serverArgs));
  const client = new Child(
    HOST_A.netns,
    example(name, "-d", HOST_A.device, ...clientArgs, HOST_B.address),
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(s.code, 0, `server:\n${s.output}`);
  assert.equal(c.code, 0, `client:\n${c.output}`);
  return { client: c.output, server: s.output };
}

/** As runPair, connected by IP address through the connection manager (no -d: the route's). */
async function runPairCm(name: string, args: string[]) {
  const server = new Child(HOST_B.netns, example(name, ...args));
  const client = new Child(
    HOST_A.netns,
    example(name, ...args, "--source_ip", HOST_A.address, HOST_B.address),
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(s.code, 0, `server:\n${s.output}`);
  assert.equal(c.code, 0, `client:\n${c.output}`);
  return { client: c.output, server: s.output };
}

Deno.test("write_bw from host A to host B: perftest's table, data verified", async () => {
  const args = ["-s", "4096", "-n", "300", "-F", "-p", "18621"];
  const out = await runPair("write_bw.ts", args, args);
  const header =
    /#bytes\s+#iterations\s+BW peak\[MB\/sec\]\s+BW average\[MB\/sec\]\s+MsgRate\[Mpps\]/;
  const row = /^\s*4096\s+300\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$/m;
  for (const output of [out.client, out.server]) {
    assert.match(output, header);
    const m = row.exec(output);
    assert.ok(m, `no result row in:\n${output}`);
    assert.ok(Number(m[2]) > 0, "average bandwidth is positive");
    assert.ok(Number(m[1]) >= Number(m[2]), "peak is at least the average");
  }
  // perftest prints GIDs as 16 decimal bytes: ...:255:255:10:10:00:01 for 10.10.0.1.
  const ipv4 = HOST_A.address.split(".").map((b) => b.padStart(2, "0")).join(":");
  assert.match(out.client, new RegExp(`local address: .*\n GID: (00:){10}255:255:${ipv4}\n`));
});

Deno.test("write_bw with --report_gbits (and a service level and traffic class) reports Gb/sec", async () => {
  const args = [
    "-s",
    "65536",
    "-n",
    "100",
    "--report_gbits",
    "-S",
    "3",
    "--tclass",
    "32",
    "-p",
    "18622",
  ];
  const out = await runPair("write_bw.ts", args, args);
  assert.match(out.client, /BW average\[Gb\/sec\]/);
  assert.match(out.client, /^\s*65536\s+100\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*$/m);
});

Deno.test("write_lat from host A to host B: perftest's table, data verified", async () => {
  const args = ["-s", "64", "-n", "200", "-F", "-p", "18623"];
  const out = await runPair("write_lat.ts", args, args);
  const m =
    /^\s*64\s+200\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$/m
      .exec(out.client);
  assert.ok(m, `no result row in:\n${out.client}`);
  const [min, max, typical, avg, , p99] = m.slice(1).map(Number);
  assert.ok(
    min > 0 && min <= typical && typical <= max,
    `min ${min} typical ${typical} max ${max}`,
  );
  assert.ok(min <= avg && avg <= max);
  assert.ok(p99 <= max);
});

Deno.test("write_bw and write_lat with -R: connected by the connection manager, lines over the queue pair, data verified", async () => {
  const bw = ["-R", "-s", "4096", "-n", "300", "-p", "18625"];
  const out = await runPairCm("write_bw.ts", bw);
  for (const output of [out.client, out.server]) {
    assert.match(output, /Data ex\. method\s*:\s*rdma_cm/);
    assert.match(output, /^\s*4096\s+300\s+[\d.]+\s+[\d.]+\s+[\d.]+\s*$/m);
  }
  const lat = ["-R", "-s", "64", "-n", "200", "-p", "18626"];
  const latOut = await runPairCm("write_lat.ts", lat);
  assert.match(latOut.client, /^\s*64\s+200(\s+[\d.]+){7}\s*$/m);
});

Deno.test("write_bw refuses a peer started with another message size", async () => {
  const server = new Child(
    HOST_B.netns,
    example("write_bw.ts", "-d", HOST_B.device, "-s", "4096", "-n", "10", "-p", "18624"),
  );
  const client = new Child(
    HOST_A.netns,
    example(
      "write_bw.ts",
      "-d",
      HOST_A.device,
      "-s",
      "8192",
      "-n",
      "10",
      "-p",
      "18624",
      HOST_B.address,
    ),
  );
  const [c, s] = await Promise.all([client.finish(), server.finish()]);
  assert.equal(c.code, 1);
  assert.equal(s.code, 1);
  assert.match(c.output, /the peer runs with size 4096 and this end with 8192/);
});
