#!/usr/bin/env bash
# Lints the GitHub workflows with actionlint, built from source by Bazel (tools/go.mod's tool line).
#   usage: actionlint.sh ACTIONLINT WORKFLOW...
# Its shellcheck and pyflakes passes are turned off: they would run only where a machine happens to
# have those tools, and a lint result must not depend on the machine. For them, run
# `go tool actionlint ../.github/workflows/ci.yml` in tools/ with shellcheck installed.
set -euo pipefail
actionlint="$1"
shift
"$actionlint" -shellcheck= -pyflakes= "$@"
echo "actionlint: $# workflow(s) clean"
