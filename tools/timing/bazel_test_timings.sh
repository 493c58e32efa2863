#!/usr/bin/env bash
# Measures the timings the README quotes for the test command:
#   cold: no chroot and no Bazel cache (a new, empty tools/bazel cache directory), then
#   warm: the same command again with nothing changed (the Bazel server is kept between runs).
# The machine's Go module cache is left as it is: it belongs to the machine, not to this repo.
# Stop any Docker engine first: the scratch chroot starts its own for the requires-docker tests.
#   usage: tools/timing/bazel_test_timings.sh [bazel target pattern, default //...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pattern="${1:-//...}"
scratch="$(mktemp -d)"
export CACHE_PLATFORM_CACHE_DIR="$scratch"
timed() { # timed LABEL COMMAND...: runs COMMAND, prints LABEL and its wall time in seconds
  local start=$EPOCHREALTIME
  "${@:2}" >"$scratch/$1.log" 2>&1 || { tail -n 30 "$scratch/$1.log"; exit 1; }
  printf '%-5s %6.1f s\n' "$1" "$(echo "$EPOCHREALTIME - $start" | bc)"
}
timed cold tools/bazel test "$pattern"
timed warm tools/bazel test "$pattern"
tools/offline/drop-cache >/dev/null
