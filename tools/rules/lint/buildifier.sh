#!/usr/bin/env bash
# Formats (bazel run //tools/rules/lint:buildifier) or checks (bazel test //tools/rules/lint:buildifier_test)
# the repo's Starlark files with buildifier, built from source by Bazel.
#   usage: buildifier.sh BUILDIFIER fix|check FILE...
# FILEs are //:lint_srcs (workspace-relative); the Starlark ones are picked out by name.
set -euo pipefail
buildifier="$(realpath "$1")" mode="$2"
shift 2
# `bazel run` fixes the files in the source tree; `bazel test` checks its declared copies.
[[ -z "${BUILD_WORKSPACE_DIRECTORY:-}" ]] || cd "$BUILD_WORKSPACE_DIRECTORY"
files=()
for file in "$@"; do
  case "${file##*/}" in
  BUILD.bazel | BUILD | *.bzl | MODULE.bazel | REPO.bazel) files+=("$file") ;;
  esac
done
if [[ "$mode" == fix ]]; then
  exec "$buildifier" -mode=fix -lint=fix "${files[@]}"
fi
if ! "$buildifier" -mode=check -lint=warn "${files[@]}"; then
  echo "buildifier found problems above: run 'tools/bazel run //tools/rules/lint:buildifier' to fix them." >&2
  exit 1
fi
echo "buildifier: ${#files[@]} files clean"
