#!/usr/bin/env bash
# nginx_metrics_cost.sh must start Nginx with every upstream host of the stack's config resolvable:
# Nginx refuses to start when a plain `server HOST:PORT` does not resolve ("host not found in
# upstream", as when the Redis and `flask run` variants were added), and a `resolve` server is
# looked up through Docker's DNS, which knows container names and network aliases, not --add-host.
# docker, wrk, pgrep and nsenter are fakes on PATH (docker records what the script asks for): no
# container runs, nothing is entered.
#   usage: nginx_metrics_cost_test.sh SCRIPT CONF...   (CONF: deploy/nginx/conf.d/*.conf)
set -euo pipefail
script="$1"
shift
tmp="${TEST_TMPDIR:?run me with bazel test}"
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

bin="$tmp/bin"
mkdir -p "$bin"
export FAKE_DOCKER_LOG="$tmp/docker.log"
: >"$FAKE_DOCKER_LOG"
cat >"$bin/docker" <<'EOF'
#!/usr/bin/env bash
# Records each call; answers inspect as for a running container; no image of mtail.
printf '%s\n' "$*" >>"$FAKE_DOCKER_LOG"
case "$1 ${2:-}" in
  "image inspect") exit 1 ;;
  inspect*) [[ "$*" == *State.Running* ]] && echo true || echo 0123456789abcdef ;;
esac
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' >"$bin/wrk"
printf '#!/bin/sh\necho 1\n' >"$bin/pgrep"
# What `nsenter ... curl METRICS` would print: a counter, so the script's wait ends at once.
printf '#!/bin/sh\necho "nginx_http_requests_total{service=\\"go\\"} 1"\n' >"$bin/nsenter"
chmod +x "$bin/docker" "$bin/wrk" "$bin/pgrep" "$bin/nsenter"

# It stops where the fakes end (no engine to enter, no cgroup): only its requests count here.
DOCKER_HOST=unix:///nonexistent PATH="$bin:$PATH" "$script" dev 1 1 >"$tmp/out" 2>&1 || true

nginx_run="$(grep -E '^run .*--name mc-nginx( |$)' "$FAKE_DOCKER_LOG")" ||
  fail "no nginx container started; the script said: $(cat "$tmp/out")"
aliases="$(grep -E '^run ' "$FAKE_DOCKER_LOG" | grep -oE -- '--network-alias [^ ]+' | cut -d' ' -f2 || true)"
hosts="$(grep -oE -- '--add-host [^ :]+' <<<"$nginx_run" | cut -d' ' -f2 || true)"

checked=0 missing=()
while read -r host port resolve; do
  if [[ -n "$resolve" ]]; then
    grep -qx "$host" <<<"$aliases" || missing+=("$host:$port (resolve: no container's --network-alias)")
  else
    grep -qx "$host" <<<"$hosts"$'\n'"$aliases" || missing+=("$host:$port (no --add-host)")
  fi
  checked=$((checked + 1))
done < <(sed -nE 's/^[[:space:]]*server ([a-z][a-z0-9.-]*):([0-9]+)( resolve)?.*/\1 \2\3/p' "$@" | sort -u)
[[ "$checked" -ge 3 ]] || fail "only $checked upstream hosts found in $*"
[[ "${#missing[@]}" -eq 0 ]] || fail "Nginx could not resolve: $(printf '%s; ' "${missing[@]}")"
echo "ok: $checked upstream hosts resolvable"
