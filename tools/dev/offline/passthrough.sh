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
# that every variable deploy/compose.yaml reads passes.

# passthrough_environment: prints NAME=VALUE of each exported variable passed through, each ended
# by a NUL byte (a value may hold newlines), for `mapfile -d ''`.
passthrough_environment() {
  local name
  while IFS= read -r name; do
    case "$name" in
    STACK_* | COMPOSE_* | DOCKER_CONFIG | OCI_REGISTRY | DEBIAN_MIRROR | \
      *_proxy | *_PROXY | GOPROXY | GONOSUMDB | GOPRIVATE | GOSUMDB | GOINSECURE | GONOPROXY | PIP_* | \
      SSL_CERT_* | REQUESTS_CA_BUNDLE | CURL_CA_BUNDLE | TERM | USER | BAZELISK_*)
      printf '%s=%s\0' "$name" "${!name}"
      ;;
    esac
  done < <(compgen -e)
}
