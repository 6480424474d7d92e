/**
 * GIDs (16-byte port addresses) and their text forms: IPv6 text as RFC 4291 section 2.2 writes it
 * (an IPv4 address in dotted decimal may end it), a bare dotted-decimal IPv4 address (a RoCE GID
 * ::ffff:a.b.c.d), and rdma-core's 32 hex digits in byte order (the wire form of its pingpong
 * examples). Parsing is strict: anything else is a RangeError, never a guess.
 *
 * @module
 */

/** One IPv6 group: one to four hex digits. */
const GROUP = /^[0-9a-fA-F]{1,4}$/;
/** One dotted-decimal byte: 0 to 255 without a leading zero (as inet_pton reads it). */
const DECIMAL_BYTE = /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const WIRE = /^[0-9a-fA-F]{32}$/;

/** Whether a (RoCE) GID holds an IPv4 address (::ffff:a.b.c.d). */
export function isIpv4MappedGid(gid: Uint8Array): boolean {
  return gid.subarray(0, 12).every((b, i) => b === (i >= 10 ? 255 : 0));
}

/** `parseGid`, naming the argument `name` in its errors. */
export function gidBytes(name: string, value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length !== 16) throw new RangeError(`${name} must be 16 bytes, got ${value.length}`);
    return value;
  }
  if (typeof value !== "string") {
    throw new TypeError(`${name} must be a 16-byte Uint8Array or a string`);
  }
  const parsed = WIRE.test(value) ? parseWire(value) : parseAddress(value);
  if (parsed === null) throw new RangeError(`${name} is not a GID: ${JSON.stringify(value)}`);
  return parsed;
}

/**
 * A GID from 16 bytes (returned as they are), IPv6 text ("fe80::1", "::ffff:10.0.0.1"), a
 * dotted-decimal IPv4 address ("10.0.0.1", read as ::ffff:10.0.0.1) or 32 hex digits in byte
 * order. TypeError for another type, RangeError for text in none of these forms.
 */
export function parseGid(value: Uint8Array | string): Uint8Array {
  return gidBytes("gid", value);
}

/** 32 hex digits as 16 bytes, first byte first. */
function parseWire(text: string): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Four dotted-decimal bytes, or null. */
function parseIpv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => DECIMAL_BYTE.test(p))) return null;
  return parts.map((p) => Number(p));
}

/** IPv6 text (RFC 4291 2.2) or bare IPv4, or null. */
function parseAddress(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  if (!text.includes(":")) {
    const v4 = parseIpv4(text);
    if (v4 === null) return null;
    out[10] = out[11] = 0xff;
    out.set(v4, 12);
    return out;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  // "" has no groups; otherwise every group must be there: "1:" or ":1" leave an empty one.
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const last = halves.length === 2 ? tail : head;
  const words: number[] = [];
  let v4: number[] | null = null;
  if (last.length > 0 && last[last.length - 1].includes(".")) {
    v4 = parseIpv4(last.pop()!);
    if (v4 === null) return null; // and the IPv4 part only ever comes last
  }
  const slots = 8 - (v4 === null ? 0 : 2);
  const given = head.length + tail.length;
  if (halves.length === 1 ? given !== slots : given > slots - 1) return null;
  for (const group of [...head, ...new Array(slots - given).fill("0"), ...tail]) {
    if (!GROUP.test(group)) return null;
    words.push(parseInt(group, 16));
  }
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (v4 !== null) out.set(v4, 12);
  return out;
}

/** A GID as IPv6 text with full groups, e.g. "fe80:0000:0000:0000:5054:00ff:fe12:3456". */
export function gidText(gid: Uint8Array | string): string {
  const bytes = gidBytes("gid", gid); // any accepted form, normalized
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    parts.push(((bytes[i] << 8) | bytes[i + 1]).toString(16).padStart(4, "0"));
  }
  return parts.join(":");
}

/** A GID as 32 lowercase hex digits in byte order (rdma-core's gid_to_wire_gid form). */
export function gidWireText(gid: Uint8Array | string): string {
  return Array.from(gidBytes("gid", gid), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A GID as glibc's inet_ntop(AF_INET6) prints it (what rdma-core's tools show): the first longest
 * run of two or more zero groups becomes "::", and an IPv4-compatible or IPv4-mapped address ends
 * in dotted decimal.
 */
export function gidCompactText(gid: Uint8Array | string): string {
  const bytes = gidBytes("gid", gid);
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  let bestBase = -1, bestLen = 0, runBase = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      if (runBase < 0) runBase = i;
    } else if (runBase >= 0) {
      if (i - runBase > bestLen) [bestBase, bestLen] = [runBase, i - runBase];
      runBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1;
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    const embeddedIpv4 = i === 6 && bestBase === 0 &&
      (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff));
    if (embeddedIpv4) return out + bytes.subarray(12).join(".");
    out += words[i].toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ":";
  return out;
}
