#!/usr/bin/env bash
# tools/bazel's pass-through (passthrough.sh): the families it names pass, with values as they are
# (newlines too), and nothing else does; every variable deploy/compose.yaml reads from the
# environment passes, so that a stack setting added without the STACK_ prefix fails here; and a
# variable left out that looks like a setting is named on stderr, one line each.
# Usage: passthrough_test.sh PASSTHROUGH_SH COMPOSE_YAML STACK_ENV
set -euo pipefail
# shellcheck source=tools/dev/offline/passthrough.sh
source "$1"
compose_yaml="$2"
export STACK_ENV="$3"
failures=0

# passed VAR=VALUE...: what passthrough_environment prints with only these variables exported
# (and PATH, which must not pass), as sorted NAME=VALUE lines, quoted (printf %q: one line each).
passed() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  env -i PATH="$PATH" PASSTHROUGH_SH="$PASSTHROUGH_SH" "$@" bash -c '
    source "$PASSTHROUGH_SH"
    passthrough_environment | while IFS= read -r -d "" entry; do
      [[ "$entry" == PASSTHROUGH_SH=* ]] || printf "%q\n" "$entry"
    done | sort'
}
export PASSTHROUGH_SH="$1"

expect() { # expect NAME WANT GOT
  if [[ "$2" == "$3" ]]; then
    echo "ok   $1"
  else
    printf 'FAIL %s:\n  want: %s\n  got:  %s\n' "$1" "${2//$'\n'/ | }" "${3//$'\n'/ | }" >&2
    failures=$((failures + 1))
  fi
}

expect "the families pass, values intact" \
  "$(printf '%q\n' 'COMPOSE_PROFILES=redis' 'DEBIAN_MIRROR=http://127.0.0.1/debian' \
    'DOCKER_CONFIG=/root/.docker' 'GOPROXY=http://127.0.0.1:3000' 'OCI_REGISTRY=127.0.0.1:5000/t' \
    'PIP_INDEX_URL=http://127.0.0.1/simple' 'STACK_GO_REPLICAS=3' $'STACK_NOTE=two\nlines' \
    'https_proxy=http://127.0.0.1:3128' | sort)" \
  "$(passed STACK_GO_REPLICAS=3 $'STACK_NOTE=two\nlines' COMPOSE_PROFILES=redis \
    DEBIAN_MIRROR=http://127.0.0.1/debian DOCKER_CONFIG=/root/.docker GOPROXY=http://127.0.0.1:3000 \
    OCI_REGISTRY=127.0.0.1:5000/t PIP_INDEX_URL=http://127.0.0.1/simple https_proxy=http://127.0.0.1:3128)"

expect "nothing else passes (old names, the host's engine, HOME)" "" \
  "$(passed GO_REPLICAS=3 NGINX_PORT=8080 ALERT_WEBHOOK_URL=http://127.0.0.1/ DOCKER_HOST=unix:///x \
    HOME=/root XDG_CACHE_HOME=/tmp MY_STACK_PORT=1)"

# Every ${NAME...} compose.yaml interpolates (Compose reads them from the environment `up` has).
# shellcheck disable=SC2016 # a regular expression, not an expansion
mapfile -t names < <(grep -o '\${[A-Za-z_][A-Za-z0-9_]*' "$compose_yaml" | cut -c3- | sort -u)
((${#names[@]} > 10)) || {
  echo "FAIL: found only ${#names[@]} variables in $compose_yaml" >&2
  exit 1
}
assignments=()
for name in "${names[@]}"; do assignments+=("$name=1"); done
expect "every variable compose.yaml reads passes (${#names[@]}: ${names[*]})" \
  "$(printf '%s=1\n' "${names[@]}" | sort)" "$(passed "${assignments[@]}")"

# dropped VAR=VALUE...: what passthrough_dropped says on stderr with only these variables exported
# (and PATH), its stdout being empty.
dropped() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  env -i PATH="$PATH" PASSTHROUGH_SH="$PASSTHROUGH_SH" STACK_ENV="$STACK_ENV" "$@" bash -c '
    source "$PASSTHROUGH_SH"
    out="$(passthrough_dropped "$STACK_ENV" 2>/dev/null)"
    [[ -z "$out" ]] || echo "stdout: $out"
    passthrough_dropped "$STACK_ENV" 2>&1 >/dev/null | sort'
}

expect "a setting left out is named, with the STACK_* setting it may have meant" \
  "$(printf '%s\n' \
    "tools/bazel: CACHE_TTL is not passed into the build: the stack's settings are STACK_* (STACK_GO_CACHE_TTL, STACK_PY_CACHE_TTL, deploy/stack.env)" \
    "tools/bazel: GO_REPLICAS is not passed into the build: the stack's settings are STACK_* (STACK_GO_REPLICAS, deploy/stack.env)" \
    "tools/bazel: MY_STACK_PORT is not passed into the build: the stack's settings are STACK_* (deploy/stack.env)" \
    "tools/bazel: NGINX_PORT is not passed into the build: the stack's settings are STACK_* (STACK_NGINX_PORT, deploy/stack.env)" \
    "tools/bazel: REDIS_TTL is not passed into the build: the stack's settings are STACK_* (deploy/stack.env)" \
    "tools/bazel: stack_go_replicas is not passed into the build: the stack's settings are STACK_* (STACK_GO_REPLICAS, deploy/stack.env)" | sort)" \
  "$(dropped CACHE_TTL=5s GO_REPLICAS=3 MY_STACK_PORT=1 NGINX_PORT=8080 REDIS_TTL=1 stack_go_replicas=2)"

expect "nothing said of what passes or looks like no setting" "" \
  "$(dropped STACK_GO_CACHE_TTL=3s COMPOSE_PROFILES=redis GOPROXY=off HOME=/root DOCKER_HOST=unix:///x \
    XDG_CACHE_HOME=/tmp CACHE_PLATFORM_CACHE_DIR=/tmp/c K8S_GO_TOOLS_CACHE=/tmp/k HAYSTACK=1 PORT=8080)"

((failures == 0)) || exit 1
