#!/bin/sh
# Second stage of the soft-RoCE guest, run by init.sh chrooted into the host's root: creates the rxe
# devices and the two-host network, then runs the job's command.sh and reports its exit status both
# as a file in the job share and as a marker line on the console.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
JOB=/run/softroce/job

fail() {
  echo "@@SOFTROCE-FAILED@@ setup: $*"
  exit 1
}

# RDMA pins memory; the default 8 MiB lock limit is far too small for tests.
ulimit -l unlimited || fail "ulimit -l unlimited"

# rxe0 on loopback, for tests that talk to themselves.
ip link set lo up || fail "ip link set lo up"
rdma link add rxe0 type rxe netdev lo || fail "rdma link add rxe0"

# Two "hosts", A and B, joined by a veth pair.
#
# rdma_rxe in Linux 6.1 opens its UDP port 4791 sockets and looks up routes in the initial network
# namespace only (per-namespace sockets came in later kernels), so an rxe device whose netdev lives
# in another namespace can send but never receives. Both veth ends therefore stay in the initial
# namespace, and policy routing makes traffic between 10.10.0.1 and 10.10.0.2 cross the veth wire
# instead of being short-cut through the loopback device:
#  - the local table is consulted after our rules (moved from priority 0 to 100), except for
#    packets arriving on a veth end, which must be delivered locally;
#  - packets from each address to the other go out through its own veth end;
#  - accept_local lets a veth end accept packets whose source is a local address, and rp_filter
#    is off because the reverse path of such a packet is the loopback device.
# The names hostA and hostB are attached to that same namespace, so `ip netns exec hostA ...` works
# and programs written for two separate hosts run unchanged.
ip link add vethA type veth peer name vethB || fail "ip link add veth"
ip addr add 10.10.0.1/24 dev vethA || fail "address of vethA"
ip addr add 10.10.0.2/24 dev vethB || fail "address of vethB"
for side in A B; do
  sysctl -qw "net.ipv4.conf.veth$side.accept_local=1" "net.ipv4.conf.veth$side.rp_filter=0" \
    || fail "sysctl veth$side"
done
sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip link set vethA up || fail "vethA up"
ip link set vethB up || fail "vethB up"
ip rule add priority 10 iif vethA lookup local || fail "rule iif vethA"
ip rule add priority 11 iif vethB lookup local || fail "rule iif vethB"
ip rule add priority 20 from 10.10.0.1 to 10.10.0.2 lookup 101 || fail "rule A to B"
ip rule add priority 21 from 10.10.0.2 to 10.10.0.1 lookup 102 || fail "rule B to A"
ip route add 10.10.0.2 dev vethA src 10.10.0.1 table 101 || fail "route A to B"
ip route add 10.10.0.1 dev vethB src 10.10.0.2 table 102 || fail "route B to A"
ip rule add priority 100 lookup local || fail "rule local"
ip rule del priority 0 || fail "move the local table rule"
rdma link add rxeA type rxe netdev vethA || fail "rdma link add rxeA"
rdma link add rxeB type rxe netdev vethB || fail "rdma link add rxeB"
ip netns attach hostA 1 || fail "ip netns attach hostA"
ip netns attach hostB 1 || fail "ip netns attach hostB"

# The GID index whose entry is the IPv4-mapped address with type RoCE v2 (what ibv_rc_pingpong -g
# and ib_write_bw -x need).
roce_v2_ipv4_gid_index() { # device, dotted IPv4 address
  want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' $(echo "$2" | tr . ' '))
  for gid in /sys/class/infiniband/"$1"/ports/1/gids/*; do
    index=${gid##*/}
    type=$(cat "/sys/class/infiniband/$1/ports/1/gid_attrs/types/$index" 2>/dev/null)
    if [ "$(cat "$gid")" = "$want" ] && [ "$type" = "RoCE v2" ]; then
      echo "$index"
      return 0
    fi
  done
  return 1
}
# GID entries appear from netdev events; give them a moment under a slow emulated CPU.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  GID_A=$(roce_v2_ipv4_gid_index rxeA 10.10.0.1) && GID_B=$(roce_v2_ipv4_gid_index rxeB 10.10.0.2) \
    && GID_0=$(roce_v2_ipv4_gid_index rxe0 127.0.0.1) && break
  sleep 0.2
done
[ -n "${GID_A:-}" ] && [ -n "${GID_B:-}" ] && [ -n "${GID_0:-}" ] || fail "no RoCE v2 IPv4 GID"

export DENO_RDMA_GUEST=1
export DENO_RDMA_HOST_A=10.10.0.1 DENO_RDMA_HOST_B=10.10.0.2
export DENO_RDMA_DEVICE_A=rxeA DENO_RDMA_DEVICE_B=rxeB
export DENO_RDMA_GID_INDEX_A="$GID_A" DENO_RDMA_GID_INDEX_B="$GID_B" DENO_RDMA_GID_INDEX_LO="$GID_0"
mkdir -p /tmp/home /tmp/deno-dir
export HOME=/tmp/home DENO_DIR=/tmp/deno-dir

echo "@@SOFTROCE-READY@@"
# command.sh sets the job's environment and working directory, then execs the command. Its output
# goes through a pipe, as in CI, so programs do not treat the serial console as a terminal (no
# cursor tricks, no prompts).
(
  sh "$JOB/command.sh" </dev/null 2>&1
  echo "$?" >/run/softroce/status
) | cat
status=$(cat /run/softroce/status 2>/dev/null || echo 125)
echo "$status" >"$JOB/status"
echo "@@SOFTROCE-EXIT@@ $status"
