/**
 * The connection set-up shared by write_bw.ts and write_lat.ts: one RC queue pair on a device, one
 * remotely writable buffer, and an exchange (one JSON line each way) of what the peer needs to
 * connect and to write into that buffer: over TCP, or with `-R` (`rdmaCm`) over the queue pair the
 * connection manager connected (listen on the port / connect by IP address, as perftest's `-R`).
 * Both sides must be started with the same test, message size and iteration count; a mismatch
 * stops both with a clear message.
 *
 * This is not perftest's wire protocol: these examples run against each other.
 *
 * @module
 */
import { addressOf } from "../../ffi/pointers.ts";
import {
  Access,
  type CmConnection,
  type CompletionQueue,
  connect,
  type Context,
  gidWireText,
  listen,
  type MemoryRegion,
  openDevice,
  parseGid,
  type ProtectionDomain,
  type QueuePair,
} from "../../mod.ts";
import { type LineLink, qpLines, tcpLines } from "./line_link.ts";
import { acceptOne, connectWithRetry } from "./socket.ts";

/** What `openSession` needs. */
export interface SessionOptions {
  /** "RDMA_Write BW" or "RDMA_Write Latency"; both ends must run the same test. */
  test: string;
  device?: string;
  ibPort: number;
  /** Local GID index; default: the library's choice (IPv4-mapped RoCE v2 on RoCE). */
  gidIndex?: number;
  /** Service level (InfiniBand QoS). Default 0. */
  serviceLevel?: number;
  /** GRH traffic class (RoCE: the DSCP and ECN bits). Default 0. */
  trafficClass?: number;
  /** Message size in bytes. */
  size: number;
  iters: number;
  /** Bytes of the registered buffer (at least `size`). */
  bufferBytes: number;
  /** Send queue depth (outstanding writes). */
  txDepth: number;
  /** Largest message sent inline (IBV_SEND_INLINE); 0 for none. Default: `defaultInlineSize`. */
  maxInlineData?: number;
  /** A latency test (perftest inlines small writes there by default). */
  latency?: boolean;
  tcpPort: number;
  /** The server's address; absent on the server. */
  host?: string;
  /** Connect through the connection manager on `tcpPort` (perftest's `-R`) instead of TCP. */
  rdmaCm?: boolean;
  /** With `rdmaCm`: the client's local address. */
  sourceIp?: string;
}

/** One end of a connected test. Dispose it to close everything. */
export interface Session extends Disposable {
  ctx: Context;
  pd: ProtectionDomain;
  cq: CompletionQueue;
  qp: QueuePair;
  /** The registered buffer: the peer may write into it. */
  buffer: Uint8Array;
  mr: MemoryRegion;
  /** Where to write in the peer's buffer. */
  remoteAddress: bigint;
  remoteKey: number;
  /** Out-of-band channel to the peer (lines of text): TCP, or the queue pair itself with `-R`. */
  link: LineLink;
  isClient: boolean;
  /** Connection details for the report, one line per end. */
  addressLines: string[];
  /** The GID index in use, and the path MTU in bytes, for the report. */
  gidIndex: number;
  mtuBytes: number;
  /** Messages up to this many bytes go inline (`SessionOptions.maxInlineData`). */
  maxInlineData: number;
}

interface Announcement {
  test: string;
  size: number;
  iters: number;
  lid: number;
  qpn: number;
  psn: number;
  gid: string;
  mtu: number;
  rkey: number;
  address: string;
}

function hex(value: number | bigint, digits: number): string {
  return value.toString(16).padStart(digits, "0");
}

/** perftest's "local address" / "remote address" lines (its printf formats). */
function addressLine(label: string, a: Announcement): string {
  const gid = Array.from(parseGid(a.gid), (b) => String(b).padStart(2, "0")).join(":");
  return ` ${label} address: LID ${hex(a.lid, 4)} QPN 0x${hex(a.qpn, 4)} PSN 0x${hex(a.psn, 4)}` +
    ` RKey 0x${hex(a.rkey, 6)} VAddr 0x${hex(BigInt(a.address), 14)}\n GID: ${gid}`;
}

/**
 * Sends a line to the peer and reads its line; both ends call it at the same point. The client
 * writes first and the server reads first, so a link that carries one message at a time (a queue
 * pair's) never has both outstanding.
 */
export async function exchangeLines(
  link: LineLink,
  line: string,
  client: boolean,
): Promise<string> {
  if (!client) {
    const reply = await link.readLine();
    await link.writeLine(line);
    return reply;
  }
  await link.writeLine(line);
  return await link.readLine();
}

/** Bytes of a page: the buffer starts on one, as perftest's (memalign to the page size). */
const PAGE_BYTES = 4096;

/**
 * `bytes` zeroed bytes starting on a page boundary, so a message occupies as few pages as it can
 * (rxe copies page by page; a 4 KiB message at an unaligned address touches two).
 */
function pageAlignedBuffer(bytes: number): Uint8Array {
  const backing = new Uint8Array(bytes + PAGE_BYTES - 1);
  const address = Number(addressOf(backing));
  const offset = (PAGE_BYTES - (address % PAGE_BYTES)) % PAGE_BYTES;
  return backing.subarray(offset, offset + bytes);
}

/** Mellanox/NVIDIA's PCI vendor id (ConnectX HCAs). */
const MELLANOX_VENDOR_ID = 0x02c9;

/**
 * perftest's default inline size: 220 bytes for a WRITE latency test on a device it knows (the
 * ConnectX family), 0 otherwise (bandwidth tests, and devices such as rxe).
 */
