#!/usr/bin/env bash
# Bazel's --workspace_status_command (.bazelrc): the source revision, for stamped builds
# (`--stamp`, e.g. release images), read by //tools/rules/buildinfo and rules_go's x_defs. Prints nothing
# outside a git checkout, and those builds say revision "unknown".
if revision="$(git rev-parse HEAD 2>/dev/null)"; then
  if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    revision="$revision-dirty"
  fi
  echo "STABLE_GIT_COMMIT $revision"
fi
