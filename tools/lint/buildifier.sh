#!/usr/bin/env bash
# Formats (bazel run //tools/lint:buildifier) or checks (bazel test //tools/lint:buildifier_test)
# every Starlark file of the repo with buildifier, built from source by Bazel.
set -euo pipefail
buildifier="$(realpath "$1")"
mode="$2" # fix | check
if [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  root="$BUILD_WORKSPACE_DIRECTORY"
else
  # Under bazel test the source tree is reached through the runfiles symlink of MODULE.bazel; the
  # test is tagged "external" so it always reruns, as any Starlark file may have changed.
  root="$(dirname "$(readlink -f MODULE.bazel)")"
fi
mapfile -d '' files < <(find "$root" \( -name 'bazel-*' -o -name .git \) -prune -o -type f \
  \( -name BUILD.bazel -o -name BUILD -o -name '*.bzl' -o -name MODULE.bazel -o -name REPO.bazel \) -print0)
if [[ "$mode" == fix ]]; then
  exec "$buildifier" -mode=fix -lint=fix "${files[@]}"
fi
if ! "$buildifier" -mode=check -lint=warn "${files[@]}"; then
  echo "buildifier found problems above: run 'tools/bazel run //tools/lint:buildifier' to fix them." >&2
  exit 1
fi
echo "buildifier: ${#files[@]} files clean"
