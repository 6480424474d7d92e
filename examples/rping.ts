/**
 * RDMA ping over the connection manager, speaking rdma-core's `rping` protocol, so it runs
 * against the real tool (either side, from Debian's rdmacm-utils) and against itself.
 *
 *     deno run -A examples/rping.ts -s [-a addr] [-p port] [-P] [-v] [-V] [-S size] [-C count] [-d]
 *     deno run -A examples/rping.ts -c -a addr [-I source] [-p port] [-v] [-V] [-S size] [-C count]
 *
 * Each ping: the client SENDs the advertisement {address, rkey, length} (big-endian 64, 32 and 32
 * bits) of its source buffer; the server RDMA READs it and SENDs a go-ahead; the client advertises
 * its sink buffer; the server RDMA WRITEs what it read there and SENDs a go-ahead. `-V` makes the
 * client compare sink with source. The client disconnects after `-C` pings (default: forever);
 * the server then exits 0 (or, with `-P`, waits for the next client). Messages go through a
 * RegistrationCache on the connection's protection domain.
 *
 * @module
 */
import {
  Access,
  type CmConnection,
  connect,
  listen,
  type MemoryRegion,
  type Registration,
  RegistrationCache,
  WcOpcode,
  WcStatus,
  wcStatusName,
  WorkCompletions,
  WrOpcode,
} from "../mod.ts";
import { type FlagSpec, integerOption, parseOptions, usageError } from "./lib/options.ts";
import { runMain } from "./lib/run_main.ts";

const USAGE = "rping.ts -s [-vVd] [-S size] [-C count] [-a addr] [-p port] [-P]\n" +
  "       rping.ts -c [-vVd] [-S size] [-C count] [-I addr] -a addr [-p port]";
const FLAGS: Record<string, FlagSpec> = {
  server: { short: "s", type: "boolean", help: "server side" },
  client: { short: "c", type: "boolean", help: "client side" },
  persistent: { short: "P", type: "boolean", help: "persistent server mode" },
  addr: {
    short: "a",
    type: "string",
    help: "<addr>  address (server: bind to, client: connect to)",
  },
  source: { short: "I", type: "string", help: "<addr>  source address to bind to for client" },
  port: { short: "p", type: "string", help: "<port>  port (default 7174)" },
  size: { short: "S", type: "string", help: "<size>  ping data size (default 64)" },
  count: { short: "C", type: "string", help: "<count>  ping count times (default: forever)" },
  verbose: { short: "v", type: "boolean", help: "display ping data to stdout" },
  validate: { short: "V", type: "boolean", help: "validate ping data" },
  debug: { short: "d", type: "boolean", help: "debug prints" },
};

/** struct rping_rdma_info: buf (be64), rkey (be32), size (be32). */
const INFO_BYTES = 16;
/** sizeof(stringify(INT_MAX)) + sizeof("rdma-ping-%d: ") */
const MIN_SIZE = 26;
const MAX_SIZE = 64 * 1024 - 1;
const STEP_TIMEOUT_MS = 30_000;

let debug = false;
function log(message: string): void {
  if (debug) console.error(message);
}

/** The peer disconnected: rping's DISCONNECTED state (exit 0 for the server). */
class PeerGone extends Error {}

/** One side's buffers and completion handling over `conn`. */
class Session implements Disposable {
  readonly #conn: CmConnection;
  readonly #cache: RegistrationCache;
  readonly #recvBuf = new Uint8Array(INFO_BYTES);
  readonly #sendBuf = new Uint8Array(INFO_BYTES);
  readonly #recvReg: Registration;
  readonly #sendReg: Registration;
  readonly #wcs = new WorkCompletions(8);
  #gone = false;

