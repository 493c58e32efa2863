#!/usr/bin/env bash
# The online path, as well as it can be tried here: a clean build of the workspace (a nested Bazel
# with an output root of its own, on a clone) on a machine that looks like a GitHub runner or a
# laptop, in a mount namespace of its own where
#   - there is no /usr/bin/python3.13 (python3 is whatever else the machine has: sid's 3.14 in
#     tools/bazel's chroot, as Ubuntu's is 3.12), and
#   - the apt sources name no Debian mirror (an Ubuntu-like sources.list, no sources.list.d),
# with the mirror given as .github/workflows/ci.yml gives it: DEBIAN_MIRROR in the environment.
# Checks: without DEBIAN_MIRROR the Debian fetch stops with its one-line error; with it, a py_test
# on the locked interpreter and the service unit tests pass, and both images build for
# --platforms=//platforms:linux_amd64 with linux/amd64 in their config. It also checks
# reproducibility: //go_service:image from this clean output base has the outer build's digest.
# Usage: foreign_machine_test.sh OCITOOL OUTER_GO_IMAGE
set -euo pipefail
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
runfiles="$PWD"
ocitool="$(readlink -f "$1")"
outer_image="$(readlink -f "$2")"
workspace="$(dirname "$(readlink -f MODULE.bazel)")"
tmp="${TEST_TMPDIR:?run me with bazel test}"
export HOME="${HOME:-$tmp}"
[[ "$(id -u)" == 0 ]] || fail "needs root for its mount namespace (unshare, mount)"

# The mirror the workflow would take from the repository variable: here, the one this machine's apt
# sources name (or DEBIAN_MIRROR), read before the namespace hides them.
mirror="$("$runfiles/tools/rules/debian/mirror.sh" 2>&1)" || fail "$mirror"

clone="$tmp/ws"
rm -rf "$clone"
git clone -q "$workspace" "$clone"
# Uncommitted changes count too: the outer build saw them.
(cd "$workspace" && git diff HEAD) | (cd "$clone" && git apply --allow-empty)
cd "$clone"
# shellcheck source=tools/testing/nested_bazel.sh
source "$runfiles/tools/testing/nested_bazel.sh"
nested_bazel_setup "$workspace" "$tmp"

# foreign_machine TMP MIRROR: runs the nested builds in a namespace that hides python3.13 and the
# Debian apt sources. One namespace for every command: the nested Bazel server lives in it.
foreign_machine() {
  local tmp="$1" mirror="$2" f
  mkdir -p "$tmp/usr-bin/upper" "$tmp/usr-bin/work" "$tmp/apt-empty"
  # An overlay whose whiteouts (0/0 character devices) remove python3.13* from /usr/bin.
  for f in /usr/bin/python3.13*; do [[ -e "$f" ]] && mknod "$tmp/usr-bin/upper/${f##*/}" c 0 0; done
  mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$tmp/usr-bin/upper,workdir=$tmp/usr-bin/work" /usr/bin
  echo "deb http://mirror.invalid/ubuntu noble main universe" >"$tmp/sources.list"
  [[ -f /etc/apt/sources.list ]] && mount --bind "$tmp/sources.list" /etc/apt/sources.list
  [[ -d /etc/apt/sources.list.d ]] && mount --bind "$tmp/apt-empty" /etc/apt/sources.list.d
  hash -r
  if command -v python3.13 >/dev/null || [[ -e /usr/bin/python3.13 ]]; then
    echo "FAIL: python3.13 is still on this 'foreign' machine" >&2
    return 1
  fi
  echo "foreign machine: python3 is $(python3 --version 2>&1 || echo none); apt sources: $(cat /etc/apt/sources.list)"

  # Without the mirror the Debian packages cannot be fetched, and the error says what to set.
  if env -u DEBIAN_MIRROR "$BAZEL" build @debian_base//:packages.txt >"$tmp/no_mirror.log" 2>&1; then
    echo "FAIL: the Debian packages were fetched with no mirror set" >&2
    return 1
  fi
  grep -q "found no Debian mirror.*set DEBIAN_MIRROR" "$tmp/no_mirror.log" || {
    tail -n 20 "$tmp/no_mirror.log"
    echo "FAIL: no clear error without DEBIAN_MIRROR" >&2
    return 1
  }

  # As the workflow: DEBIAN_MIRROR from the repository variable.
  export DEBIAN_MIRROR="$mirror"
  "$BAZEL" test //tools/rules/python:interpreter_test //py_service/tests:unit_test >"$tmp/test.log" 2>&1 || {
    tail -n 40 "$tmp/test.log"
    return 1
  }
  "$BAZEL" build --platforms=//platforms:linux_amd64 //go_service:image //py_service:image \
    --profile="${TEST_UNDECLARED_OUTPUTS_DIR:-$tmp}/nested_build_profile.gz" >"$tmp/build.log" 2>&1 || {
    tail -n 40 "$tmp/build.log"
    return 1
  }
  "$BAZEL" shutdown
}
started=$SECONDS
unshare --mount --propagation private bash -c "set -euo pipefail; BAZEL='$BAZEL'; $(declare -f foreign_machine); foreign_machine \"\$@\"" \
  foreign_machine "$tmp" "$mirror" || fail "the build on the foreign machine failed (logs above)"
echo "nested build and tests: $((SECONDS - started)) s"

for image in go_service py_service; do
  config="$("$ocitool" inspect --image "$(readlink -f "bazel-bin/$image/image")")"
  platform="$(sed -nE 's/.*"os": *"([^"]*)".*/\1/p' <<<"$config" | head -n 1)/$(sed -nE 's/.*"architecture": *"([^"]*)".*/\1/p' <<<"$config" | head -n 1)"
  echo "//$image:image: $platform"
  [[ "$platform" == linux/amd64 ]] || fail "//$image:image is $platform, not linux/amd64"
done

outer="$("$ocitool" digest --image "$outer_image")"
nested="$("$ocitool" digest --image "$(readlink -f bazel-bin/go_service/image)")"
echo "//go_service:image, this build:        $outer"
echo "//go_service:image, clean output base: $nested"
[[ "$outer" == "$nested" ]] || fail "//go_service:image is not reproducible"
