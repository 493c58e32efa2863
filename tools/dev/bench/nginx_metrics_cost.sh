#!/usr/bin/env bash
# How many requests Nginx's metrics count, and what one request costs Nginx in CPU, at the highest
# rate this machine serves: the measurement behind deploy/README.md, "Nginx metrics".
#
#   tools/dev/bench/nginx_metrics_cost.sh [TAG [SECONDS [CONNECTIONS [PATH]]]]
#
# Runs the stack's go-service image and the benchmark's nginx image (cache-platform/*:TAG, default
# dev: load them with `tools/bazel run //tools/dev/bench:nginx_load` and `//go_service:load`; the
# stack's own nginx image has no /bench/ routes and limits each client) on a network of its own,
# sends wrk (Debian's `wrk`, run in the engine's network namespace: the containers' addresses are
# reachable there) straight to Nginx's address, then prints what wrk answered, what Nginx's metrics
# counted and Nginx's CPU time per request from its cgroup's cpu.stat. wrk stops with requests in
# flight, so Nginx may count up to CONNECTIONS more than wrk reports, never fewer.
# Images from before Nginx counted in Lua (mtail, commit 4ca7351) are measured the same way when
# an mtail image of that tag exists: its counter is read from mtail instead.
# Needs root (nsenter, the cgroup tree) and wrk; sends traffic only to the containers it starts.
set -euo pipefail
tag="${1:-dev}" seconds="${2:-5}" connections="${3:-50}" path="${4:-/bench/ceiling}"
# The engine tools/bazel's chroot runs (tools/bazel names the chroot after .bazelversion).
workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)"
export DOCKER_HOST="${DOCKER_HOST:-unix://$HOME/.cache/cache-platform/sid-bazel-$(<"$workspace/.bazelversion")/run/docker.sock}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
net=cache-platform-metrics-cost prefix=10.213.99
# As compose.yaml: each image's own non-root user, no root filesystem to write, no capabilities.
hardening=(--read-only --cap-drop ALL --security-opt no-new-privileges:true)
# Images from before the benchmark had an Nginx image of its own carried its routes themselves.
nginx_image="cache-platform/nginx-bench:$tag"
docker image inspect "$nginx_image" >/dev/null 2>&1 || nginx_image="cache-platform/nginx:$tag"

cleanup() {
  docker rm --force mc-go mc-mtail mc-nginx >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
docker network create --subnet "$prefix.0/24" --ip-range "$prefix.128/25" "$net" >/dev/null
docker run --detach "${hardening[@]}" --name mc-go --network "$net" --ip "$prefix.10" \
  --cpus 0.5 --memory 128m "cache-platform/go-service:$tag" >/dev/null
metrics="http://$prefix.13:9145/metrics"
if docker image inspect "cache-platform/mtail:$tag" >/dev/null 2>&1; then
  docker run --detach "${hardening[@]}" --name mc-mtail --network "$net" --ip "$prefix.12" \
    --cpus 0.25 --memory 64m "cache-platform/mtail:$tag" >/dev/null
  metrics="http://$prefix.12:3903/metrics"
fi
docker run --detach "${hardening[@]}" --name mc-nginx --network "$net" --ip "$prefix.13" \
  --cpus 1 --memory 192m --tmpfs /tmp:size=64m,mode=1777 \
  --tmpfs /var/cache/nginx:size=128m,mode=1777 \
  --add-host "go-service:$prefix.10" --add-host "py-service:$prefix.11" \
  --add-host "mtail:$prefix.12" --add-host "py-service-redis:$prefix.14" \
  --add-host "py-service-flask:$prefix.15" "$nginx_image" >/dev/null

in_engine_netns() { nsenter --target "$(pgrep --oldest dockerd)" --net "$@"; }
counted() {
  in_engine_netns curl --silent --fail "$metrics" |
    awk '/^nginx_http_requests_total/ {sum += $NF} END {printf "%d\n", sum}'
}
cpu_usec() { awk '$1 == "usage_usec" {print $2}' "$cgroup/cpu.stat"; }

id="$(docker inspect --format '{{.Id}}' mc-nginx)"
cgroup="$(find /sys/fs/cgroup -maxdepth 4 -type d -name "*$id*" | head -1)"
[[ -n "$cgroup" ]] || { echo "no cgroup found for the nginx container" >&2; exit 1; }
for _ in $(seq 50); do counted >/dev/null 2>&1 && break; sleep 0.2; done

count_before="$(counted)" cpu_before="$(cpu_usec)"
report="$(in_engine_netns wrk -t2 "-c$connections" "-d${seconds}s" "http://$prefix.13:8080$path")"
sleep 3 # mtail reads its datagrams behind the load; Lua's counts are final at once
count_after="$(counted)" cpu_after="$(cpu_usec)"
answered="$(awk '/requests in/ {print $1}' <<<"$report")"
rate="$(awk '/Requests\/sec/ {print $2}' <<<"$report")"
echo "tag=$tag path=$path connections=$connections answered=$answered rate=${rate}/s" \
  "counted=$((count_after - count_before))" \
  "nginx_cpu_us_per_request=$(((cpu_after - cpu_before) / answered))"
