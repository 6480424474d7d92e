// Argument checking that happens before any verb runs: wrong types are TypeError, out-of-range
// values RangeError. The protection domain is a named double that fails the test if a verb
// would be reached.
import assert from "node:assert/strict";
import { pointerAt } from "../../ffi/pointers.ts";
import {
  Access,
  AddressHandle,
  CompletionQueue,
  type Context,
  gidCompactText,
  gidText,
  gidWireText,
  LinkLayer,
  MemoryRegion,
  NativeHandle,
  parseGid,
  PortState,
  ProtectionDomain,
  QueuePair,
  WorkCompletions,
} from "../../verbs/mod.ts";
import { portProblem } from "../../verbs/context.ts";
import { roceGidIndex, roceSourceGidIndex } from "../../verbs/gid_choice.ts";
import { gidBytes } from "../../verbs/gid.ts";

/** Test double: a parent whose native pointer must never be asked for. */
/** A handle of `kind` whose pointer nothing may use: validation must fail first. */
class Unreachable extends NativeHandle {
  constructor(kind: string) {
    super(pointerAt(0x1000n)!, kind, "none", () => 0);
  }
  override pointerFor(verb: string): Deno.PointerObject {
    throw new Error(`validation let ${verb} run`);
  }
}

class UnreachablePd extends Unreachable {
  constructor() {
    super("ProtectionDomain");
  }
}

Deno.test("registering memory: bad input is rejected before ibv_reg_mr", async (t) => {
  const pd = new UnreachablePd() as unknown as ProtectionDomain;
  const buf = new Uint8Array(4096);
  const rejects = (
    args: Parameters<typeof MemoryRegion.register> extends [unknown, ...infer R] ? R : never,
    type: typeof TypeError | typeof RangeError,
  ) => assert.throws(() => MemoryRegion.register(pd, ...args), type);

  await t.step("wrong source types", () => {
    // @ts-expect-error: wrong type on purpose
    rejects(["text"], TypeError);
    // @ts-expect-error: wrong type on purpose
    rejects([null], TypeError);
    // @ts-expect-error: wrong type on purpose
    rejects([[1, 2, 3]], TypeError);
  });
  await t.step("zero length", () => {
    rejects([new Uint8Array(0)], RangeError);
    rejects([buf, { length: 0 }], RangeError);
    rejects([buf, { offset: 4096 }], RangeError);
    rejects([{ address: 0x1000n, length: 0 }], RangeError);
  });
  await t.step("negative or out-of-range offsets and lengths", () => {
    rejects([buf, { offset: -1 }], RangeError);
    rejects([buf, { length: -5 }], RangeError);
    rejects([buf, { offset: 4000, length: 200 }], RangeError);
    rejects([buf, { offset: 1.5 }], RangeError);
    // @ts-expect-error: wrong type on purpose
    rejects([buf, { offset: "1" }], TypeError);
  });
  await t.step("detached and resizable buffers", () => {
    const detached = new ArrayBuffer(64);
    detached.transfer();
    rejects([detached], TypeError);
    rejects([new ArrayBuffer(64, { maxByteLength: 128 })], TypeError);
  });
  await t.step("access flags", () => {
    rejects([buf, { access: 1 << 30 }], RangeError);
    rejects([buf, { access: -1 }], RangeError);
    // @ts-expect-error: wrong type on purpose
    rejects([buf, { access: "remote" }], TypeError);
  });
  await t.step("addresses", () => {
    rejects([{ address: 0n, length: 10 }], RangeError);
    rejects([{ address: -5n, length: 10 }], RangeError);
    // @ts-expect-error: wrong type on purpose
    rejects([{ address: 4096, length: 10 }], TypeError);
    rejects([{ address: 0x1000n, length: 10 }, { offset: 1 }], TypeError);
  });
  await t.step("valid input reaches the verb", () => {
    assert.throws(
      () => MemoryRegion.register(pd, buf, { access: Access.LOCAL_WRITE | Access.REMOTE_READ }),
      /validation let ibv_reg_mr run/,
    );
    // Shared memory too (the contract of verbs/memory_target.ts, tests/host/memory_target.test.ts).
    assert.throws(
      () => MemoryRegion.register(pd, new SharedArrayBuffer(64)),
      /validation let ibv_reg_mr run/,
    );
  });
  pd.close();
});

Deno.test("GIDs parse from text and bytes and print back", () => {
  const gid = gidBytes("gid", "fe80::5054:ff:fe12:3456");
  assert.equal(gidText(gid), "fe80:0000:0000:0000:5054:00ff:fe12:3456");
  assert.deepEqual(
    gidBytes("gid", "::ffff:10.10.0.1").subarray(10),
    Uint8Array.of(255, 255, 10, 10, 0, 1),
  );
  assert.equal(gidBytes("gid", gid), gid);
  assert.throws(() => gidBytes("gid", "fe80::1::2"), RangeError);
  assert.throws(() => gidBytes("gid", "not a gid"), RangeError);
  assert.throws(() => gidBytes("gid", new Uint8Array(15)), RangeError);
  assert.throws(() => gidBytes("gid", 42), TypeError);
  // rdma-core's pingpong wire form: 32 hex digits, first byte first.
  assert.deepEqual(parseGid("fe80000000000000505400fffe123456"), gid);
  assert.throws(() => parseGid("fe80000000000000505400fffe12345"), RangeError, "31 digits");
});

