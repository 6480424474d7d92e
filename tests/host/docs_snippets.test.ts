// The TypeScript examples in the READMEs type-check against the library as it is (imports written
// from the repository's root, as the READMEs say to run them).
import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url);
const READMES = [
  "README.md",
  "verbs/README.md",
  "cm/README.md",
  "cache/README.md",
  "softroce/README.md",
];

Deno.test("every ```ts block in the READMEs type-checks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "readme-snippets-" });
  try {
    const files: string[] = [];
    for (const readme of READMES) {
      const text = await Deno.readTextFile(new URL(readme, ROOT));
      const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
      assert.ok(blocks.length > 0, `${readme} has no TypeScript example`);
      blocks.forEach((code, i) => {
        const file = `${dir}/${readme.replaceAll("/", "_")}_${i}.ts`;
        Deno.writeTextFileSync(file, code.replaceAll(/from "\.\//g, `from "${ROOT.href}`));
        files.push(file);
      });
    }
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", new URL("deno.json", ROOT).pathname, ...files],
      env: { NO_COLOR: "1" },
    }).output();
    const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
