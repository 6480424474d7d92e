// Running the examples and rdma-core's tools as child processes in the rxe suite: output is
// collected as it arrives, so a test can wait for a line (a server ready to accept) before it
// starts the peer, and every process is killed if it outlives its time limit.

/** Where the two "hosts" of the soft-RoCE guest are (softroce/README.md). */
export const HOST_A = {
  netns: "hostA",
  address: Deno.env.get("DENO_RDMA_HOST_A") ?? "10.10.0.1",
  device: Deno.env.get("DENO_RDMA_DEVICE_A") ?? "rxeA",
  gidIndex: Deno.env.get("DENO_RDMA_GID_INDEX_A") ?? "1",
};
export const HOST_B = {
  netns: "hostB",
  address: Deno.env.get("DENO_RDMA_HOST_B") ?? "10.10.0.2",
  device: Deno.env.get("DENO_RDMA_DEVICE_B") ?? "rxeB",
  gidIndex: Deno.env.get("DENO_RDMA_GID_INDEX_B") ?? "1",
};

const ROOT = new URL("../..", import.meta.url).pathname;

/** `deno run` of an example, as the argument list of a command. */
export function example(name: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-all", "--no-check", `examples/${name}`, ...args];
}

/** A running child process with its combined stdout and stderr. */
export class Child {
  output = "";
  readonly #process: Deno.ChildProcess;
  readonly #pumped: Promise<void>;
  readonly #timer: ReturnType<typeof setTimeout>;
  #waiters: (() => void)[] = [];

  /** Starts `command` inside network namespace `netns` (`ip netns exec`), killed after limitMs. */
  constructor(netns: string, command: string[], limitMs = 120_000) {
    this.#process = new Deno.Command("ip", {
      args: ["netns", "exec", netns, ...command],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#pumped = Promise.all([this.#pump(this.#process.stdout), this.#pump(this.#process.stderr)])
      .then(() => {});
    this.#timer = setTimeout(() => {
      try {
        this.#process.kill("SIGKILL");
      } catch { /* already gone */ }
    }, limitMs);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.output += decoder.decode(chunk, { stream: true });
      for (const wake of this.#waiters.splice(0)) wake();
    }
  }

  /** Resolves when the output matches `pattern`; rejects after timeoutMs or if the process ends. */
  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    this.#pumped.then(() => ended = true);
    while (!pattern.test(this.output)) {
      if (ended) throw new Error(`process ended without printing ${pattern}:\n${this.output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the exit; returns the status code and all output. */
  async finish(): Promise<{ code: number; output: string }> {
    const { code } = await this.#process.status;
    await this.#pumped;
    clearTimeout(this.#timer);
    return { code, output: this.output };
  }
}
