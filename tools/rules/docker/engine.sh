#!/usr/bin/env bash
# Makes sure a Docker engine answers. If none does and this process may start one (root, dockerd
# installed: tools/bazel's chroot has Debian's docker.io), it starts one and says so.
# Used by tools/bazel (before test commands, so that the engine outlives every test),
# `bazel run //deploy:up` and the tests tagged requires-docker (where none answers yet).
set -euo pipefail
die() {
  echo "docker engine: $*" >&2
  exit 1
}
answers() { timeout 20 docker info >/dev/null 2>&1; }
# A dockerd that is running but slow to answer (a busy machine) must be waited for: a second one
# started beside it takes over its containers and breaks whatever was using them.
dockerd_running() { [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }
wait_for_engine() {
  for _ in $(seq 60); do
    answers && return 0
    sleep 1
  done
  return 1
}
# Under `bazel test` PATH is minimal; dockerd lives in sbin.
PATH="$PATH:/usr/sbin:/sbin"

answers && exit 0
command -v docker >/dev/null || die "no docker client on PATH: install Docker (Debian: apt-get install docker.io docker-cli)"
[[ "$(id -u)" == 0 ]] ||
  die "no Docker engine answers and starting one needs root: start yours (e.g. 'sudo systemctl start docker') and retry"
command -v dockerd >/dev/null ||
  die "no Docker engine answers and dockerd is not installed: install Docker (Debian: apt-get install docker.io)"

# Tests that need the engine run side by side: one starts it, the others wait and find it.
mkdir -p /run/lock
exec 8>/run/lock/cache-platform-dockerd.lock
flock --wait 60 8 || die "another process holds /run/lock/cache-platform-dockerd.lock"
answers && exit 0
if dockerd_running; then
  wait_for_engine && exit 0
  die "dockerd (pid $(cat /var/run/docker.pid)) runs but does not answer; see /var/log/cache-platform-dockerd.log"
fi

# A bound host socket whose engine has gone away would block our own.
mountpoint -q /run/docker.sock 2>/dev/null && umount /run/docker.sock
log=/var/log/cache-platform-dockerd.log
echo "docker engine: none answered; starting dockerd (data in /var/lib/docker, log in $log)" >&2
# setsid: the engine must outlive this script (and the bazel command that ran it).
setsid dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq 60); do
  answers && { echo "docker engine: started ($(docker version --format '{{.Server.Version}}'))" >&2; exit 0; }
  kill -0 $! 2>/dev/null || die "dockerd exited at start; last log line: $(tail -n 1 "$log")"
  sleep 0.5
done
die "dockerd started but did not answer within 30 s; see $log"
