// The soft-RoCE runner's job script: a working directory or a command word under the host's /tmp
// gets that folder bound back in place in the guest (whose own /tmp would hide it).
import assert from "node:assert/strict";
import { hostTmpFolders, jobScript } from "../../softroce/run.ts";

Deno.test("host folders under /tmp named by the job are bound back in place", () => {
  assert.deepEqual(hostTmpFolders(["deno", "test"], "/tmp/app"), ["app"]);
  assert.deepEqual(
    hostTmpFolders(["deno", "run", "/tmp/b/main.ts", "--config=/tmp/c/deno.json"], "/work/main"),
    ["b", "c"],
  );
  assert.deepEqual(hostTmpFolders(["ls", "/var/tmp/x", "/tmpfoo", "/tmp"], "/home/u/app"), []);
  const script = jobScript(["ibv_devices"], {}, "/tmp/clone");
  assert.match(
    script,
    /mount --bind '\/run\/softroce\/host-tmp\/clone' '\/tmp\/clone'[^\n]*\n[^]*cd '\/tmp\/clone'/,
  );
});
