#!/usr/bin/env bash
# Prints the Redis ACL file (users.acl, read with --aclfile) for the users given:
#
#   users_acl.sh go-service=PASSWORD_FILE [py-service-redis=PASSWORD_FILE] [monitor=PASSWORD_FILE]
#
# Each password file holds one line. The ACL holds their SHA-256 only (Redis' "#<hash>" form), so
# the file Redis reads reveals no password. The users (deploy/README.md, "Who may use Redis"):
#   default           off: a connection that has not authenticated can run nothing, PING included
#   go-service        the Go tier's keys (go_service:*): GETRANGE, GET, SET, DEL, the lease's script
#   py-service-redis  the Flask variant's keys (py_service:*): GETRANGE, SET
#   monitor           INFO and PING, no keys: an exporter's, an operator's, the stack tests'
#   healthcheck       PING and nothing else, no keys; no password, since a health check's command
#                     line is public (`docker inspect`, the pod spec): AUTH healthcheck with any
#                     password gets PING, and nothing else
set -euo pipefail
die() {
  echo "users_acl: $*" >&2
  exit 2
}
(($# >= 1)) || die "usage: users_acl.sh go-service=PASSWORD_FILE [py-service-redis=FILE] [monitor=FILE]"

# What each user may do besides authenticating. CLIENT SETINFO: redis-py names its library on
# connect (and ignores a refusal).
declare -A rules=(
  [go-service]="~go_service:* +getrange +get +set +del +evalsha +eval"
  [py-service-redis]="~py_service:* +getrange +set +client|setinfo"
  [monitor]="+info +ping"
)

# The SHA-256 of the one line in $1, checked as the services check it when they read it.
password_hash() {
  local password
  [[ -r "$1" ]] || die "$1: cannot read it"
  password="$(<"$1")"
  [[ -n "$password" && "$password" != *$'\n'* ]] || die "$1: want one non-empty line"
  printf '%s' "$password" | sha256sum | cut -d' ' -f1
}

# Every line before any output: a bad argument leaves no half-written ACL.
lines=("user default reset") # reset: no password, no keys, no commands, off
for arg in "$@"; do
  user="${arg%%=*}" file="${arg#*=}"
  [[ "$arg" == *=* && -n "${rules[$user]:-}" ]] || die "$arg: want USER=PASSWORD_FILE, USER one of ${!rules[*]}"
  hash="$(password_hash "$file")"
  lines+=("user $user reset on #$hash ${rules[$user]}")
done
lines+=("user healthcheck reset on nopass +ping")
printf '%s\n' "${lines[@]}"
