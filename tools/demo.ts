/**
 * `deno task demo`: the first thing to run. Builds the native libraries, then shows the
 * registration cache demo and a short RDMA WRITE bandwidth run (with progress) and a summary.
 * It uses this machine's RDMA device when there is one; otherwise it runs itself inside the
 * soft-RoCE guest (softroce/run.ts), which it prepares on first use.
 *
 * Options: `--here` (run on this machine, never in the guest), `--rounds N` (cache demo sends,
 * default 200), `--iters N` (RDMA WRITEs, default 2000).
 *
 * @module
 */
import { numberArgument } from "./args.ts";
import { ensureBuilt, ROOT } from "./build.ts";
import { ensureDebianPackages } from "./deps.ts";
import { EXIT_GUEST_FAILED, runInGuest } from "../softroce/run.ts";
import { listDevices, openDevice, PortState } from "../mod.ts";

/** The devices and addresses of the two ends of the RDMA WRITE run. */
interface Layout {
  cacheDevice: string;
  serverDevice: string;
  clientDevice: string;
  serverAddress: string;
  where: string;
}

/**
 * Names of this machine's RDMA devices whose port 1 is ACTIVE (a device with its cable out would
 * only time out); empty when there is none (or no RDMA in its kernel).
 */
function localDevices(): string[] {
  try {
    return listDevices().map((d) => d.name).filter((name) => {
      try {
        using ctx = openDevice(name);
        return ctx.queryPort(1).state === PortState.ACTIVE;
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

function layout(devices: string[]): Layout {
  const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
  if (Deno.env.get("DENO_RDMA_GUEST") === "1") {
    return {
      cacheDevice: "rxe0",
      serverDevice: env("DENO_RDMA_DEVICE_B", "rxeB"),
      clientDevice: env("DENO_RDMA_DEVICE_A", "rxeA"),
      serverAddress: env("DENO_RDMA_HOST_B", "10.10.0.2"),
      where: "soft-RoCE guest: rxeA -> rxeB across a veth pair",
    };
  }
  return {
    cacheDevice: devices[0],
    serverDevice: devices[0],
    clientDevice: devices[0],
    serverAddress: "127.0.0.1",
    where: `${devices[0]}, both ends on this machine`,
  };
}

/** Runs one example, echoing its output indented; returns its exit status and output. */
async function runExample(
  args: string[],
  echo: boolean,
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        output += line + "\n";
        if (echo) console.log(`    ${line}`);
      }
    }
    if (pending) {
      output += pending + "\n";
      if (echo) console.log(`    ${pending}`);
    }
  };
  await Promise.all([pump(child.stdout), pump(child.stderr)]);
  return { code: (await child.status).code, output };
}

async function demoHere(devices: string[]): Promise<number> {
  const rounds = numberArgument("--rounds", 200);
  const iters = numberArgument("--iters", 2000);
  const l = layout(devices);
  const started = performance.now();
  console.log(`deno-rdma demo on ${l.where}\n`);

  console.log(
    `[1/2] Registration cache: ${rounds} sends from freshly allocated and reused buffers`,
  );
  const cacheRun = await runExample(
    ["examples/cache_demo.ts", "-d", l.cacheDevice, "--rounds", String(rounds)],
    true,
  );
  if (cacheRun.code !== 0) {
    console.log(`cache demo failed (exit status ${cacheRun.code})`);
    return 1;
  }

  console.log(
    `\n[2/2] RDMA WRITE bandwidth: ${iters} writes of 64 KiB, ${l.clientDevice} -> ` +
      `${l.serverDevice}`,
  );
  const port = String(18515 + Math.floor(Math.random() * 1000));
  const common = ["-s", "65536", "-n", String(iters), "-p", port];
  const server = runExample(["examples/write_bw.ts", "-d", l.serverDevice, ...common], false);
  const client = await runExample(
    ["examples/write_bw.ts", "-d", l.clientDevice, ...common, "--progress", l.serverAddress],
    true,
  );
  const serverRun = await server;
  if (client.code !== 0 || serverRun.code !== 0) {
    console.log(`write_bw failed (client ${client.code}, server ${serverRun.code})`);
    if (serverRun.output) console.log(serverRun.output);
    return 1;
  }

  const speedup = /with the cache: ([\d.]+)x faster, (\d+) registrations for (\d+) buffers \((\d+)/
    .exec(cacheRun.output);
  const row = /^\s*65536\s+\d+\s+([\d.]+)\s+([\d.]+)/m.exec(client.output);
  console.log("\nSummary");
  if (speedup) {
    console.log(
      `  registration cache: ${speedup[1]}x faster than registering per send; ` +
        `${speedup[2]} registrations for ${speedup[3]} buffers instead of ${speedup[4]}`,
    );
  }
  if (row) console.log(`  RDMA WRITE 64 KiB: ${row[2]} MB/sec average (peak ${row[1]})`);
  console.log("  every byte written was checked on the receiving side");
  console.log(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

if (import.meta.main) {
  const inGuest = Deno.env.get("DENO_RDMA_GUEST") === "1";
  if (!inGuest) {
    ensureBuilt();
    ensureDebianPackages(["ibverbs-providers"], "opening RDMA devices");
  }
  const devices = localDevices();
  if (devices.length > 0 || Deno.args.includes("--here") || inGuest) {
    Deno.exit(await demoHere(devices));
  }
  console.log("No RDMA device with an active port here: running the demo in the soft-RoCE guest.");
  console.log("(The first run downloads a kernel and builds the guest image; later runs boot in");
  console.log("10-60 s.)\n");
  Deno.chdir(ROOT);
  const status = await runInGuest(
    ["deno", "run", "--allow-all", "--no-check", "tools/demo.ts", ...Deno.args],
    { timeoutSeconds: 1200 },
  );
  if (status === EXIT_GUEST_FAILED) console.error("the soft-RoCE guest could not be started");
  Deno.exit(status);
}
