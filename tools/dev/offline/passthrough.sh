# shellcheck shell=bash
# Sourced by tools/bazel: which of the user's environment variables reach the tools inside its
# chroot (the rest of the environment is dropped there, so that the host's settings cannot leak
# into the build). By family, so that a new variable of a family needs no change here:
#   STACK_*                the Compose stack's settings: every variable deploy/compose.yaml,
#                          deploy/stack.sh and tools/dev/bench read from the user (deploy/README.md)
#   COMPOSE_*              Docker Compose's own (COMPOSE_PROJECT_NAME, COMPOSE_PROFILES)
#   DOCKER_CONFIG          registry credentials, for oci_push (not DOCKER_HOST: the chroot's engine
#                          socket is at another path than the host's)
#   OCI_REGISTRY           where oci_push pushes and render_prod pins images (deploy/k8s)
#   DEBIAN_MIRROR          where the Debian packages come from (tools/rules/debian/mirror.sh)
#   *_proxy, *_PROXY, GOPROXY, GONOSUMDB, GOPRIVATE, GOSUMDB, GOINSECURE, GONOPROXY, PIP_*,
#   SSL_CERT_*, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE
#                          how the clients inside reach the registries, and which CAs they trust
#   TERM, USER, BAZELISK_*
# So a new setting of the stack is named STACK_*, and nothing here changes; passthrough_test checks
# that every variable deploy/compose.yaml reads passes. One left out that looks like a setting is
# named on stderr (passthrough_dropped), not lost without a word.

# passthrough_passes NAME: whether the variable NAME reaches the chroot.
passthrough_passes() {
  case "$1" in
  STACK_* | COMPOSE_* | DOCKER_CONFIG | OCI_REGISTRY | DEBIAN_MIRROR | \
    *_proxy | *_PROXY | GOPROXY | GONOSUMDB | GOPRIVATE | GOSUMDB | GOINSECURE | GONOPROXY | PIP_* | \
    SSL_CERT_* | REQUESTS_CA_BUNDLE | CURL_CA_BUNDLE | TERM | USER | BAZELISK_*)
    return 0
    ;;
  esac
  return 1
}

# passthrough_environment: prints NAME=VALUE of each exported variable passed through, each ended
# by a NUL byte (a value may hold newlines), for `mapfile -d ''`.
passthrough_environment() {
  local name
  while IFS= read -r name; do
    if passthrough_passes "$name"; then printf '%s=%s\0' "$name" "${!name}"; fi
  done < <(compgen -e)
}

# passthrough_dropped SETTINGS_FILE: one line on stderr for each exported variable left out that
# looks like a setting: one named like a STACK_* setting of SETTINGS_FILE (deploy/stack.env) without
# its prefix (GO_REPLICAS) or its service part (CACHE_TTL), or in another case; one holding a STACK
# word (MY_STACK_PORT); a service's own (*_TTL, CACHE_*: the stack sets those from STACK_*). Not the
# wrapper's own CACHE_PLATFORM_*, which it reads itself.
passthrough_dropped() {
  local name upper setting meant
  local -a settings=()
  [[ ! -f "$1" ]] || mapfile -t settings < <(grep -oE '^STACK_[A-Z0-9_]+' "$1")
  while IFS= read -r name; do
    passthrough_passes "$name" && continue
    upper="${name^^}" meant=""
    for setting in "${settings[@]}"; do
      if [[ "$setting" == "$upper" || "$setting" == "STACK_$upper" ||
        ("$upper" == *_* && "$setting" == STACK_*_"$upper") ]]; then
        meant+="$setting, "
      fi
    done
    [[ -n "$meant" || "$upper" == STACK* || "$upper" == *_STACK* || "$upper" == *_TTL ||
      ("$upper" == CACHE_* && "$upper" != CACHE_PLATFORM_*) ]] || continue
    echo "tools/bazel: $name is not passed into the build: the stack's settings are STACK_* (${meant}deploy/stack.env)" >&2
  done < <(compgen -e)
}
