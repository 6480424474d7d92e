// rxe suite: examples/cache_demo.ts. With the cache, each buffer is registered at most once
// however often it is sent, freeing a buffer deregisters it inside free() (VmPin is back to where
// it started once every buffer is freed, before the cache is closed); without it, every send
// registers.
import assert from "node:assert/strict";
import { Child, example } from "./examples_process.ts";

const DEVICE = Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0";

Deno.test("cache_demo: at most one registration per buffer, VmPin back to 0 at the end", async () => {
  const child = new Child("hostA", example("cache_demo.ts", "-d", DEVICE, "-n", "60", "--json"));
  const { code, output } = await child.finish();
  assert.equal(code, 0, output);
  const reports = output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  assert.equal(reports.length, 2, output);
  const [plain, cached] = reports;
  const context = `\n${output}`;
  assert.equal(plain.mode, "uncached");
  assert.equal(cached.mode, "cached");
  assert.equal(plain.buffers, cached.buffers, "both runs follow the same pattern");

  assert.equal(plain.registrations, plain.sends, "without the cache every send registers");
  assert.ok(
    cached.registrations <= cached.buffers,
    `${cached.registrations} registrations for ${cached.buffers} buffers`,
  );
  assert.ok(cached.hits >= cached.sends - cached.buffers, "every resend of a buffer is a hit");
  assert.ok(cached.deregistrationsInRelease > 0, `munmap deregistered cached regions${context}`);
  assert.ok(cached.deregistrationsDeferred > 0, `free() deferred deregistrations${context}`);
  assert.equal(cached.vmPinKiBAtEnd - cached.vmPinKiBBefore, 0, "nothing pinned after the frees");
  assert.equal(plain.vmPinKiBAtEnd - plain.vmPinKiBBefore, 0);
});
