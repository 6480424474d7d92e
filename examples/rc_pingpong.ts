/**
 * RC ping-pong of SEND/RECV messages that speaks rdma-core's `ibv_rc_pingpong` protocol, so it
 * runs against the real tool (either side) and against itself.
 *
 *     deno run -A examples/rc_pingpong.ts [options]          # server
 *     deno run -A examples/rc_pingpong.ts [options] <host>   # client
 *
 * Same flags and defaults as `ibv_rc_pingpong`; on RoCE (rxe) pass `-g` with the GID index of the
 * IPv4-mapped RoCE v2 GID. The TCP exchange is the tool's: each side's `LID:QPN:PSN:GID` in a
 * 52-byte message, then "done". Unlike the C tool, this one checks every byte of its buffer at the
 * end and exits 1 on a mismatch.
 *
 * @module
 */
import {
  gidCompactText,
  gidWireText,
  Mtu,
  openDevice,
  parseGid,
  type QueuePair,
  WcStatus,
  wcStatusName,
  WorkCompletions,
  WrOpcode,
} from "../mod.ts";
import {
  DEVICE_PORT_FLAGS,
  type FlagSpec,
  integerOption,
  parseOptions,
  usageError,
} from "./lib/options.ts";
import { runMain } from "./lib/run_main.ts";
import { connectWithRetry, listenOnce, readExactly, writeAll } from "./lib/socket.ts";

const USAGE = "rc_pingpong.ts [options] [host]   (start the server without <host>)";
const FLAGS: Record<string, FlagSpec> = {
  port: {
    short: "p",
    type: "string",
    help: "<port>  listen on/connect to port <port> (default 18515)",
  },
  ...DEVICE_PORT_FLAGS,
  size: { short: "s", type: "string", help: "<size>  size of message to exchange (default 4096)" },
  mtu: { short: "m", type: "string", help: "<size>  path MTU (default 1024)" },
  "rx-depth": {
    short: "r",
    type: "string",
    help: "<dep>  number of receives to post at a time (default 500)",
  },
  iters: { short: "n", type: "string", help: "<iters>  number of exchanges (default 1000)" },
  sl: { short: "l", type: "string", help: "<sl>  service level value (default 0)" },
  events: { short: "e", type: "boolean", help: "sleep on CQ events (default poll)" },
  "gid-idx": { short: "g", type: "string", help: "<gid index>  local port gid index" },
  chk: { short: "c", type: "boolean", help: "validate received buffer" },
};

/** The exchange message: sizeof "0000:000000:000000:" plus 32 hex digits plus the NUL. */
const MESSAGE_BYTES = 52;
const DONE = new TextEncoder().encode("done\0");
const RECV_WRID = 1;
const SEND_WRID = 2;
const PAGE_SIZE = 4096;
const FILL = 0x7b;
const MTU_BY_BYTES: Record<number, number> = {
  256: Mtu.MTU_256,
  512: Mtu.MTU_512,
  1024: Mtu.MTU_1024,
  2048: Mtu.MTU_2048,
  4096: Mtu.MTU_4096,
};

interface Destination {
  lid: number;
  qpn: number;
  psn: number;
  gid: Uint8Array;
}

function encodeDestination(d: Destination): Uint8Array {
  const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0");
  const text = `${hex(d.lid, 4)}:${hex(d.qpn, 6)}:${hex(d.psn, 6)}:${gidWireText(d.gid)}`;
  const message = new Uint8Array(MESSAGE_BYTES); // the trailing NUL is already there
  message.set(new TextEncoder().encode(text));
  return message;
}

function decodeDestination(message: Uint8Array): Destination {
  const end = message.indexOf(0);
  const text = new TextDecoder().decode(message.subarray(0, end < 0 ? message.length : end));
  const m = /^([0-9a-f]+):([0-9a-f]+):([0-9a-f]+):([0-9a-f]{32})$/i.exec(text);
  if (!m) throw new TypeError(`could not parse the remote address message "${text}"`);
  return {
    lid: parseInt(m[1], 16),
    qpn: parseInt(m[2], 16),
    psn: parseInt(m[3], 16),
    gid: parseGid(m[4]),
  };
}

