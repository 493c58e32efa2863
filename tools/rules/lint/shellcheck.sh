#!/usr/bin/env bash
# Checks the repo's shell scripts with Debian's shellcheck (bazel test //tools/rules/lint:shellcheck_test).
#   usage: shellcheck.sh TAR... -- FILE...
# TARs: the filesystem trees of Debian's shellcheck and its libraries (@debian_shellcheck) and of
# glibc (@debian_libc): shellcheck runs under that glibc's loader, so it needs nothing from the
# machine. FILEs are //:lint_srcs; shell scripts are picked out by name (*.sh) or #! line.
set -euo pipefail
root="${TEST_TMPDIR:-$(mktemp -d)}/debian"
mkdir -p "$root"
while [[ $# -gt 0 && "$1" != -- ]]; do
  tar -xf "$1" -C "$root"
  shift
done
shift
scripts=()
for file in "$@"; do
  case "${file##*/}" in
  *.sh | *.sh.tpl) scripts+=("$file") ;;
  *.*) ;;
  *) if head -n 1 "$file" | grep -qE '^#!.*\b(ba)?sh\b'; then scripts+=("$file"); fi ;;
  esac
done
[[ ${#scripts[@]} -gt 0 ]] || {
  echo "shellcheck: no shell script among the inputs" >&2
  exit 1
}
if ! "$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$root/usr/lib/x86_64-linux-gnu" \
  "$root/usr/bin/shellcheck" --external-sources "${scripts[@]}"; then
  echo "shellcheck found problems above: fix them, or disable one with a reasoned # shellcheck disable=SCnnnn." >&2
  exit 1
fi
echo "shellcheck: ${#scripts[@]} scripts clean"
