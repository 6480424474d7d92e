// The package publishes cleanly (`deno publish --dry-run`), with its license and every C source the
// first-use builder needs, and nothing of the tests, benchmarks, examples, soft-RoCE runner or
// tools but tools/install.ts.
import assert from "node:assert/strict";
import { RUNTIME_LIBRARIES, TARGETS } from "../../ffi/native_targets.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("deno publish --dry-run succeeds and ships what a first use builds from", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, text);
  assert.match(text, /Success Dry run complete/);
  const files = [...text.matchAll(/file:\/\/\S+/g)].map((m) =>
    decodeURIComponent(new URL(m[0]).pathname).slice(ROOT.length + 1)
  );
  assert.ok(files.includes("LICENSE"), text);
  assert.ok(files.includes("tools/install.ts"), text);
  for (const target of TARGETS.filter((t) => RUNTIME_LIBRARIES.includes(t.output))) {
    for (const source of target.sources) assert.ok(files.includes(source), `${source} not shipped`);
  }
  for (const folder of ["hooks/native", "ffi/native", "cache/native", "testing/native"]) {
    for (const entry of Deno.readDirSync(`${ROOT}/${folder}`)) {
      if (/\.[ch]$/.test(entry.name)) {
        assert.ok(files.includes(`${folder}/${entry.name}`), `${folder}/${entry.name} not shipped`);
      }
    }
  }
  const unwanted = files.filter((f) =>
    /^(tests|bench|softroce|examples|build|docs)\//.test(f) ||
    (f.startsWith("tools/") && f !== "tools/install.ts") || f.endsWith(".so")
  );
  assert.deepEqual(unwanted, []);
});