function describe(label: string, d: Destination): string {
  const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0");
  return `  ${label} LID 0x${hex(d.lid, 4)}, QPN 0x${hex(d.qpn, 6)}, PSN 0x${hex(d.psn, 6)}, ` +
    `GID ${gidCompactText(d.gid)}`;
}

/** INIT -> RTR -> RTS with exactly the attributes `ibv_rc_pingpong` uses. */
function connectQp(
  qp: QueuePair,
  remote: Destination,
  o: { port: number; mtu: number; sl: number; gidIndex: number },
): void {
  // A GRH only when the peer has a GID (its interface id is not zero), as the C tool decides.
  const global = remote.gid.subarray(8).some((b) => b !== 0);
  qp.toRtr(
    {
      qpn: remote.qpn,
      psn: remote.psn,
      lid: remote.lid,
      gid: global ? remote.gid : new Uint8Array(16),
    },
    {
      port: o.port,
      mtu: o.mtu,
      sl: o.sl,
      gidIndex: Math.max(o.gidIndex, 0),
      hopLimit: 1,
      maxDestRdAtomic: 1,
      minRnrTimer: 12,
    },
  );
  qp.toRts({ timeout: 14, retryCount: 7, rnrRetry: 7, maxRdAtomic: 1 });
}

/** The byte index of the first unexpected byte, or -1. */
function firstInvalid(buf: Uint8Array, pageStartsZero: boolean): number {
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if (i % PAGE_SIZE === 0) {
      if (b !== 0 && (pageStartsZero || b !== FILL)) return i;
    } else if (b !== FILL) return i;
  }
  return -1;
}

