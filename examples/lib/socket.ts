/**
 * Out-of-band TCP for the examples: connect with retries (the peer may still be starting), accept
 * one connection, and read or write exact byte counts.
 *
 * @module
 */

/** Connects to `host:port`, retrying refused connections for up to `retryMs` milliseconds. */
export async function connectWithRetry(
  host: string,
  port: number,
  retryMs = 20_000,
): Promise<Deno.TcpConn> {
  const deadline = performance.now() + retryMs;
  for (;;) {
    try {
      return await Deno.connect({ hostname: host, port });
    } catch (e) {
      if (!(e instanceof Deno.errors.ConnectionRefused) || performance.now() > deadline) {
        throw new Error(`cannot connect to ${host}:${port}: ${(e as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A listener that accepts one connection and then stops listening. */
export interface OneShotListener {
  accept(): Promise<Deno.TcpConn>;
}

/** Listens on `port` (all IPv4 addresses) now; `accept()` takes one connection and closes it. */
export function listenOnce(port: number): OneShotListener {
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  return {
    async accept() {
      try {
        return await listener.accept();
      } finally {
        listener.close();
      }
    },
  };
}

/** Listens on `port` (all IPv4 addresses), accepts one connection and stops listening. */
export function acceptOne(port: number): Promise<Deno.TcpConn> {
  return listenOnce(port).accept();
}

/** Reads exactly `n` bytes; Error if the peer closes first. */
export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const read = await conn.read(out.subarray(got));
    if (read === null) throw new Error(`connection closed after ${got} of ${n} bytes`);
    got += read;
  }
  return out;
}

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** Reads one newline-terminated line (without the newline); Error if the peer closes first. */
export async function readLine(conn: Deno.Conn): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (;;) {
    const n = await conn.read(one);
    if (n === null) throw new Error("connection closed in the middle of a message");
    if (one[0] === 0x0a) return new TextDecoder().decode(new Uint8Array(bytes));
    bytes.push(one[0]);
    if (bytes.length > 65536) throw new Error("message line longer than 64 KiB");
  }
}

/** Writes `text` and a newline. */
export async function writeLine(conn: Deno.Conn, text: string): Promise<void> {
  await writeAll(conn, new TextEncoder().encode(text + "\n"));
}
