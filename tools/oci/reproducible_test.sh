#!/usr/bin/env bash
# Reproducibility: //go_service:image built again from a clean output base (a nested Bazel with an
# output root of its own, on a clone of the workspace) has the same manifest digest as the image
# this build made. The digest covers the config and every layer, so any byte of drift shows.
set -euo pipefail
runfiles="$PWD"
ocitool="$(readlink -f "$1")"
outer_image="$(readlink -f "$2")"
workspace="$(dirname "$(readlink -f MODULE.bazel)")"
tmp="${TEST_TMPDIR:?run me with bazel test}"
export HOME="${HOME:-$tmp}"

clone="$tmp/ws"
rm -rf "$clone"
git clone -q "$workspace" "$clone"
# Uncommitted changes count too: the outer build saw them.
(cd "$workspace" && git diff HEAD) | (cd "$clone" && git apply --allow-empty)
cd "$clone"
# shellcheck source=tools/ci/nested_bazel.sh
source "$runfiles/tools/ci/nested_bazel.sh"
nested_bazel_setup "$workspace" "$tmp"

"$BAZEL" build --profile="${TEST_UNDECLARED_OUTPUTS_DIR:-$tmp}/nested_build_profile.gz" //go_service:image >"$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; exit 1; }
outer="$("$ocitool" digest --image "$outer_image")"
nested="$("$ocitool" digest --image "$(readlink -f bazel-bin/go_service/image)")"
echo "this build:        $outer"
echo "clean output base: $nested"
[[ "$outer" == "$nested" ]] || { echo "FAIL: //go_service:image is not reproducible" >&2; exit 1; }
