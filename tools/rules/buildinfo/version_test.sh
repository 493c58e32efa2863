#!/usr/bin/env bash
# MODULE.bazel's module(version = ...) equals version.bzl's VERSION (usage: MODULE.bazel version.bzl).
set -euo pipefail
module="$(sed -n 's/^ *version = "\(.*\)",$/\1/p' "$1" | head -1)"
product="$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' "$2")"
[[ -n "$module" && "$module" == "$product" ]] || {
  echo "MODULE.bazel's version '$module' differs from version.bzl's '$product'" >&2
  exit 1
}
echo "ok: version $product"
