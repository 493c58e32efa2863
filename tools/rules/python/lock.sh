#!/usr/bin/env bash
# Regenerates a hashed lock file from a requirements.in with pip-compile, using the interpreter
# the build uses (python3.13), so markers and wheels resolve for the Python the tests and images run.
#   bazel run //:requirements.update
set -euo pipefail
readonly PIP_TOOLS_VERSION="7.6.2"
in_file="$1" lock_file="$2"
cd "${BUILD_WORKSPACE_DIRECTORY:?run me with bazel run}"
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3.13 -m venv "$venv"
"$venv/bin/pip" install --quiet "pip-tools==$PIP_TOOLS_VERSION"
# The index comes from the machine's pip configuration; keep it (and any find-links) out of the file.
"$venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file "$lock_file" "$in_file"
echo "wrote $lock_file"
