/**
 * Which GID to send from on RoCE when none is asked for: the scoring of a port's GID table that
 * `Context.defaultGidIndex` (what `localInfo()` announces) and `Context.sourceGidIndex` (address
 * handles and unannounced paths) apply.
 *
 * @module
 */
import type { GidEntry } from "./context.ts";
import { isIpv4MappedGid } from "./gid.ts";

/**
 * The RoCE GID to send from when none is asked for, as perftest scores them: a RoCE v2 entry (IP
 * routable) with an IPv4-mapped address, else one with a global IPv6 address (not link-local
 * fe80::/10), else any RoCE v2 entry, else the first entry; 0 for an empty table.
 */
export function roceGidIndex(table: readonly Pick<GidEntry, "index" | "gid" | "type">[]): number {
  const v2 = table.filter((e) => e.type === "roce-v2");
  const chosen = v2.find((e) => addressKind(e.gid) === "ipv4") ??
    v2.find((e) => addressKind(e.gid) === "ipv6") ?? v2[0] ?? table[0];
  return chosen?.index ?? 0;
}

/** What kind of IP address a RoCE GID holds: IPv4-mapped, IPv6 link-local (fe80::/10), or other. */
function addressKind(gid: Uint8Array): "ipv4" | "link-local" | "ipv6" {
  if (isIpv4MappedGid(gid)) return "ipv4";
  return gid[0] === 0xfe && (gid[1] & 0xc0) === 0x80 ? "link-local" : "ipv6";
}

/**
 * The RoCE GID to send to `destination` from when none is asked for: a RoCE v2 entry with the
 * same kind of address (an IPv4 source for an IPv4 destination, link-local for link-local; the
 * device refuses a path that mixes them), else `roceGidIndex`.
 */
export function roceSourceGidIndex(
  table: readonly Pick<GidEntry, "index" | "gid" | "type">[],
  destination: Uint8Array,
): number {
  const kind = addressKind(destination);
  const match = table.find((e) => e.type === "roce-v2" && addressKind(e.gid) === kind);
  return match?.index ?? roceGidIndex(table);
}