Deno.test("GID text is parsed strictly: malformed IPv4 and IPv6 parts are RangeErrors", () => {
  const rejects = [
    "::ffff:",
    "::ffff:1.2.3.",
    "::ffff:1.2.3",
    "::ffff:1.2.3.4.5",
    "::ffff: 1.2.3.4",
    "::ffff:1.2.3.4 ",
    " 1.2.3.4",
    "1.2.3.4 ",
    "0x7f.0.0.1",
    "1e0.2.3.4",
    "01.2.3.4",
    "256.0.0.1",
    "1.2.3.-4",
    "1..3.4",
    "::ffff:1.2.3.4:0",
    "1.2.3.4::",
    "fe80::1:",
    ":fe80::1",
    "fe80:::1",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "g::",
    "+1::",
    "",
  ];
  for (const text of rejects) {
    assert.throws(() => parseGid(text), RangeError, JSON.stringify(text));
  }
  const accepts: [string, string][] = [
    ["::", "0000:0000:0000:0000:0000:0000:0000:0000"],
    ["::1", "0000:0000:0000:0000:0000:0000:0000:0001"],
    ["fe80::", "fe80:0000:0000:0000:0000:0000:0000:0000"],
    ["1:2:3:4:5:6:7:8", "0001:0002:0003:0004:0005:0006:0007:0008"],
    ["1:2:3:4:5:6::", "0001:0002:0003:0004:0005:0006:0000:0000"],
    ["::ffff:10.0.0.1", "0000:0000:0000:0000:0000:ffff:0a00:0001"],
    ["10.0.0.1", "0000:0000:0000:0000:0000:ffff:0a00:0001"],
    ["::255.255.255.255", "0000:0000:0000:0000:0000:0000:ffff:ffff"],
    ["1:2:3:4:5:6:1.2.3.4", "0001:0002:0003:0004:0005:0006:0102:0304"],
    ["FE80::ABCD", "fe80:0000:0000:0000:0000:0000:0000:abcd"],
  ];
  for (const [text, full] of accepts) assert.equal(gidText(parseGid(text)), full, text);
  // The forms rdma-core's tools print come back as they were.
  for (const text of ["fe80::5054:ff:fe12:3456", "::ffff:10.10.0.1", "::1", "2001:db8::"]) {
    assert.equal(gidCompactText(text), text);
  }
  assert.equal(gidWireText("::ffff:10.0.0.1"), "00000000000000000000ffff0a000001");
});

Deno.test("work completions: capacity and index bounds", () => {
  assert.throws(() => new WorkCompletions(0), RangeError);
  assert.throws(() => new WorkCompletions(-1), RangeError);
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => new WorkCompletions("4"), TypeError);
  const wcs = new WorkCompletions(4);
  assert.equal(wcs.bytes.length, 4 * 48);
  assert.throws(() => wcs.status(0), RangeError); // nothing polled yet
  wcs.count = 1;
  new DataView(wcs.bytes.buffer).setUint32(0, 7, true);
  new DataView(wcs.bytes.buffer).setUint32(4, 1, true);
  assert.equal(wcs.wrId(0), 2 ** 32 + 7);
  assert.equal(wcs.wrIdBig(0), (1n << 32n) + 7n);
  assert.throws(() => wcs.status(1), RangeError);
  // The native poll trusts both: JavaScript must not be able to enlarge or swap them.
  assert.throws(() => Object.assign(wcs, { capacity: 4096 }), TypeError);
  assert.throws(() => Object.assign(wcs, { bytes: new Uint8Array(1) }), TypeError);
  assert.equal(wcs.capacity, 4);
  assert.equal(wcs.bytes.length, 4 * 48);
});

Deno.test("queue pairs, completion queues and address handles check options first", () => {
  const parent = new UnreachablePd() as unknown as ProtectionDomain;
  const context = new Unreachable("Context") as unknown as Context;
  const cq = {} as CompletionQueue;
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => QueuePair.create(parent, context, { type: "XRC", sendCq: cq }), TypeError);
  assert.throws(() => QueuePair.create(parent, context, { type: 9, sendCq: cq }), RangeError);
  assert.throws(() => QueuePair.create(parent, context, { type: "RC" } as never), TypeError);
  assert.throws(() => CompletionQueue.create(context, { entries: 0 }), RangeError);
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => CompletionQueue.create(context, { channel: "yes" }), TypeError);
  assert.throws(() => AddressHandle.create(parent, {}), TypeError);
  assert.throws(() => AddressHandle.create(parent, { gid: "::1", hopLimit: 256 }), RangeError);
  assert.throws(() => AddressHandle.create(parent, { lid: -1 }), RangeError);
  parent.close();
});

