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
# Every upstream host of the stack's Nginx config must resolve, or Nginx refuses to start. A
# `resolve` server (the Go tier) is looked up through Docker's DNS, which knows network aliases:
# the Go container has its name as one. The others get --add-host: addresses where nothing
# listens, as for compose.yaml's absent profiles (their routes answer the fallback's 502).
add_hosts=(--add-host "go-service:$prefix.10" --add-host "mtail:$prefix.12")
n=20
while read -r host; do
  [[ "$host" == go-service ]] && continue
  add_hosts+=(--add-host "$host:$prefix.$n")
  n=$((n + 1))
done < <(sed -nE 's/^[[:space:]]*server ([a-z][a-z0-9.-]*):[0-9]+.*/\1/p' \
  "$workspace"/deploy/nginx/conf.d/*.conf | sort -u)
docker run --detach "${hardening[@]}" --name mc-go --network "$net" --ip "$prefix.10" \
  --network-alias go-service --cpus 0.5 --memory 128m "cache-platform/go-service:$tag" >/dev/null
metrics="http://$prefix.13:9145/metrics"
if docker image inspect "cache-platform/mtail:$tag" >/dev/null 2>&1; then
  docker run --detach "${hardening[@]}" --name mc-mtail --network "$net" --ip "$prefix.12" \
    --cpus 0.25 --memory 64m "cache-platform/mtail:$tag" >/dev/null
  metrics="http://$prefix.12:3903/metrics"
fi
docker run --detach "${hardening[@]}" --name mc-nginx --network "$net" --ip "$prefix.13" \
  --cpus 1 --memory 192m --tmpfs /tmp:size=64m,mode=1777 \
  --tmpfs /var/cache/nginx:size=128m,mode=1777 \
  "${add_hosts[@]}" "$nginx_image" >/dev/null

in_engine_netns() { nsenter --target "$(pgrep --oldest dockerd)" --net "$@"; }
counted() {
  in_engine_netns curl --silent --fail "$metrics" |
    awk '/^nginx_http_requests_total/ {sum += $NF} END {printf "%d\n", sum}'
}
cpu_usec() {
  if [[ "$cpu_file" == */cpu.stat ]]; then
    awk '$1 == "usage_usec" {print $2}' "$cpu_file"
  else
    echo $(($(<"$cpu_file") / 1000))
  fi
}

for _ in $(seq 50); do counted >/dev/null 2>&1 && break; sleep 0.2; done
if [[ "$(docker inspect --format '{{.State.Running}}' mc-nginx)" != true ]]; then
  docker logs mc-nginx 2>&1 | tail -n 5 >&2
  echo "the nginx container stopped (its log above)" >&2
  exit 1
fi
# Its CPU time: cgroup v2's cpu.stat (usage_usec; also in the cgroup2 tree a hybrid host mounts at
# /sys/fs/cgroup/unified, whereas a v1 controller's cpu.stat has none), else v1's cpuacct.usage (ns).
id="$(docker inspect --format '{{.Id}}' mc-nginx)"
cpu_file=""
while read -r file; do
  if [[ "$file" == */cpuacct.usage ]] || grep -q '^usage_usec ' "$file"; then
    cpu_file="$file"
    [[ "$file" == */cpu.stat ]] && break
  fi
done < <(find /sys/fs/cgroup -maxdepth 5 -path "*$id*" \( -name cpu.stat -o -name cpuacct.usage \))
[[ -n "$cpu_file" ]] || { echo "no cgroup CPU accounting found for the nginx container" >&2; exit 1; }

count_before="$(counted)" cpu_before="$(cpu_usec)"
report="$(in_engine_netns wrk -t2 "-c$connections" "-d${seconds}s" "http://$prefix.13:8080$path")"
sleep 3 # mtail reads its datagrams behind the load; Lua's counts are final at once
count_after="$(counted)" cpu_after="$(cpu_usec)"
answered="$(awk '/requests in/ {print $1}' <<<"$report")"
rate="$(awk '/Requests\/sec/ {print $2}' <<<"$report")"
echo "tag=$tag path=$path connections=$connections answered=$answered rate=${rate}/s" \
  "counted=$((count_after - count_before))" \
  "nginx_cpu_us_per_request=$(((cpu_after - cpu_before) / answered))"
