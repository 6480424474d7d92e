/**
 * Runs a Deno script in a child process (for what must happen in a fresh process: LD_PRELOAD,
 * another interceptor, a refused cache) and returns the JSON object its last stdout line holds.
 * A non-zero exit fails the calling test with the child's stderr.
 */
import assert from "node:assert/strict";

export async function runChildJson(
  script: string,
  env: Record<string, string> = {},
  args: string[] = [],
  // The shape is each child's own, as with JSON.parse.
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", script, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "");
}
