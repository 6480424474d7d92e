#!/bin/busybox sh
# PID 1 of the soft-RoCE guest's initramfs (busybox). It loads the kernel modules packed beside it,
# mounts the host's root read-only over 9p with the guest's own proc/sys/dev/tmpfs on top, mounts the
# per-run job share, runs the second stage (guest_setup.sh) chrooted into the host root, and powers
# off. Every failure prints a marker line so the host can tell "could not start" from "command failed".

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
  echo "@@SOFTROCE-FAILED@@ init: $*"
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# The order file comes from modprobe --show-depends, so every module's dependencies load first.
while read -r module; do
  insmod "/modules/$module" || fail "insmod $module"
done </modules/order

# msize: larger 9p messages make reading big binaries (deno) from the host much faster.
NINEP="trans=virtio,version=9p2000.L,msize=262144"
R=/newroot
mkdir -p $R
mount -t 9p -o "$NINEP,ro" hostroot $R || fail "mount host root over 9p"

# The host root is read-only, so everything writable is a guest-side mount over it.
mount -t proc proc $R/proc || fail "mount proc"
mount -t sysfs sysfs $R/sys || fail "mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || fail "mount devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm || fail "mount /dev/shm"
# The host's /tmp stays reachable (read-only) at /run/softroce/host-tmp under the guest's own: a job
# whose folder is there gets it bound back in place (softroce/run.ts).
mkdir -p /host-tmp
mount --bind $R/tmp /host-tmp || fail "bind the host's /tmp"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || fail "mount /run"
mkdir -p $R/run/softroce/host-tmp
mount --move /host-tmp $R/run/softroce/host-tmp || fail "move the host's /tmp"

# The job share holds command.sh (written by the host) and receives the exit status.
mkdir -p $R/run/softroce/job
mount -t 9p -o "$NINEP" job $R/run/softroce/job || fail "mount job share"
cp /guest_setup.sh $R/run/softroce/guest_setup.sh

chroot $R /bin/sh /run/softroce/guest_setup.sh
# Flush the exit status file to the host before the power goes.
sync
umount $R/run/softroce/job 2>/dev/null
poweroff -f