export function defaultInlineSize(latency: boolean, vendorId: number): number {
  return latency && vendorId === MELLANOX_VENDOR_ID ? 220 : 0;
}

/**
 * Opens the device, creates the queue pair and buffer, exchanges connection details with the peer
 * (the client connects to `host`, the server accepts), connects the queue pair, and waits until
 * both ends are ready to run.
 */
export async function openSession(o: SessionOptions): Promise<Session> {
  const closers: Disposable[] = [];
  const close = () => {
    for (const c of closers.reverse()) c[Symbol.dispose]();
    closers.length = 0;
  };
  try {
    let cm: CmConnection | undefined;
    let ctx: Context, pd: ProtectionDomain, cq: CompletionQueue, qp: QueuePair;
    let maxInlineData: number;
    if (o.rdmaCm) {
      // The device is the one the address routes to (as perftest's -R, -d is not needed).
      maxInlineData = o.maxInlineData ?? 0;
      const qpOptions = {
        maxSendWr: o.txDepth,
        maxRecvWr: 2,
        maxInlineData,
        signalAll: false,
        cqEntries: Math.max(o.txDepth, 16),
      };
      if (o.host === undefined) {
        using listener = listen({ port: o.tcpPort });
        cm = await listener.accept({ timeoutMs: 120_000 });
      } else {
        cm = await connectCmWithRetry(o.host, o.tcpPort, o.sourceIp, qpOptions);
      }
      closers.push(cm);
      ({ context: ctx, pd, cq, qp } = cm);
    } else {
      ctx = openDevice(o.device);
      closers.push(ctx);
      pd = ctx.allocProtectionDomain();
      closers.push(pd);
      cq = ctx.createCompletionQueue({ entries: Math.max(o.txDepth, 16) });
      closers.push(cq);
      maxInlineData = o.maxInlineData ??
        defaultInlineSize(o.latency === true, ctx.queryDevice().vendorId);
      qp = pd.createQueuePair({
        type: "RC",
        sendCq: cq,
        maxSendWr: o.txDepth,
        maxRecvWr: 1,
        maxInlineData,
        signalAll: false,
      });
      closers.push(qp);
    }
    const buffer = pageAlignedBuffer(o.bufferBytes);
    const mr = pd.registerMemory(buffer, { access: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    closers.push(mr);

    const info = qp.localInfo(
      o.gidIndex === undefined ? { port: o.ibPort } : {
        port: o.ibPort,
        gidIndex: o.gidIndex,
      },
    );
    const mine: Announcement = {
      test: o.test,
      size: o.size,
      iters: o.iters,
      lid: info.lid,
      qpn: info.qpn,
      psn: info.psn,
      gid: gidWireText(parseGid(info.gid)),
      mtu: info.mtu,
      rkey: mr.rkey,
      address: mr.address.toString(),
    };
    const client = o.host !== undefined;
    const link = cm !== undefined
      ? qpLines(cm)
      : tcpLines(client ? await connectWithRetry(o.host!, o.tcpPort) : await acceptOne(o.tcpPort));
    closers.push(link);
    const theirs = JSON.parse(
      await exchangeLines(link, JSON.stringify(mine), client),
    ) as Announcement;
    for (const key of ["test", "size", "iters"] as const) {
      if (theirs[key] !== mine[key]) {
        throw new Error(
          `the peer runs with ${key} ${theirs[key]} and this end with ${mine[key]}; ` +
            "start both ends with the same test and flags",
        );
      }
    }
    if (cm === undefined) {
      qp.connect(
        {
          qpn: theirs.qpn,
          psn: theirs.psn,
          lid: theirs.lid,
          gid: parseGid(theirs.gid),
          mtu: theirs.mtu,
        },
        {
          port: o.ibPort,
          gidIndex: info.gidIndex,
          sl: o.serviceLevel,
          trafficClass: o.trafficClass,
          access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
        },
      );
    }
    // Both queue pairs are ready to receive before either end starts writing.
    if (await exchangeLines(link, "ready", client) !== "ready") {
      throw new Error("the peer is not ready");
    }
    return {
      ctx,
      pd,
      cq,
      qp,
      buffer,
      mr,
      remoteAddress: BigInt(theirs.address),
      remoteKey: theirs.rkey,
      link,
      isClient: client,
      addressLines: [addressLine("local", mine), addressLine("remote", theirs)],
      gidIndex: info.gidIndex,
      mtuBytes: 128 << Math.min(info.mtu, theirs.mtu),
      maxInlineData,
      [Symbol.dispose]: close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

/**
 * Connects through the connection manager, retrying while nobody listens yet (the server may
 * still be starting, as connectWithRetry does for TCP).
 */
async function connectCmWithRetry(
  host: string,
  port: number,
  source: string | undefined,
  qp: { maxSendWr: number; maxRecvWr: number; maxInlineData: number; signalAll: boolean },
  retryMs = 20_000,
): Promise<CmConnection> {
  const deadline = performance.now() + retryMs;
  for (;;) {
    try {
      return await connect({ host, port, source, qp });
    } catch (e) {
      if ((e as { code?: string }).code !== "ECONNREFUSED" || performance.now() > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A deterministic byte pattern (differs between seeds and at every position mod 251). */
export function fillPattern(bytes: Uint8Array, seed: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + seed * 13) % 251;
}

/** The index of the first byte of `bytes` that differs from fillPattern(seed), or -1. */
export function patternMismatch(bytes: Uint8Array, seed: number): number {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== (i * 7 + seed * 13) % 251) return i;
  return -1;
}
