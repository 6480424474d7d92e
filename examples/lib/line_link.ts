/**
 * The examples' out-of-band messages (lines of text) over either of two links: a TCP connection,
 * or SEND/RECV on a queue pair the connection manager connected (perftest's `-R`, where no TCP is
 * used at all).
 *
 * @module
 */
import {
  Access,
  type CmConnection,
  type MemoryRegion,
  WcOpcode,
  WcStatus,
  WorkCompletions,
  WrOpcode,
} from "../../mod.ts";
import { readLine, writeLine } from "./socket.ts";

/** One line at a time each way; both ends read and write at the same points. */
export interface LineLink extends Disposable {
  writeLine(line: string): Promise<void>;
  readLine(): Promise<string>;
}

/** Lines over a TCP connection (closed with the link). */
export function tcpLines(conn: Deno.TcpConn): LineLink {
  return {
    writeLine: (line) => writeLine(conn, line),
    readLine: () => readLine(conn),
    [Symbol.dispose]: () => conn.close(),
  };
}

/** The longest line over a queue pair (one SEND each). */
const QP_LINE_BYTES = 4096;
const SEND_ID = 0xfffffff0n, RECV_ID = 0xfffffff1n;
const LINE_WAIT_MS = 30_000;

/**
 * Lines as SENDs on `conn`'s queue pair, received into a posted receive. Its completion queue must
 * have nothing else outstanding while a line goes either way (the tests' writes are complete
 * before their results are sent). A receive is always posted, so the peer's next line has a place
 * to land (a SEND before it would be retried: receiver-not-ready, `rnrRetryCount`).
 */
export function qpLines(conn: CmConnection): LineLink {
  const sendBytes = new Uint8Array(QP_LINE_BYTES), recvBytes = new Uint8Array(QP_LINE_BYTES);
  const access = { access: Access.LOCAL_WRITE };
  const mrs: MemoryRegion[] = [
    conn.pd.registerMemory(sendBytes, access),
    conn.pd.registerMemory(recvBytes, access),
  ];
  const [sendMr, recvMr] = mrs;
  const wcs = new WorkCompletions(1); // one at a time: a send's and a line's may come together
  const postRecv = () => conn.qp.postRecv({ wrId: RECV_ID, sge: { mr: recvMr } });
  postRecv();
  /** The next completion, which must be `wrId`'s and successful. */
  const next = async (wrId: bigint, what: string) => {
    const n = await conn.cq.pollOrWait(wcs, { timeoutMs: LINE_WAIT_MS });
    if (n === 0) throw new Error(`no ${what} from the peer within ${LINE_WAIT_MS / 1000} s`);
    const wc = wcs.get(0);
    if (wc.status !== WcStatus.SUCCESS) {
      throw new Error(`the ${what} failed: work completion status ${wc.status}`);
    }
    if (wc.wrId !== wrId) {
      throw new Error(`an unexpected completion (wrId ${wc.wrId}) in a ${what}`);
    }
    return wc;
  };
  return {
    async writeLine(line) {
      const bytes = new TextEncoder().encode(line);
      if (bytes.length > QP_LINE_BYTES) throw new Error(`a line over ${QP_LINE_BYTES} bytes`);
      sendBytes.set(bytes);
      conn.qp.postSend({
        wrId: SEND_ID,
        opcode: WrOpcode.SEND,
        signaled: true,
        sge: { mr: sendMr, length: bytes.length },
      });
      await next(SEND_ID, "line sent");
    },
    async readLine() {
      const wc = await next(RECV_ID, "line");
      if (wc.opcode !== WcOpcode.RECV) throw new Error(`a line arrived as opcode ${wc.opcode}`);
      const line = new TextDecoder().decode(recvBytes.subarray(0, wc.byteLength));
      postRecv();
      return line;
    },
    [Symbol.dispose]() {
      for (const mr of mrs) mr.close();
    },
  };
}
