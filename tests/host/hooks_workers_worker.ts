/**
 * A Worker for tests/host/hooks_workers.test.ts: runs memHooks commands sent by the test, in this
 * isolate, and records what its own release listener sees.
 *
 * Each message is `{ id, cmd, ...args }`; the reply is `{ id, result }` or `{ id, error }`
 * ("flushLoop" first sends `{ id, started: true }`).
 *
 * @module
 */
import { type MemHookCallback, memHooks } from "../../hooks/mod.ts";
import { pointerAt } from "../../ffi/pointers.ts";
import { probe } from "./hooks_probe.ts";

/** A release this isolate's listener received. */
export interface SeenEvent {
  addr: bigint;
  len: number;
  flags: number;
}

/** A command of the test. */
export interface Command {
  id: number;
  cmd: string;
  /** "unmap": the regions to unmap, in this order, and their length in bytes. */
  addresses?: bigint[];
  length?: number;
  /** "flushLoop": flush until element 0 is nonzero, counting flushes in element 1. */
  control?: Int32Array;
}

const worker = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Command>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

const seen: SeenEvent[] = [];
const record: MemHookCallback = (addr, len, _cbdata, _fromAlloc, flags) =>
  seen.push({ addr, len, flags });
const recordAlloc: MemHookCallback = () => {};

function run(message: Command): unknown {
  switch (message.cmd) {
    case "init":
      return memHooks.init();
    case "tid":
      return probe.probe_gettid();
    case "register":
      return memHooks.registerRelease(record);
    case "registerAlloc":
      return memHooks.registerAlloc(recordAlloc);
    case "unregister":
      return memHooks.unregisterRelease(record);
    case "flush":
      return memHooks.flush();
    case "flushLoop": {
      // Blocks this isolate until told to stop: the test runs meanwhile, on its own thread.
      worker.postMessage({ id: message.id, started: true });
      const control = message.control!;
      while (Atomics.load(control, 0) === 0) {
        memHooks.flush();
        Atomics.add(control, 1, 1);
      }
      memHooks.flush();
      return Atomics.load(control, 1);
    }
    case "flushEvery":
      // flush() every millisecond, from a timer (a Worker busy in a loop ignores terminate()).
      setInterval(() => memHooks.flush(), 1);
      return true;
    case "unmap":
      for (const at of message.addresses!) {
        probe.probe_munmap(pointerAt(at), BigInt(message.length!));
      }
      return true;
    case "seen":
      memHooks.flush();
      return seen.splice(0);
    case "finalize":
      return memHooks.finalize();
    case "close":
      // Ends this Worker the natural way (self.close()), without finalize(), once the reply is out.
      setTimeout(() => worker.close(), 0);
      return true;
    default:
      throw new Error(`unknown command ${message.cmd}`);
  }
}

worker.onmessage = (event) => {
  const message = event.data;
  try {
    worker.postMessage({ id: message.id, result: run(message) });
  } catch (e) {
    worker.postMessage({ id: message.id, error: String(e) });
  }
};
