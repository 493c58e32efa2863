#!/usr/bin/env bash
# PID 1 of //deploy/k8s:node_test's node, run by `unshare --mount --net --pid --fork` (node.py):
# gives the new namespaces a network and a root of their own, then reaps orphans until killed.
#
#   node_root.sh BUSYBOX NODE_CIDR GATEWAY ROOTFS STATE [BIND]...
#
# Network: loopback up, a veth pair with both ends inside (node0 and busybox's default peer name,
# veth0), the node's address on node0 and a default route through an address nothing holds
# (kubelet and kube-proxy want one). busybox's `ip`: the sid root has no iproute2.
# Root: an overlay with this root (the tools/bazel sid chroot) below and ROOTFS/{upper,work} above,
# so that what kubelet, containerd and the CNI plugins write to fixed paths (/var/lib/kubelet,
# /var/log/containers, /var/lib/cni) stays in the test's directory; a new proc and sysfs (this
# network's interfaces), the host's cgroups and devices, tmpfs on /run and /tmp, and STATE and each
# BIND at their own paths. Then pivot_root, not chroot: a process that enters the mount namespace
# (runc exec: exec probes, kubectl exec) lands in this root, not in the one below.
# STATE/ready appears when it is done; the test kills this process to end the node (the kernel then
# kills everything in the PID namespace).
set -euo pipefail
busybox="$1" node_cidr="$2" gateway="$3" rootfs="$4" state="$5"
shift 5

"$busybox" ip link set lo up
"$busybox" ip link add node0 type veth
"$busybox" ip addr add "$node_cidr" dev node0
"$busybox" ip link set node0 up
"$busybox" ip link set veth0 up
"$busybox" ip route add default via "$gateway" dev node0

mkdir -p "$rootfs/root" "$rootfs/upper" "$rootfs/work"
root="$rootfs/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$rootfs/upper,workdir=$rootfs/work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
for dir in "$state" "$@"; do
  mkdir -p "$root$dir"
  mount --bind "$dir" "$root$dir"
done
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
touch "$state/ready"

# Orphans (containerd's shims daemonize) are reparented to this process: wait reaps them.
trap 'exit 0' TERM INT
while :; do
  sleep 1 &
  wait $! || true
done
