/**
 * perftest's report layout: the banner with the test parameters, and the result tables of
 * ib_write_bw and ib_write_lat, so results compare line for line.
 *
 * @module
 */

/** perftest's separator line. */
export const RULE = "-".repeat(87);

/** The banner printed before the test (as perftest's, with the fields that apply here). */
export function banner(title: string, fields: [string, string | number][]): string {
  const lines = [RULE, `${" ".repeat(Math.max(0, 20))}${title}`];
  for (const [name, value] of fields) lines.push(` ${name.padEnd(15)} : ${value}`);
  lines.push(RULE);
  return lines.join("\n");
}

/** Bandwidth result of one run. */
export interface BandwidthResult {
  bytes: number;
  iters: number;
  /** Bytes per second over the best completion interval. */
  peakBytesPerSecond: number;
  /** Bytes per second from the first post to the last completion. */
  averageBytesPerSecond: number;
  /** Messages per second, average. */
  messagesPerSecond: number;
}

/** perftest: MB/sec is 2^20 bytes per second; Gb/sec is 10^9 bits per second. */
function bandwidthUnits(bytesPerSecond: number, gbits: boolean): number {
  return gbits ? bytesPerSecond * 8 / 1e9 : bytesPerSecond / 1048576;
}

/** The table header and row of ib_write_bw. */
export function bandwidthTable(r: BandwidthResult, gbits: boolean): string {
  const unit = gbits ? "Gb/sec" : "MB/sec";
  const header =
    ` #bytes     #iterations    BW peak[${unit}]    BW average[${unit}]   MsgRate[Mpps]`;
  // perftest: " %-7lu    %-10lu       %-7.2lf            %-7.2lf\t\t   %-7.6lf"
  const row = ` ${String(r.bytes).padEnd(7)}    ${String(r.iters).padEnd(10)}       ` +
    `${bandwidthUnits(r.peakBytesPerSecond, gbits).toFixed(2).padEnd(7)}            ` +
    `${bandwidthUnits(r.averageBytesPerSecond, gbits).toFixed(2).padEnd(7)}\t\t   ` +
    `${(r.messagesPerSecond / 1e6).toFixed(6).padEnd(7)}`;
  return [header, row, RULE].join("\n");
}

/** Latency statistics in microseconds. */
export interface LatencyResult {
  bytes: number;
  iters: number;
  min: number;
  max: number;
  /** The median. */
  typical: number;
  average: number;
  stdev: number;
  p99: number;
  p999: number;
}

/** Statistics of `samples` (microseconds), as perftest computes them. */
export function latencyStatistics(bytes: number, iters: number, samples: number[]): LatencyResult {
  if (samples.length === 0) throw new RangeError("no latency samples");
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const average = sorted.reduce((a, b) => a + b, 0) / n;
  const variance = sorted.reduce((a, b) => a + (b - average) ** 2, 0) / n;
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  return {
    bytes,
    iters,
    min: sorted[0],
    max: sorted[n - 1],
    typical: sorted[Math.floor(n / 2)],
    average,
    stdev: Math.sqrt(variance),
    p99: at(0.99),
    p999: at(0.999),
  };
}

/** The table header and row of ib_write_lat. */
export function latencyTable(r: LatencyResult): string {
  const header = " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    " +
    "t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] ";
  const f = (v: number) => v.toFixed(2);
  // perftest: " %-7lu %-7lu      %-7.2f        %-7.2f      %-7.2f  \t       %-7.2f     \t%-7.2f
  // \t\t%-7.2f \t\t%-7.2f"
  const row = ` ${String(r.bytes).padEnd(7)} ${String(r.iters).padEnd(7)}      ` +
    `${f(r.min).padEnd(7)}        ${f(r.max).padEnd(7)}      ${f(r.typical).padEnd(7)}  \t       ` +
    `${f(r.average).padEnd(7)}     \t${f(r.stdev).padEnd(7)} \t\t${f(r.p99).padEnd(7)} \t\t` +
    `${f(r.p999).padEnd(7)}`;
  return [header, row, RULE].join("\n");
}