Deno.test("a factory given another kind of parent handle: TypeError before native code", () => {
  const pd = new UnreachablePd() as unknown as ProtectionDomain;
  const context = new Unreachable("Context") as unknown as Context;
  const cq = new Unreachable("CompletionQueue");
  const expectKind = (kind: string) => (e: unknown) =>
    e instanceof TypeError && e.message.endsWith(`must be a ${kind}`);
  assert.throws(() => CompletionQueue.create(pd as never), expectKind("Context"));
  assert.throws(() => ProtectionDomain.allocate(pd as never), expectKind("Context"));
  assert.throws(
    () => MemoryRegion.register(cq as never, new Uint8Array(8)),
    expectKind("ProtectionDomain"),
  );
  assert.throws(
    () => AddressHandle.create(context as never, { lid: 1 }),
    expectKind("ProtectionDomain"),
  );
  assert.throws(
    () => QueuePair.create(cq as never, context, { type: "RC", sendCq: {} as CompletionQueue }),
    expectKind("ProtectionDomain"),
  );
  assert.throws(
    () => QueuePair.create(pd, pd as never, { type: "RC", sendCq: {} as CompletionQueue }),
    expectKind("Context"),
  );
  // The right kind but another device's: the queue pair's domain must belong to its context.
  assert.throws(
    () => QueuePair.create(pd, context, { type: "RC", sendCq: {} as CompletionQueue }),
    TypeError,
  );
});

Deno.test("a port that cannot carry traffic is named, with the reason", () => {
  const { ACTIVE, DOWN, INIT } = PortState;
  const { INFINIBAND, ETHERNET, UNSPECIFIED } = LinkLayer;
  assert.equal(portProblem({ state: ACTIVE, lid: 5, linkLayer: INFINIBAND }), null);
  assert.equal(
    portProblem({ state: ACTIVE, lid: 0, linkLayer: ETHERNET }),
    null,
    "RoCE has no LID",
  );
  assert.match(portProblem({ state: DOWN, lid: 0, linkLayer: ETHERNET })!, /DOWN, not ACTIVE/);
  assert.match(portProblem({ state: INIT, lid: 0, linkLayer: INFINIBAND })!, /subnet manager/);
  // ACTIVE without a LID: InfiniBand, or an old driver's unspecified link layer (libibverbs: IB).
  for (const linkLayer of [INFINIBAND, UNSPECIFIED]) {
    assert.match(portProblem({ state: ACTIVE, lid: 0, linkLayer })!, /LID 0/);
  }
});

Deno.test("the default RoCE GID: v2 with IPv4, else v2 with a global IPv6 address, else any v2", () => {
  const entry = (index: number, text: string, type: string) => ({
    index,
    gid: gidBytes("gid", text),
    type,
  });
  const linkLocalV1 = entry(0, "fe80::1", "roce-v1");
  const linkLocalV2 = entry(1, "fe80::1", "roce-v2");
  const globalV1 = entry(2, "2001:db8::5", "roce-v1");
  const globalV2 = entry(3, "2001:db8::5", "roce-v2");
  const ipv4V2 = entry(4, "::ffff:10.0.0.1", "roce-v2");
  assert.equal(roceGidIndex([linkLocalV1, linkLocalV2, globalV1, globalV2, ipv4V2]), 4);
  assert.equal(roceGidIndex([linkLocalV1, linkLocalV2, globalV1, globalV2]), 3, "IPv6-only host");
  assert.equal(roceGidIndex([linkLocalV1, linkLocalV2]), 1);
  assert.equal(roceGidIndex([linkLocalV1]), 0, "no v2 entry: the first one");
  assert.equal(roceGidIndex([]), 0);
});

Deno.test("the source GID for a destination: the same kind of address, else the default", () => {
  const entry = (index: number, text: string, type = "roce-v2") => ({
    index,
    gid: parseGid(text),
    type,
  });
  const table = [
    entry(0, "fe80::1"),
    entry(1, "::ffff:10.0.0.1"),
    entry(2, "2001:db8::5"),
    entry(3, "fe80::1", "roce-v1"),
  ];
  assert.equal(roceSourceGidIndex(table, parseGid("::ffff:10.0.0.2")), 1);
  assert.equal(roceSourceGidIndex(table, parseGid("fe80::9")), 0, "link-local to link-local");
  assert.equal(roceSourceGidIndex(table, parseGid("2001:db8::9")), 2);
  assert.equal(roceSourceGidIndex([table[1]], parseGid("fe80::9")), 1, "none alike: the default");
  // gidText takes text too, in any form parseGid does.
  assert.equal(gidText("fe80::1"), "fe80:0000:0000:0000:0000:0000:0000:0001");
});
