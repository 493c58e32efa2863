#!/usr/bin/env bash
# Extracts one program from the layer tars of a pinned Debian package set (@debian_<set>//:tars)
# into DIR and prints its path, so a test runs the very binary the image ships (promtool,
# amtool). Usage: tool_from_tars.sh DIR PATH_IN_PACKAGE TAR...
set -euo pipefail
dir="$1" path="$2"
shift 2
mkdir -p "$dir"
for tar in "$@"; do
  tar -xf "$tar" -C "$dir" "./$path" 2>/dev/null || true
done
[[ -x "$dir/$path" ]] || { echo "$path is in none of the package tars: $*" >&2; exit 1; }
echo "$dir/$path"
