#!/usr/bin/env bash
# slowdisk.sh up|down [MOUNT]: a file system whose fsync costs 2-3 ms, to
# run the tests on (TMPDIR=MOUNT make test). Needs root and loop devices.
#
# An ext4 file system in a file, on a loop device, inside another ext4 in a
# file on a second loop device, mounted with data=journal: each fsync goes
# through two journals and two flushes of the host's disk. On the 2-core
# VMs here a 512-byte write + fsync takes about 2.7 ms (0.2 ms on the host
# disk). "up" prints the measured cost.
set -euo pipefail
cmd=${1:-up} mnt=${2:-/mnt/hookgate-slow}
base=/var/tmp/hookgate-slowdisk
case $cmd in
up)
	mkdir -p "$base/outer" "$mnt"
	if ! mountpoint -q "$base/outer"; then
		truncate -s 3G "$base/outer.img"
		outer=$(losetup -f --show "$base/outer.img")
		mkfs.ext4 -q -F "$outer"
		mount "$outer" "$base/outer"
	fi
	if ! mountpoint -q "$mnt"; then
		truncate -s 2500M "$base/outer/inner.img"
		inner=$(losetup -f --show "$base/outer/inner.img")
		mkfs.ext4 -q -F "$inner"
		mount -o data=journal "$inner" "$mnt"
	fi
	chmod 1777 "$mnt"
	# 200 writes of 512 bytes, each synced (O_DSYNC).
	start=$(date +%s%N)
	dd if=/dev/zero of="$mnt/.probe" bs=512 count=200 oflag=dsync status=none
	end=$(date +%s%N)
	rm -f "$mnt/.probe"
	echo "slowdisk: $mnt mounted; write+fsync costs $(((end - start) / 200 / 1000)) µs"
	;;
down)
	for m in "$mnt" "$base/outer"; do
		if mountpoint -q "$m"; then
			dev=$(findmnt -n -o SOURCE "$m")
			umount "$m"
			losetup -d "$dev" 2>/dev/null || true
		fi
	done
	rm -rf "$base"
	;;
*)
	echo "usage: $0 up|down [MOUNT]" >&2
	exit 2
	;;
esac
