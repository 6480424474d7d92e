/**
 * GIDs as text: the 32-hex-digit wire form of rdma-core's pingpong tools, and IPv6 presentation
 * form exactly as glibc's inet_ntop(AF_INET6) prints it (so reports match the C tools byte for
 * byte).
 *
 * @module
 */

/** 32 lowercase hex digits of the 16 raw GID bytes in memory order (rdma-core gid_to_wire_gid). */
export function gidToWire(gid: Uint8Array): string {
  if (gid.length !== 16) throw new RangeError(`a GID has 16 bytes, got ${gid.length}`);
  return Array.from(gid, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The inverse of gidToWire; TypeError unless `text` is 32 hex digits. */
export function wireToGid(text: string): Uint8Array {
  if (!/^[0-9a-fA-F]{32}$/.test(text)) {
    throw new TypeError(`a wire GID is 32 hex digits, got "${text}"`);
  }
  const gid = new Uint8Array(16);
  for (let i = 0; i < 16; i++) gid[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return gid;
}

/**
 * IPv6 text as glibc's inet_ntop prints it: the first longest run of two or more zero groups
 * becomes "::", and an IPv4-compatible or IPv4-mapped address ends in dotted decimal.
 */
export function gidToIpv6(gid: Uint8Array): string {
  if (gid.length !== 16) throw new RangeError(`a GID has 16 bytes, got ${gid.length}`);
  const words = Array.from({ length: 8 }, (_, i) => (gid[2 * i] << 8) | gid[2 * i + 1]);
  let bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      if (curBase < 0) curBase = i, curLen = 1;
      else curLen++;
    } else if (curBase >= 0) {
      if (curLen > bestLen) bestBase = curBase, bestLen = curLen;
      curBase = -1;
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
    if (embeddedIpv4) {
      out += `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
      break;
    }
    out += words[i].toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ":";
  return out;
}
