#!/usr/bin/env bash
# The stack's life cycle: `bazel run //deploy:up | :down | :logs | :ps`
# (docs/operations.md, "The stack").
#   stack.sh up LOADER...    make sure an engine and Compose v2 answer, load the images, start, wait
#   stack.sh down [--volumes] | logs [SERVICE...] | ps
#   stack.sh compose ARGS...   any `docker compose` command on the running stack, with the project,
#                              file and environment `up` used (scale, stop, start a service)
# Its settings, and compose.yaml's, come from the environment as STACK_* variables (deploy/README.md,
# "Settings"), which tools/bazel passes through as they are; COMPOSE_* are Compose's own.
set -euo pipefail
# COMPOSE_PROJECT_NAME runs a second stack beside the first (the tests do, on ports of their own).
readonly PROJECT="${COMPOSE_PROJECT_NAME:-cache-platform}"
readonly STACK_GRAFANA_IMAGE="grafana/grafana-oss:12.2.1"

die() {
  echo "deploy: $*" >&2
  exit 1
}
say() { echo "deploy: $*" >&2; }

# The compose file is used from the source tree (not runfiles), so the bind-mounted Grafana
# provisioning is real files and `docker compose -p cache-platform ...` by hand sees the same project.
runfiles_dir="$PWD"
workspace="${BUILD_WORKSPACE_DIRECTORY:-$(dirname "$(dirname "$(readlink -f deploy/compose.yaml)")")}"
compose_file="$workspace/deploy/compose.yaml"
[[ -f "$compose_file" ]] || die "cannot find deploy/compose.yaml under $workspace"

compose() { docker compose --project-name "$PROJECT" --file "$compose_file" "$@"; }

ensure_engine_and_compose() {
  "$runfiles_dir/tools/rules/docker/engine.sh"
  docker compose version >/dev/null 2>&1 ||
    die "Docker Compose v2 ('docker compose') is missing: install it (Debian: apt-get install docker-compose) and retry"
}

# Grafana's image comes from Docker Hub, which may be unreachable (it is, on this project's build
# machines): start everything else and say so.
grafana_available() {
  docker image inspect "$STACK_GRAFANA_IMAGE" >/dev/null 2>&1 && return 0
  say "pulling $STACK_GRAFANA_IMAGE (60 s at most)"
  timeout 60 docker pull --quiet "$STACK_GRAFANA_IMAGE" >/dev/null 2>&1
}

# Grafana's admin password: STACK_GRAFANA_ADMIN_PASSWORD if set, else one generated once and kept
# in ~/.config/cache-platform/grafana-admin-password (mode 600). Never admin/admin.
grafana_password() {
  if [[ -n "${STACK_GRAFANA_ADMIN_PASSWORD:-}" ]]; then
    echo "$STACK_GRAFANA_ADMIN_PASSWORD"
    return
  fi
  local file="${XDG_CONFIG_HOME:-$HOME/.config}/cache-platform/grafana-admin-password"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file")
    say "generated a Grafana admin password in $file"
  fi
  cat "$file"
}

# The file Alertmanager reads its webhook URL from at each delivery (compose.yaml, configs), one
# per project. Written by `up` only: `ps`, `logs` or `down` without STACK_ALERT_WEBHOOK_URL set
# must not move a running stack's alerts back to the default.
readonly STACK_ALERT_WEBHOOK_URL_FILE="$HOME/.local/state/cache-platform/$PROJECT/alert-webhook-url"
write_alert_webhook_url() {
  mkdir -p "$(dirname "$STACK_ALERT_WEBHOOK_URL_FILE")"
  printf '%s\n' "${STACK_ALERT_WEBHOOK_URL:-http://nginx:9145/alerts}" >"$STACK_ALERT_WEBHOOK_URL_FILE"
  chmod 0644 "$STACK_ALERT_WEBHOOK_URL_FILE"
  if [[ -n "${STACK_ALERT_WEBHOOK_URL:-}" ]]; then
    say "alerts are delivered to $STACK_ALERT_WEBHOOK_URL"
  else
    say "alerts go to Nginx's log (//deploy:logs -- --tail all nginx); set STACK_ALERT_WEBHOOK_URL for your receiver"
  fi
}

up() {
  ensure_engine_and_compose
  write_alert_webhook_url
  # One `docker load` at a time on this machine: two stacks coming up together (the tests) would
  # load the same layers at once, which the engine can fail with "unexpected EOF".
  (
    flock --wait 300 9 || die "another stack has been loading images for 5 minutes"
    for loader in "$@"; do
      "$runfiles_dir/$loader" | sed 's/^/deploy: /' >&2
    done
  ) 9>/tmp/cache-platform-image-load.lock
  local services=()
  if ! grafana_available; then
    say "Grafana's image $STACK_GRAFANA_IMAGE is not here and cannot be pulled: starting the stack without Grafana"
    mapfile -t services < <(compose config --services | grep -vx grafana)
  fi
  compose up --detach --wait --wait-timeout 180 --remove-orphans "${services[@]}"
  local nginx="${STACK_NGINX_BIND:-127.0.0.1}:${STACK_NGINX_PORT:-80}"
  cat <<URLS
The stack is up:
  curl -i $nginx/go/time       Go service: ${STACK_GO_REPLICAS:-1} replica(s), in-process cache in front of Redis (10 s)
  curl -i $nginx/python/time   Flask service (Nginx cache, 60 s)
  http://127.0.0.1:${STACK_PROMETHEUS_PORT:-9090}        Prometheus
  http://127.0.0.1:${STACK_ALERTMANAGER_PORT:-9093}        Alertmanager
URLS
  if [[ ${#services[@]} -eq 0 ]]; then
    echo "  http://127.0.0.1:${STACK_GRAFANA_PORT:-3000}        Grafana (user admin, password: see above or \$STACK_GRAFANA_ADMIN_PASSWORD)"
  fi
}

command="${1:?usage: stack.sh up|down|logs|ps|compose}"
shift
# compose.yaml refuses to run without it (never admin/admin), for every command.
export STACK_GRAFANA_ADMIN_PASSWORD STACK_GRAFANA_IMAGE STACK_ALERT_WEBHOOK_URL_FILE
STACK_GRAFANA_ADMIN_PASSWORD="$(grafana_password)"
case "$command" in
up) up "$@" ;;
down)
  ensure_engine_and_compose
  # Every profile's services too (redis, bench): they share the project's network.
  compose --profile '*' down --remove-orphans "$@"
  # `up` writes it anew; kept, one per project would pile up (the tests make one per run).
  rm -rf "$(dirname "$STACK_ALERT_WEBHOOK_URL_FILE")"
  ;;
logs)
  ensure_engine_and_compose
  compose logs --tail 200 "$@"
  ;;
ps)
  ensure_engine_and_compose
  compose ps "$@"
  ;;
compose)
  ensure_engine_and_compose
  compose "$@"
  ;;
*) die "unknown command '$command' (up, down, logs, ps, compose)" ;;
esac
