// Every example's command line, without a device (options are parsed before any verb runs):
// --help prints the usage and exits 0; an unknown option or an out-of-range value prints the
// problem and the usage and exits 2, as rdma-core's and perftest's tools do.
import assert from "node:assert/strict";
import { defaultInlineSize } from "../../examples/lib/perftest_session.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Each example with an option whose value 0 is out of range. */
const EXAMPLES: [name: string, zeroOption: string][] = [
  ["rc_pingpong.ts", "-s"],
  ["write_bw.ts", "-s"],
  ["write_lat.ts", "-n"],
  ["cache_demo.ts", "-n"],
  ["rdma_write.ts", "-s"],
  ["rping.ts", "-S"],
];

async function run(name: string, ...args: string[]): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", `examples/${name}`, ...args],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout) + text.decode(stderr) };
}

for (const [name, zeroOption] of EXAMPLES) {
  Deno.test(`${name}: --help, an unknown option, an out-of-range value`, async (t) => {
    await t.step("--help prints the usage and exits 0", async () => {
      const { code, out } = await run(name, "--help");
      assert.equal(code, 0, out);
      assert.match(out, new RegExp(`^Usage: ${name.replace(".", "\\.")} `, "m"));
      assert.match(out, /^ {2}-h, --help +print this help and exit$/m);
    });
    await t.step("an unknown option exits 2 and names it", async () => {
      const { code, out } = await run(name, "--no-such-option");
      assert.equal(code, 2, out);
      assert.match(out, /^unknown option --no-such-option$/m);
      assert.match(out, /^Usage: /m);
    });
    await t.step(`${zeroOption} 0 exits 2 and names the option`, async () => {
      const { code, out } = await run(name, zeroOption, "0");
      assert.equal(code, 2, out);
      assert.match(out, /^--[\w-]+ must be an integer from \d+ to \d+, got "0"$/m);
    });
  });
}

Deno.test("perftest's default inline size: 220 for latency on ConnectX, else 0", () => {
  assert.equal(defaultInlineSize(true, 0x02c9), 220);
  assert.equal(defaultInlineSize(false, 0x02c9), 0, "bandwidth tests do not inline by default");
  assert.equal(defaultInlineSize(true, 0xffffff), 0, "rxe and other devices: none");
});

Deno.test("write_bw and write_lat: -S and --tclass are listed and range-checked", async () => {
  for (const name of ["write_bw.ts", "write_lat.ts"]) {
    const help = await run(name, "--help");
    assert.match(help.out, /^ {2}-S, --sl=<sl> +service level/m);
    assert.match(help.out, /^ {6}--tclass=<value> +traffic class/m);
    const sl = await run(name, "-S", "16");
    assert.equal(sl.code, 2, sl.out);
    assert.match(sl.out, /^--sl must be an integer from 0 to 15, got "16"$/m);
    const tclass = await run(name, "--tclass", "256");
    assert.equal(tclass.code, 2, tclass.out);
    assert.match(tclass.out, /^--tclass must be an integer from 0 to 255, got "256"$/m);
  }
});
