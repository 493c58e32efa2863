#!/usr/bin/env bash
# Scans Go binaries, or govulncheck blobs of them (cmd/vulnblob), with govulncheck against the
# pinned vulnerability database, offline. Fails when any of them holds code with a known
# vulnerability (govulncheck's symbol level: the vulnerable function is in the binary).
#   bazel test //go_service:govulncheck_test                 (each shipped Go binary has one beside it)
#   tools/bazel run //tools/rules/vuln:scan -- PATH...        (any Go binary, e.g. one `go build` made)
#   usage: scan.sh GOVULNCHECK DB_DIR BINARY_OR_BLOB...
set -euo pipefail
govulncheck="$(realpath "$1")" db="$(realpath "$2")"
shift 2
[[ $# -gt 0 ]] || {
  echo "usage: scan.sh GOVULNCHECK DB_DIR BINARY_OR_BLOB..." >&2
  exit 2
}
# Under `bazel run`, paths on the command line are the caller's.
cd "${BUILD_WORKING_DIRECTORY:-.}"
failed=()
for target in "$@"; do
  echo "=== $target"
  "$govulncheck" -mode=binary -db "file://$db" "$target" || failed+=("$target")
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "govulncheck: vulnerable code in ${failed[*]}" >&2
  exit 1
fi
echo "govulncheck: no vulnerable code in $# binaries"
