/**
 * Command-line parsing for the examples: getopt-like short and long flags, `--help`, and integer
 * options with range checks. Bad input prints the problem and the usage and exits with status 2, as rdma-core's and perftest's tools do.
 *
 * @module
 */
/** One flag: its long name is the key it is declared under. */
export interface FlagSpec {
  short?: string;
  /** "string" takes a value; "boolean" does not. */
  type: "string" | "boolean";
  /** Shown in --help, e.g. "<port>  listen on/connect to port <port> (default 18515)". */
  help: string;
}

/** `-d`/`--ib-dev`, as rdma-core's and perftest's tools spell it. */
const DEVICE_FLAG: Record<string, FlagSpec> = {
  "ib-dev": {
    short: "d",
    type: "string",
    help: "<dev>  use IB device <dev> (default first device found)",
  },
};

/** `-d`/`--ib-dev` and `-i`/`--ib-port`. */
export const DEVICE_PORT_FLAGS: Record<string, FlagSpec> = {
  ...DEVICE_FLAG,
  "ib-port": {
    short: "i",
    type: "string",
    help: "<port>  use port <port> of IB device (default 1)",
  },
};

/** What `parseOptions` returns: flag values by long name, and the positional arguments. */
export interface ParsedOptions {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Exit status for a usage error. */
export const EXIT_USAGE = 2;

/** The usage text: a first line, then one line per flag. */
export function usageText(usage: string, flags: Record<string, FlagSpec>): string {
  const lines = [`Usage: ${usage}`, "", "Options:"];
  for (const [name, spec] of Object.entries(flags)) {
    const short = spec.short ? `-${spec.short}, ` : "    ";
    const [argument, ...text] = spec.type === "string"
      ? spec.help.split("  ")
      : ["", ...spec.help.split("  ")];
    const left = `  ${short}--${name}${argument ? `=${argument}` : ""}`;
    lines.push(`${left.padEnd(30)} ${text.join("  ").trim()}`);
  }
  lines.push(`${"  -h, --help".padEnd(30)} print this help and exit`);
  return lines.join("\n");
}

/** Prints `message` and the usage to stderr, then exits with EXIT_USAGE. */
export function usageError(message: string, usage: string, flags: Record<string, FlagSpec>): never {
  console.error(`${message}\n\n${usageText(usage, flags)}`);
  Deno.exit(EXIT_USAGE);
}

/**
 * Parses `args` as getopt_long does: `-p 5`, `-p5`, `--port 5`, `--port=5`, combined short
 * booleans (`-ec`), and `--` to end the options. Prints the usage and exits 0 on `-h`/`--help`;
 * exits EXIT_USAGE on an unknown flag, a missing value, or more than `maxPositionals` positional
 * arguments.
 */
export function parseOptions(
  args: string[],
  usage: string,
  flags: Record<string, FlagSpec>,
  maxPositionals: number,
): ParsedOptions {
  const fail = (message: string): never => usageError(message, usage, flags);
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(flags)) if (spec.short) byShort.set(spec.short, name);
  const values: ParsedOptions["values"] = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      if (name === "help") {
        help = true;
        continue;
      }
      const spec = flags[name];
      if (!spec) fail(`unknown option --${name}`);
      if (spec.type === "boolean") {
        if (eq >= 0) fail(`option --${name} takes no value`);
        values[name] = true;
      } else if (eq >= 0) {
        values[name] = arg.slice(eq + 1);
      } else {
        if (i + 1 >= args.length) fail(`option --${name} needs a value`);
        values[name] = args[++i];
      }
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j];
        if (letter === "h") {
          help = true;
          continue;
        }
        const name = byShort.get(letter);
        if (name === undefined) fail(`unknown option -${letter}`);
        if (flags[name!].type === "boolean") {
          values[name!] = true;
          continue;
        }
        if (j + 1 < arg.length) values[name!] = arg.slice(j + 1);
        else if (i + 1 < args.length) values[name!] = args[++i];
        else fail(`option -${letter} needs a value`);
        break;
      }
    } else {
      positionals.push(arg);
    }
  }
  if (help) {
    console.log(usageText(usage, flags));
    Deno.exit(0);
  }
  if (positionals.length > maxPositionals) {
    fail(`unexpected argument: ${positionals[maxPositionals]}`);
  }
  return { values, positionals };
}

/**
 * The integer value of string flag `name`, or `fallback` when absent. Accepts decimal and 0x hex.
 * Out of [min, max] or not an integer: usage error.
 */
export function integerOption(
  parsed: ParsedOptions,
  name: string,
  fallback: number,
  min: number,
  max: number,
  usage: string,
  flags: Record<string, FlagSpec>,
): number {
  const raw = parsed.values[name];
  if (raw === undefined) return fallback;
  const text = String(raw).trim();
  const value = /^0x[0-9a-f]+$/i.test(text)
    ? parseInt(text, 16)
    : /^-?\d+$/.test(text)
    ? Number(text)
    : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    usageError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`, usage, flags);
  }
  return value;
}
