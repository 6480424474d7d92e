#!/bin/busybox sh
# PID 1 of the aarch64 soft-RoCE guest's initramfs (busybox). Like init.sh, but the root it boots is
# the arm64 Debian root (share "guestroot", read-only), rebuilt on a tmpfs: the root's system folders
# are bound in, the guest's own proc/sys/dev/tmpfs mounted, and the host folders the job names (the
# project, the working directory; listed in the job share's "binds" file) bound from the host's root
# (share "hostroot", read-only) at their host paths. Every failure prints a marker line.

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
  echo "@@SOFTROCE-FAILED@@ init: $*"
  poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
  insmod "/modules/$module" || fail "insmod $module"
done </modules/order

NINEP="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /lower /host /job
mount -t 9p -o "$NINEP,ro" guestroot /lower || fail "mount the arm64 root over 9p"
mount -t 9p -o "$NINEP,ro" hostroot /host || fail "mount the host root over 9p"
mount -t 9p -o "$NINEP" job /job || fail "mount job share"

R=/newroot
mkdir -p $R
mount -t tmpfs -o mode=755 tmpfs $R || fail "mount the root tmpfs"
for entry in /lower/*; do
  name=${entry#/lower/}
  if [ -L "$entry" ]; then
    cp -a "$entry" "$R/$name" || fail "copy the link /$name"
    continue
  fi
  [ -d "$entry" ] || continue
  mkdir -p "$R/$name"
  case "$name" in
    # Empty in a fresh root; left on the tmpfs so host folders (a checkout in /home, /srv, ...)
    # can be bound in below them.
    proc | sys | dev | tmp | run | home | root | mnt | media | srv | opt) ;;
    *) mount --bind "$entry" "$R/$name" || fail "bind /$name" ;;
  esac
done

mount -t proc proc $R/proc || fail "mount proc"
mount -t sysfs sysfs $R/sys || fail "mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || fail "mount devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm || fail "mount /dev/shm"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || fail "mount /run"
mkdir -p $R/run/softroce/host-tmp $R/run/softroce/job
mount --bind /host/tmp $R/run/softroce/host-tmp || fail "bind the host's /tmp"
mount --move /job $R/run/softroce/job || fail "move the job share"

# "host PATH": the host's PATH at the same place; "over FROM TO": the guest's FROM bound over TO
# (the arm64 Deno over the project's x86_64 one); "tmpfs PATH": an empty writable folder there (the
# project's build/, which holds the host's x86_64 libraries); "copy FROM TO": the host's FROM
# copied into TO, times kept (the aarch64 libraries built before the boot, so none is stale).
if [ -f $R/run/softroce/job/binds ]; then
  while read -r kind from to; do
    case "$kind" in
      host)
        mkdir -p "$R$from" 2>/dev/null || touch "$R$from" 2>/dev/null
        mount --bind "/host$from" "$R$from" || fail "bind the host's $from"
        ;;
      over)
        [ -e "$R$to" ] && { mount --bind "$R$from" "$R$to" || fail "bind $from over $to"; }
        ;;
      tmpfs)
        [ -d "$R$from" ] && { mount -t tmpfs -o mode=755 tmpfs "$R$from" || fail "tmpfs on $from"; }
        ;;
      copy)
        [ -d "/host$from" ] && { cp -a "/host$from/." "$R$to/" || fail "copy $from to $to"; }
        ;;
    esac
  done <$R/run/softroce/job/binds
fi
cp /guest_setup.sh $R/run/softroce/guest_setup.sh

chroot $R /bin/sh /run/softroce/guest_setup.sh
sync
umount $R/run/softroce/job 2>/dev/null
poweroff -f
