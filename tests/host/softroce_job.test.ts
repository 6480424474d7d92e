// The soft-RoCE runner: its job script (a working directory or a command word under the host's
// /tmp gets that folder bound back in place in the guest, whose own /tmp would hide it), and the
// PVH entry check of the kernel it boots.
import assert from "node:assert/strict";
import { hostTmpFolders, jobScript } from "../../softroce/run.ts";
import { hasPvhEntry } from "../../softroce/image.ts";

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

Deno.test("a PVH entry note is recognised in an ELF image, and nothing else is taken for one", () => {
  const note = (type: number) => {
    const bytes = new Uint8Array(64 + 24);
    bytes.set([0x7f, 0x45, 0x4c, 0x46], 0); // ELF
    const view = new DataView(bytes.buffer);
    view.setUint32(64, 4, true); // namesz
    view.setUint32(68, 8, true); // descsz
    view.setUint32(72, type, true);
    bytes.set([0x58, 0x65, 0x6e, 0x00], 76); // "Xen\0"
    return bytes;
  };
  assert.equal(hasPvhEntry(note(18)), true);
  assert.equal(hasPvhEntry(note(17)), false, "another Xen note");
  const notElf = note(18);
  notElf[0] = 0;
  assert.equal(hasPvhEntry(notElf), false, "not an ELF image");
  assert.equal(hasPvhEntry(new Uint8Array(8)), false);
});
