#!/usr/bin/env bash
# Shows that a Bazel HTTP remote cache works for this repo (tools/dev/ci/README.md, "Remote cache"):
#   1. starts Debian's nginx as a WebDAV cache (PUT stores, GET serves) on a free loopback port;
#   2. builds TARGETS with --remote_cache into a new, empty output base: every action runs, and
#      its results are uploaded;
#   3. cleans that output base (its own, not the workspace's: the external repositories stay, the
#      outputs and the local action cache go) and builds again: the results come from the cache.
# Exits non-zero unless the second build's summary counts remote cache hits. Takes minutes: the new
# output base fetches the external repositories, and the first build compiles Go's stdlib.
#   usage: tools/dev/ci/remote_cache_demo.sh [TARGET_PATTERN...]   (default //go_service/...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
bazel="${BAZEL:-tools/bazel}"
targets=("${@:-//go_service/...}")
die() {
  echo "remote_cache_demo: $*" >&2
  exit 1
}
say() { echo "remote_cache_demo: $*" >&2; }

if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  [[ "$(id -u)" == 0 ]] || die "needs nginx (Debian: apt-get install nginx-light)"
  say "installing nginx-light (apt-get)"
  apt-get install -y -qq --no-install-recommends nginx-light >/dev/null ||
    die "could not install nginx-light with apt-get"
fi
nginx="$(command -v nginx || echo /usr/sbin/nginx)"

# Output bases: on the offline path Bazel runs in tools/bazel's chroot, which sees only the
# workspace and its output root (the same path inside and out), so they go under that root.
output_root="$(sed -nE 's/^startup --output_user_root=(.*)$/\1/p' .bazelrc.offline 2>/dev/null | tail -n 1)"
demo="$(mktemp -d "${output_root:-${TMPDIR:-/tmp}}/remote-cache-demo.XXXXXX")"
mkdir -p "$demo/cache" "$demo/nginx/tmp"

nginx_pid=""
base="$demo/output_base"
cleanup() {
  if [[ -n "$nginx_pid" ]]; then kill "$nginx_pid" 2>/dev/null || true; fi
  # The Bazel server this script started for its own output base, not the workspace's.
  if [[ -d "$base" ]]; then "$bazel" --output_base="$base" shutdown >/dev/null 2>&1 || true; fi
  chmod -R u+w "$demo" 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT
trap "exit 130" INT TERM # so that the EXIT trap still cleans up

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$demo/nginx/nginx.conf" <<CONF
daemon off;
user $(id -un); # the cache lives under a private directory: workers run as its owner
worker_processes 1;
pid $demo/nginx/nginx.pid;
error_log $demo/nginx/error.log;
events {}
http {
  access_log $demo/nginx/access.log;
  client_body_temp_path $demo/nginx/tmp;
  proxy_temp_path $demo/nginx/tmp;
  fastcgi_temp_path $demo/nginx/tmp;
  uwsgi_temp_path $demo/nginx/tmp;
  scgi_temp_path $demo/nginx/tmp;
  server {
    listen 127.0.0.1:$port;
    root $demo/cache;
    client_max_body_size 0;   # action outputs can be large: no limit
    location / {
      # Bazel's HTTP cache protocol: PUT /ac/HASH and /cas/HASH, GET them back (404 = miss).
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
    }
  }
}
CONF
"$nginx" -p "$demo/nginx" -c "$demo/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || die "nginx did not start: $(tail -n 3 "$demo/nginx/error.log")"
say "HTTP cache on 127.0.0.1:$port, storing in $demo/cache"

build() { # build NAME: a build of the targets into the demo's output base; prints its summary
  local start=$SECONDS
  # No bazel-* symlinks: they would point the workspace's at this throwaway output base.
  "$bazel" --output_base="$base" build --remote_cache="http://127.0.0.1:$port" \
    --experimental_convenience_symlinks=ignore "${targets[@]}" >"$demo/$1.log" 2>&1 ||
    { tail -n 30 "$demo/$1.log" >&2; die "the $1 build failed"; }
  say "$1 build: $((SECONDS - start)) s; $(grep -E '^INFO: [0-9]+ processes' "$demo/$1.log" | tail -n 1)"
}
build first
entries="$(find "$demo/cache" -type f | wc -l)"
say "the cache now holds $entries entries ($(du -sh "$demo/cache" | cut -f1))"
[[ "$entries" -gt 0 ]] || die "the first build uploaded nothing; nginx says: $(tail -n 1 "$demo/nginx/error.log")"
"$bazel" --output_base="$base" clean >/dev/null 2>&1
build second
hits="$(sed -nE 's/^INFO: [0-9]+ processes: .*\b([0-9]+) remote cache hit.*/\1/p' "$demo/second.log" | tail -n 1)"
[[ "${hits:-0}" -gt 0 ]] || die "the second build had no remote cache hit"
say "ok: the second build took $hits actions' results from the remote cache"
