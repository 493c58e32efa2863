#!/usr/bin/env bash
# The stack's life cycle: `bazel run //deploy:up | :down | :logs | :ps`
# (docs/operations.md, "The stack").
#   stack.sh up LOADER...    make sure an engine and Compose v2 answer, load the images, start, wait
#   stack.sh down [--volumes] | logs [SERVICE...] | ps
#   stack.sh compose ARGS...   any `docker compose` command on the running stack, with the project,
#                              file and environment `up` used (scale, stop, start a service)
#   stack.sh urls              what `up` printed at the end: the running stack's settings (else
#                              these, saying so); starts nothing
# Its settings, and compose.yaml's, come from the environment as STACK_* variables (deploy/README.md,
# "Settings"), which tools/bazel passes through as they are, and default to deploy/stack.env's;
# COMPOSE_* are Compose's own.
set -euo pipefail
# COMPOSE_PROJECT_NAME runs a second stack beside the first (the tests do, on ports of their own).
readonly PROJECT="${COMPOSE_PROJECT_NAME:-cache-platform}"

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
settings_file="$workspace/deploy/stack.env"

# load_settings: each setting of deploy/stack.env that the environment leaves unset or empty takes
# the file's value; all are exported, for compose.yaml and the banner. The file's format is the
# subset Compose, kustomize and Python read alike (//deploy:stack_settings_test): a line outside it
# stops here rather than meaning something else to one of them.
load_settings() {
  local line name number=0 setting='^(STACK_[A-Z0-9_]+)=([A-Za-z0-9_./:@+-]+)$'
  local -A seen=()
  [[ -f "$settings_file" ]] || die "cannot find deploy/stack.env under $workspace"
  while IFS= read -r line || [[ -n "$line" ]]; do
    number=$((number + 1))
    [[ -z "$line" || "$line" == \#* ]] && continue
    [[ "$line" =~ $setting ]] || die "$settings_file:$number: want STACK_NAME=VALUE, got: $line"
    name="${BASH_REMATCH[1]}"
    [[ -z "${seen[$name]:-}" ]] || die "$settings_file:$number: $name is set twice"
    seen[$name]=1
    [[ -n "${!name:-}" ]] || printf -v "$name" '%s' "${BASH_REMATCH[2]}"
    export "${name?}"
  done <"$settings_file"
}
load_settings

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

# Secrets (deploy/README.md, "Secrets"). Each is a STACK_* variable's value if set, else generated
# once into $config_dir (a 0700 directory, 0600 files) and kept. `up` hands each container the
# ones it reads as files of its own under $STACK_SECRETS_DIR, mounted by compose.yaml: 0600 and
# owned by the uid the container runs as. A secret is never printed; `up` says where it is.
readonly config_dir="${XDG_CONFIG_HOME:-$HOME/.config}/cache-platform"
readonly state_dir="$HOME/.local/state/cache-platform"
# Under tools/bazel these paths are inside its chroot; CACHE_PLATFORM_CHROOT (set by tools/bazel)
# is where the chroot is on the host, so messages name the path a user can open.
host_path() { echo "${CACHE_PLATFORM_CHROOT:-}$1"; }
# What `up` started with: the settings in force and whether Grafana runs, read back by `urls`.
readonly settings_in_force="$state_dir/$PROJECT/settings.env"
readonly STACK_SECRETS_DIR="$state_dir/$PROJECT/secrets"
# The file Alertmanager reads its webhook URL from at each delivery (compose.yaml, configs). Written
# by `up` only: `ps`, `logs` or `down` must not move a running stack's alerts back to the default.
readonly STACK_ALERT_WEBHOOK_URL_FILE="$STACK_SECRETS_DIR/alert-webhook-url"
# compose.yaml's `user` of Grafana (the upstream image's uid); our images' users are read from them.
readonly GRAFANA_UID=472

# user_secret NAME VALUE: VALUE if not empty, else the one in $config_dir/NAME (generated the
# first time: 18 random bytes, base64 without its punctuation).
user_secret() {
  local name="$1" value="$2" file="$config_dir/$1"
  if [[ -n "$value" ]]; then
    printf '%s\n' "$value"
    return
  fi
  (umask 077 && mkdir -p "$config_dir")
  chmod 0700 "$config_dir"
  if [[ ! -s "$file" ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file")
    say "generated $name in $(host_path "$file")"
  fi
  chmod 0600 "$file"
  cat "$file"
}

# hand_over NAME UID: stdin into $STACK_SECRETS_DIR/NAME, 0600, owned by UID (a container's user,
# which reads it through a bind mount: the host's mode and owner are what it sees). Giving a file
# away needs root; without it the file is left readable by all, inside directories only this user
# may enter.
hand_over() {
  local file="$STACK_SECRETS_DIR/$1"
  (umask 077 && mkdir -p "$STACK_SECRETS_DIR" && cat >"$file.new")
  chmod 0700 "$state_dir" "$state_dir/$PROJECT" "$STACK_SECRETS_DIR"
  if chown "$2" "$file.new" 2>/dev/null; then
    chmod 0600 "$file.new"
  else
    chmod 0644 "$file.new"
    say "not root: $(host_path "$file") is readable by all, inside its directory (mode 0700)"
  fi
  mv -f "$file.new" "$file"
}

# The uid an image runs as (its config's User, uid:gid).
image_uid() {
  local user
  user="$(docker image inspect --format '{{.Config.User}}' "$1")"
  echo "${user%%:*}"
}

# Every container's secrets, after the images are loaded (their users are read from them).
write_secrets() {
  local app_uid redis_uid alertmanager_uid
  app_uid="$(image_uid cache-platform/go-service:dev)"
  redis_uid="$(image_uid cache-platform/redis:dev)"
  alertmanager_uid="$(image_uid cache-platform/alertmanager:dev)"
  user_secret grafana-admin-password "${STACK_GRAFANA_ADMIN_PASSWORD:-}" |
    hand_over grafana-admin-password "$GRAFANA_UID"
  # Redis' ACL users (deploy/redis/users_acl.sh): a password each, the ACL holding their hashes.
  user_secret redis-go-service-password "${STACK_REDIS_GO_SERVICE_PASSWORD:-}" |
    hand_over go-service-redis-password "$app_uid"
  user_secret redis-py-service-redis-password "${STACK_REDIS_PY_SERVICE_PASSWORD:-}" |
    hand_over py-service-redis-password "$app_uid"
  # monitor: INFO for an operator (redis-cli --user monitor) or an exporter; no container has it.
  user_secret redis-monitor-password "${STACK_REDIS_MONITOR_PASSWORD:-}" |
    hand_over monitor-redis-password "$(id -u)"
  "$runfiles_dir/deploy/redis/users_acl.sh" \
    go-service="$STACK_SECRETS_DIR/go-service-redis-password" \
    py-service-redis="$STACK_SECRETS_DIR/py-service-redis-password" \
    monitor="$STACK_SECRETS_DIR/monitor-redis-password" |
    hand_over redis-users.acl "$redis_uid"
  # The webhook URL often holds a token: it is a secret too.
  printf '%s\n' "${STACK_ALERT_WEBHOOK_URL:-http://nginx:9145/alerts}" |
    hand_over alert-webhook-url "$alertmanager_uid"
  if [[ -n "${STACK_ALERT_WEBHOOK_URL:-}" ]]; then
    say "alerts are delivered to STACK_ALERT_WEBHOOK_URL (kept in $(host_path "$STACK_ALERT_WEBHOOK_URL_FILE"))"
  else
    say "alerts go to Nginx's log (//deploy:logs -- --tail all nginx); set STACK_ALERT_WEBHOOK_URL for your receiver"
  fi
}

# Nginx's list of clients the per-client limits leave alone (nginx.conf, `geo`), one per project:
# STACK_NGINX_UNLIMITED_CLIENTS, addresses or CIDR ranges separated by spaces or commas (none by
# default). Each is checked here: Nginx would refuse to start on a bad one, with a message about
# its own config. Written by `up` only, like the webhook URL; Nginx reads it when it starts.
readonly STACK_NGINX_UNLIMITED_CLIENTS_FILE="$state_dir/$PROJECT/nginx-unlimited-clients.conf"
write_nginx_unlimited_clients() {
  local listed="${STACK_NGINX_UNLIMITED_CLIENTS:-}" entries=() client
  read -r -a entries <<<"${listed//,/ }"
  for client in "${entries[@]}"; do
    [[ "$client" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)(/[0-9]{1,3})?$ ]] ||
      die "STACK_NGINX_UNLIMITED_CLIENTS: '$client' is not an IPv4 or IPv6 address or CIDR range (e.g. 192.0.2.7 or 10.213.47.0/24)"
  done
  mkdir -p "$(dirname "$STACK_NGINX_UNLIMITED_CLIENTS_FILE")"
  {
    echo "# STACK_NGINX_UNLIMITED_CLIENTS, written by deploy/stack.sh up"
    for client in "${entries[@]}"; do echo "$client 1;"; done
  } >"$STACK_NGINX_UNLIMITED_CLIENTS_FILE"
  if [[ ${#entries[@]} -gt 0 ]]; then
    say "Nginx's per-client limits leave out: ${entries[*]}"
  fi
}

up() {
  ensure_engine_and_compose
  write_nginx_unlimited_clients
  # One `docker load` at a time on this machine: two stacks coming up together (the tests) would
  # load the same layers at once, which the engine can fail with "unexpected EOF".
  (
    flock --wait 300 9 || die "another stack has been loading images for 5 minutes"
    for loader in "$@"; do
      "$runfiles_dir/$loader" | sed 's/^/deploy: /' >&2
    done
  ) 9>/tmp/cache-platform-image-load.lock
  write_secrets
  local services=()
  if ! grafana_available; then
    say "Grafana's image $STACK_GRAFANA_IMAGE is not here and cannot be pulled: starting the stack without Grafana"
    mapfile -t services < <(compose config --services | grep -vx grafana)
  fi
  compose up --detach --wait --wait-timeout 180 --remove-orphans "${services[@]}"
  record_settings "$((${#services[@]} == 0))"
  echo "The stack is up:"
  urls
}

# record_settings GRAFANA: the settings `up` started the stack with, and GRAFANA (1 when Grafana
# was started), for `urls` to print later whatever the caller's environment then.
record_settings() {
  local name
  {
    while IFS='=' read -r name _; do
      [[ "$name" == STACK_* ]] && printf '%s=%s\n' "$name" "${!name}"
    done <"$settings_file"
    echo "grafana=$1"
  } >"$settings_in_force"
}

# urls: where the stack answers and with which cache settings (a changed STACK_GO_CACHE_TTL shows
# here): those `up` recorded for this project, else the settings of this environment.
urls() {
  local grafana=1 name value
  if [[ -f "$settings_in_force" ]]; then
    while IFS='=' read -r name value; do
      case "$name" in
      STACK_*) printf -v "$name" '%s' "$value" ;;
      grafana) grafana="$value" ;;
      esac
    done <"$settings_in_force"
  else
    say "no stack of project $PROJECT is up: these are the addresses and TTLs it would have"
  fi
  local nginx="$STACK_NGINX_BIND:$STACK_NGINX_PORT"
  cat <<URLS
  curl -i $nginx/go/time       Go service: $STACK_GO_REPLICAS replica(s), in-process cache in front of Redis ($STACK_GO_CACHE_TTL)
  curl -i $nginx/python/time   Flask service (Nginx cache, $STACK_PY_CACHE_TTL)
  http://$STACK_PROMETHEUS_BIND:$STACK_PROMETHEUS_PORT        Prometheus
  http://$STACK_ALERTMANAGER_BIND:$STACK_ALERTMANAGER_PORT        Alertmanager
URLS
  if [[ "$grafana" == 1 ]]; then
    echo "  http://127.0.0.1:$STACK_GRAFANA_PORT        Grafana (user admin, password: $(where_is grafana-admin-password STACK_GRAFANA_ADMIN_PASSWORD))"
  else
    echo "  Grafana: not started (its image $STACK_GRAFANA_IMAGE is not here)"
  fi
  echo "  Redis: ACL users go-service, py-service-redis, monitor (passwords \$STACK_REDIS_GO_SERVICE_PASSWORD, ..._PY_SERVICE_..., ..._MONITOR_..., or in $(host_path "$config_dir")/redis-*-password)"
}

# where_is FILE VARIABLE: where a secret is, for the user to read it (never the secret itself).
where_is() {
  if [[ -n "${!2:-}" ]]; then
    echo "\$$2"
  else
    echo "in $(host_path "$config_dir/$1")"
  fi
}

command="${1:?usage: stack.sh up|down|logs|ps|compose|urls}"
shift
# compose.yaml names the secrets' files through these, for every command.
export STACK_SECRETS_DIR STACK_ALERT_WEBHOOK_URL_FILE
export STACK_NGINX_UNLIMITED_CLIENTS_FILE
case "$command" in
up) up "$@" ;;
urls) urls ;;
down)
  ensure_engine_and_compose
  # Every profile's services too (redis, bench): they share the project's network.
  compose --profile '*' down --remove-orphans "$@"
  # The project's secrets, settings and Nginx list: `up` writes them anew, and kept, one directory
  # per project would pile up (the tests make one per run).
  rm -rf "${state_dir:?}/$PROJECT"
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
*) die "unknown command '$command' (up, down, logs, ps, compose, urls)" ;;
esac
