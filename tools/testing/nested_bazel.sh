# shellcheck shell=bash
# Sourced by tests that run Bazel on a clone of the workspace (affected_test, foreign_machine_test).
# nested_bazel_setup WORKSPACE TMP, in the clone: the workspace's offline module overrides
# (gitignored, so copied; absent when Bazel comes from bazelisk), an output root of its own under
# TMP, and the outer repository cache so that downloads are not repeated. Both files are ignored
# by git, so they are no change. Sets BAZEL and a trap that stops the nested server.
nested_bazel_setup() {
  local workspace="$1" tmp="$2" outer_root repository_cache
  [[ -f "$workspace/.bazelrc.offline" ]] && cp "$workspace/.bazelrc.offline" .bazelrc.offline
  outer_root="$(sed -nE 's/^startup --output_user_root=(.*)$/\1/p' .bazelrc.offline 2>/dev/null | tail -n 1)"
  repository_cache="${NESTED_BAZEL_REPOSITORY_CACHE:-${outer_root:+$outer_root/cache/repos/v1}}"
  {
    echo "startup --output_user_root=$tmp/bazel-root"
    echo "startup --max_idle_secs=120" # the server goes away even if the trap cannot run
    [[ -n "$repository_cache" ]] && echo "common --repository_cache=$repository_cache"
    # go_deps repositories: the machine's Go module cache rather than a fresh one.
    echo "common --repo_env=GO_REPOSITORY_USE_HOST_CACHE=1"
    # The outer build's Go build cache when it has one (the offline path), else one of our own.
    grep -q '^common --repo_env=GOCACHE=' .bazelrc.offline 2>/dev/null || echo "common --repo_env=GOCACHE=$tmp/gocache"
  } >.bazelrc.user
  export BAZEL="${BAZEL:-bazel}"
  NESTED_BAZEL_CLONE="$PWD" NESTED_BAZEL_TMP="$tmp"
  trap nested_bazel_cleanup EXIT
}

nested_bazel_cleanup() {
  (cd "$NESTED_BAZEL_CLONE" && "$BAZEL" shutdown >/dev/null 2>&1) || true # our nested server only
  chmod -R u+w "$NESTED_BAZEL_TMP" 2>/dev/null || true # Go's module cache files are read-only
}
