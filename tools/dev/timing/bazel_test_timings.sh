#!/usr/bin/env bash
# Measures the timings docs/timings.md quotes for the test command:
#   cold: no chroot and no Bazel cache (a new, empty tools/bazel cache directory), then
#   warm: the same command again with nothing changed (the Bazel server is kept between runs).
# The machine's Go module cache is left as it is: it belongs to the machine, not to this repo.
# Stop any Docker engine first: the scratch chroot starts its own for the requires-docker tests.
# The scratch chroot's cache directory is a new temporary one; the Bazel output lives under it.
#   usage: tools/dev/timing/bazel_test_timings.sh [bazel target pattern, default //...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
pattern="${1:-//...}"
scratch="$(mktemp -d)"
export CACHE_PLATFORM_CACHE_DIR="$scratch"
timed() { # timed LABEL COMMAND...: runs COMMAND, prints LABEL and its wall time in seconds
  local start=$EPOCHREALTIME
  "${@:2}" >"$scratch/$1.log" 2>&1 || { tail -n 30 "$scratch/$1.log"; exit 1; }
  printf '%-5s %6.1f s\n' "$1" "$(echo "$EPOCHREALTIME - $start" | bc)"
}
# Bazel's profiles and logs of both runs, kept: `bazel analyze-profile FILE` or chrome://tracing reads them.
profiles="$(mktemp -d -t bazel-timings.XXXXXX)"
timed cold tools/bazel test --profile="$scratch/output/cold.profile.gz" "$pattern"
timed warm tools/bazel test --profile="$scratch/output/warm.profile.gz" "$pattern"
grep -h "chroot ready" "$scratch/cold.log" || true
cp "$scratch"/output/*.profile.gz "$scratch"/*.log "$profiles/"
echo "profiles and logs: $profiles"
tools/dev/offline/drop-cache >/dev/null
