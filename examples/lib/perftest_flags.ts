/**
 * The perftest flags write_bw.ts and write_lat.ts share, and turning them into session options.
 *
 * @module
 */
import { DEVICE_PORT_FLAGS, type FlagSpec, integerOption, parseOptions } from "./options.ts";
import type { SessionOptions } from "./perftest_session.ts";

/** Largest inline size perftest accepts (its MAX_INLINE). */
const MAX_INLINE = 1024;

/** Flags of both tests (perftest's names and defaults). */
export const PERFTEST_FLAGS: Record<string, FlagSpec> = {
  ...DEVICE_PORT_FLAGS,
  size: { short: "s", type: "string", help: "<size>  size of message to exchange" },
  iters: { short: "n", type: "string", help: "<iters>  number of exchanges" },
  port: {
    short: "p",
    type: "string",
    help: "<port>  listen on/connect to port <port> (default 18515)",
  },
  gid_index: {
    short: "x",
    type: "string",
    help: "<index>  GID index (default: the IPv4-mapped RoCE v2 GID)",
  },
  sl: { short: "S", type: "string", help: "<sl>  service level (default 0)" },
  tclass: {
    type: "string",
    help: "<value>  traffic class in the GRH, when one is used (default 0)",
  },
  inline_size: {
    short: "I",
    type: "string",
    help: "<size>  max size of message to be sent inline " +
      "(default as perftest: 220 for latency on ConnectX, else 0)",
  },
  CPU_freq: {
    short: "F",
    type: "boolean",
    help: "accepted for perftest compatibility (no effect)",
  },
  report_gbits: { type: "boolean", help: "report bandwidth in Gb/sec instead of MB/sec" },
  source_ip: {
    type: "string",
    help: "<ip>  with -R: the local address the client connects from (default: the route's)",
  },
  rdma_cm: {
    short: "R",
    type: "boolean",
    help: "connect the queue pairs with the connection manager (on --port) instead of TCP",
  },
};

/** Parsed flags: session options plus the report choice and any extra flags' values. */
export interface PerftestArgs {
  session: SessionOptions;
  reportGbits: boolean;
  values: Record<string, string | boolean | undefined>;
  /** The integer value of a (test-specific) flag, with a usage error when out of range. */
  integer(name: string, fallback: number, min: number, max: number): number;
}

/** Parses perftest-style arguments; `extra` adds test-specific flags. */
export function parsePerftestArgs(
  args: string[],
  usage: string,
  test: string,
  defaults: { size: number; iters: number; txDepth: number; latency?: boolean },
  extra: Record<string, FlagSpec> = {},
): PerftestArgs {
  const flags = { ...PERFTEST_FLAGS, ...extra };
  const parsed = parseOptions(args, usage, flags, 1);
  const int = (name: string, fallback: number, min: number, max: number) =>
    integerOption(parsed, name, fallback, min, max, usage, flags);
  const size = int("size", defaults.size, 1, 1 << 30);
  const gidIndex = int("gid_index", -1, -1, 255);
  return {
    session: {
      test,
      device: parsed.values["ib-dev"] as string | undefined,
      ibPort: int("ib-port", 1, 1, 255),
      gidIndex: gidIndex < 0 ? undefined : gidIndex,
      serviceLevel: int("sl", 0, 0, 15),
      trafficClass: int("tclass", 0, 0, 255),
      size,
      iters: int("iters", defaults.iters, 2, 1 << 30),
      bufferBytes: size,
      txDepth: defaults.txDepth,
      maxInlineData: parsed.values.inline_size === undefined
        ? undefined
        : int("inline_size", 0, 0, MAX_INLINE),
      latency: defaults.latency === true,
      tcpPort: int("port", 18515, 1, 65535),
      host: parsed.positionals[0],
      rdmaCm: parsed.values.rdma_cm === true,
      sourceIp: parsed.values.source_ip as string | undefined,
    },
    reportGbits: parsed.values.report_gbits === true,
    values: parsed.values,
    integer: int,
  };
}