async function main(): Promise<number> {
  const parsed = parseOptions(Deno.args, USAGE, FLAGS, 1);
  const int = (name: string, fallback: number, min: number, max: number) =>
    integerOption(parsed, name, fallback, min, max, USAGE, FLAGS);
  const tcpPort = int("port", 18515, 1, 65535);
  const ibPort = int("ib-port", 1, 1, 255);
  const size = int("size", 4096, 1, 1 << 30);
  const mtuBytes = int("mtu", 1024, 256, 4096);
  const rxDepth = int("rx-depth", 500, 1, 1 << 16);
  const iters = int("iters", 1000, 1, 2 ** 31 - 1);
  const sl = int("sl", 0, 0, 15);
  const gidIndex = int("gid-idx", -1, -1, 255);
  const useEvents = parsed.values.events === true;
  const check = parsed.values.chk === true;
  const server = parsed.positionals[0];
  const mtu = MTU_BY_BYTES[mtuBytes];
  if (mtu === undefined) usageError(`invalid MTU ${mtuBytes}`, USAGE, FLAGS);
  const deviceName = parsed.values["ib-dev"] as string | undefined;

  using ctx = openDevice(deviceName);
  using pd = ctx.allocProtectionDomain();
  using cq = ctx.createCompletionQueue({ entries: rxDepth + 1, channel: useEvents });
  using qp = pd.createQueuePair({ type: "RC", sendCq: cq, maxSendWr: 1, maxRecvWr: rxDepth });
  const buf = new Uint8Array(size).fill(FILL);
  using mr = pd.registerMemory(buf);

  // INIT before posting receives (rxe refuses receives in RESET), with no remote access.
  qp.toInit({ port: ibPort, access: 0, pkeyIndex: 0 });
  const postRecvs = (n: number): number => {
    for (let i = 0; i < n; i++) qp.postRecv({ wrId: RECV_WRID, sge: { mr } });
    return n;
  };
  const postSend = () => qp.postSend({ wrId: SEND_WRID, opcode: WrOpcode.SEND, sge: { mr } });

  let routs = postRecvs(rxDepth);
  if (useEvents) cq.requestNotify();

  const port = ctx.queryPort(ibPort);
  const local: Destination = {
    lid: port.lid,
    qpn: qp.qpn,
    psn: qp.psn,
    gid: gidIndex >= 0 ? ctx.queryGid(ibPort, gidIndex).gid : new Uint8Array(16),
  };
  // The server listens before it reports, so a peer started on that line finds the port open.
  const listener = server === undefined ? listenOnce(tcpPort) : null;
  console.log(describe("local address: ", local));

  const linkOptions = { port: ibPort, mtu, sl, gidIndex };
  let remote: Destination;
  if (server !== undefined) {
    const conn = await connectWithRetry(server, tcpPort);
    try {
      await writeAll(conn, encodeDestination(local));
      remote = decodeDestination(await readExactly(conn, MESSAGE_BYTES));
      await writeAll(conn, DONE);
    } finally {
      conn.close();
    }
    connectQp(qp, remote, linkOptions);
  } else {
    const conn = await listener!.accept();
    try {
      remote = decodeDestination(await readExactly(conn, MESSAGE_BYTES));
      connectQp(qp, remote, linkOptions);
      await writeAll(conn, encodeDestination(local));
      const done = await readExactly(conn, DONE.length);
      if (!done.every((b, i) => b === DONE[i])) throw new Error("the client did not say done");
    } finally {
      conn.close();
    }
  }
  console.log(describe("remote address:", remote));

  const start = performance.now();
  let pending = RECV_WRID;
  if (server !== undefined) {
    // What the C tool writes when validating: 0 at every page start (i / page_size % 1).
    if (check) { for (let i = 0; i < size; i += PAGE_SIZE) buf[i] = 0; }
    postSend();
    pending |= SEND_WRID;
  }

  const wcs = new WorkCompletions(2);
  let rcnt = 0;
  let scnt = 0;
  while (rcnt < iters || scnt < iters) {
    let n: number;
    if (useEvents) {
      n = cq.poll(wcs);
      if (n === 0) {
        await cq.wait();
        continue;
      }
    } else {
      do n = cq.poll(wcs); while (n < 1);
    }
    for (let i = 0; i < n; i++) {
      const wrId = wcs.wrId(i);
      if (wcs.status(i) !== WcStatus.SUCCESS) {
        console.error(
          `Failed status ${wcStatusName(wcs.status(i))} (${wcs.status(i)}) for wr_id ${wrId}`,
        );
        return 1;
      }
      if (wrId === SEND_WRID) {
        scnt++;
      } else if (wrId === RECV_WRID) {
        if (--routs <= 1) routs += postRecvs(rxDepth - routs);
        rcnt++;
      } else {
        console.error(`Completion for unknown wr_id ${wrId}`);
        return 1;
      }
      pending &= ~wrId;
      if (scnt < iters && pending === 0) {
        postSend();
        pending = RECV_WRID | SEND_WRID;
      }
    }
  }
  const usec = (performance.now() - start) * 1000;
  const bytes = size * iters * 2;
  console.log(
    `${bytes} bytes in ${(usec / 1e6).toFixed(2)} seconds = ${(bytes * 8 / usec).toFixed(2)} ` +
      "Mbit/sec",
  );
  console.log(
    `${iters} iters in ${(usec / 1e6).toFixed(2)} seconds = ${(usec / iters).toFixed(2)} usec/iter`,
  );

  const bad = firstInvalid(buf, check);
  if (bad >= 0) {
    const page = Math.floor(bad / PAGE_SIZE);
    console.error(
      bad % PAGE_SIZE === 0
        ? `invalid data in page ${page}`
        : `invalid data at byte ${bad} (page ${page}): 0x${buf[bad].toString(16)}`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