  constructor(conn: CmConnection) {
    this.#conn = conn;
    this.#cache = new RegistrationCache(conn.pd, { maxRegions: 16 });
    this.#recvReg = this.#cache.get(this.#recvBuf);
    this.#sendReg = this.#cache.get(this.#sendBuf);
    conn.closed.then(() => (this.#gone = true));
    this.postRecv();
  }

  postRecv(): void {
    this.#conn.qp.postRecv({ wrId: 1n, sge: this.#recvReg });
  }

  /** SENDs the advertisement of `mr` (`length` bytes of it), or the current send buffer. */
  send(mr?: MemoryRegion, length?: number): void {
    if (mr !== undefined) {
      const v = new DataView(this.#sendBuf.buffer);
      v.setBigUint64(0, mr.address, false);
      v.setUint32(8, mr.rkey, false);
      v.setUint32(12, length ?? mr.length, false);
      log(`RDMA addr ${mr.address.toString(16)} rkey ${mr.rkey.toString(16)} len ${length}`);
    }
    this.#conn.qp.postSend({ opcode: WrOpcode.SEND, sge: this.#sendReg });
  }

  /** Posts an RDMA READ or WRITE of `length` bytes of `mr` with the peer's buffer. */
  rdma(opcode: number, mr: MemoryRegion, length: number, address: bigint, rkey: number): void {
    this.#conn.qp.postSend({
      opcode,
      sge: { mr, length },
      remoteAddress: address,
      rkey,
    });
  }

  /**
   * Waits for a completion of `opcode` (send completions are skipped), reposting the receive
   * after a RECV; returns the received advertisement for a RECV. Flushed completions or the peer's
   * disconnect throw PeerGone.
   */
  async waitFor(opcode: number): Promise<{ address: bigint; rkey: number; length: number }> {
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    for (;;) {
      const n = await this.#conn.cq.pollOrWait(this.#wcs, { timeoutMs: 200 });
      for (let i = 0; i < n; i++) {
        const status = this.#wcs.status(i);
        if (status === WcStatus.WR_FLUSH_ERR) throw new PeerGone();
        if (status !== WcStatus.SUCCESS) {
          throw new Error(`cq completion failed status ${status} (${wcStatusName(status)})`);
        }
        const got = this.#wcs.opcode(i);
        if (got === WcOpcode.SEND) {
          log("send completion");
          continue;
        }
        if (got !== opcode) throw new Error(`unexpected completion opcode ${got}`);
        if (got === WcOpcode.RECV) {
          log("recv completion");
          if (this.#wcs.byteLength(i) !== INFO_BYTES) {
            throw new Error(`Received bogus data, size ${this.#wcs.byteLength(i)}`);
          }
          const v = new DataView(this.#recvBuf.buffer);
          const info = {
            address: v.getBigUint64(0, false),
            rkey: v.getUint32(8, false),
            length: v.getUint32(12, false),
          };
          this.postRecv();
          log(
            `Received rkey ${info.rkey.toString(16)} addr ${info.address.toString(16)} ` +
              `len ${info.length} from peer`,
          );
          return info;
        }
        return { address: 0n, rkey: 0, length: 0 };
      }
      if (n === 0 && this.#gone) throw new PeerGone();
      if (performance.now() > deadline) {
        throw new Error(`no completion within ${STEP_TIMEOUT_MS} ms`);
      }
    }
  }

  [Symbol.dispose](): void {
    this.#recvReg.release();
    this.#sendReg.release();
    this.#cache.close();
  }
}

/** rping_test_client: `count` pings (0: forever). */
async function runClient(
  conn: CmConnection,
  size: number,
  count: number,
  verbose: boolean,
  validate: boolean,
) {
  using session = new Session(conn);
  const start = new Uint8Array(size);
  const sink = new Uint8Array(size);
  using startMr = conn.pd.registerMemory(start, {
    access: Access.LOCAL_WRITE | Access.REMOTE_READ,
  });
  using sinkMr = conn.pd.registerMemory(sink, {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  const encoder = new TextEncoder();
  let first = 65;
  for (let ping = 0; count === 0 || ping < count; ping++) {
    const head = encoder.encode(`rdma-ping-${ping}: `).subarray(0, size);
    start.set(head);
    for (let i = head.length, c = first; i < size; i++) {
      start[i] = c;
      c = c + 1 > 122 ? 65 : c + 1;
    }
    first = first + 1 > 122 ? 65 : first + 1;
    start[size - 1] = 0;

    session.send(startMr, size);
    await session.waitFor(WcOpcode.RECV); // the server read it: RDMA_WRITE_ADV
    session.send(sinkMr, size);
    await session.waitFor(WcOpcode.RECV); // the server wrote it: RDMA_WRITE_COMPLETE
    if (validate && start.some((byte, i) => sink[i] !== byte)) {
      console.error("data mismatch!");
      return 1;
    }
    if (verbose) console.log(`ping data: ${cString(sink)}`);
  }
  return 0;
}

/** The bytes of `buffer` up to its first NUL, as text. */
function cString(buffer: Uint8Array): string {
  const end = buffer.indexOf(0);
  return new TextDecoder().decode(buffer.subarray(0, end < 0 ? buffer.length : end));
}

/** rping_test_server: serves pings until the client disconnects. */
async function runServer(conn: CmConnection, size: number, verbose: boolean) {
  using session = new Session(conn);
  const buffer = new Uint8Array(size);
  using mr = conn.pd.registerMemory(buffer);
  try {
    for (;;) {
      const source = await session.waitFor(WcOpcode.RECV);
      log("server received sink adv");
      if (source.length > size) {
        throw new Error(`the client's buffer (${source.length} bytes) is larger than -S ${size}`);
      }
      session.rdma(WrOpcode.RDMA_READ, mr, source.length, source.address, source.rkey);
      await session.waitFor(WcOpcode.RDMA_READ);
      log("server received read complete");
      if (verbose) console.log(`server ping data: ${cString(buffer)}`);
      session.send();
      const sink = await session.waitFor(WcOpcode.RECV);
      const length = Math.min(buffer.indexOf(0) < 0 ? size : buffer.indexOf(0) + 1, sink.length);
      session.rdma(WrOpcode.RDMA_WRITE, mr, length, sink.address, sink.rkey);
      await session.waitFor(WcOpcode.RDMA_WRITE);
      log("server rdma write complete");
      session.send();
    }
  } catch (error) {
    if (error instanceof PeerGone) return 0;
    throw error;
  }
}

async function main(): Promise<number> {
  const parsed = parseOptions(Deno.args, USAGE, FLAGS, 0);
  const { values } = parsed;
  const fail = (message: string): never => usageError(message, USAGE, FLAGS);
  const port = integerOption(parsed, "port", 7174, 1, 65535, USAGE, FLAGS);
  const size = integerOption(parsed, "size", 64, MIN_SIZE, MAX_SIZE, USAGE, FLAGS);
  const count = integerOption(parsed, "count", 0, 0, 2 ** 31 - 1, USAGE, FLAGS);
  if (values.server === values.client) fail("give exactly one of -s and -c");
  debug = values.debug === true;
  const address = values.addr as string | undefined;
  const verbose = values.verbose === true;
  if (values.client) {
    if (address === undefined) fail("the client needs -a <addr>");
    using conn = await connect({
      host: address!,
      port,
      source: values.source as string | undefined,
      qp: { maxSendWr: 16, maxRecvWr: 2, cqEntries: 32 },
    });
    log("rdma_connect successful");
    const status = await runClient(conn, size, count, verbose, values.validate === true);
    conn.disconnect();
    return status;
  }
  using listener = listen({
    host: address,
    port,
    qp: { maxSendWr: 16, maxRecvWr: 2, cqEntries: 32 },
  });
  log(`listening on ${listener.host} port ${listener.port}`);
  do {
    using conn = await listener.accept();
    log(`accepted a connection from ${conn.remoteAddress}`);
    const status = await runServer(conn, size, verbose);
    if (status !== 0) return status;
  } while (values.persistent);
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
