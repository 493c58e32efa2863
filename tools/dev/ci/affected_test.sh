#!/usr/bin/env bash
# Proves tools/dev/ci/affected: in a temporary git clone of the workspace, makes representative changes
# and checks the targets it selects. A nested Bazel (BAZEL=bazel, its own output root under
# TEST_TMPDIR) answers the queries; it costs one Bazel server start and the loading of every package
# and external repository (tools/dev/ci/README.md has the numbers).
# Assertions name only what exists ("at least one //py_service target, no //go_service one") so
# that new targets do not break them.
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The source tree, through the runfiles symlink of //:MODULE.bazel (as tools/rules/lint/buildifier.sh).
workspace="$(dirname "$(readlink -f MODULE.bazel)")"
runfiles="$PWD"
affected="$(readlink -f tools/dev/ci/affected)" # the version under test, maybe not yet committed
# Run by Debian 12's python3.11 (the first argument), the oldest Python the README promises: the
# machine's python3 runs it outside Bazel, and a newer one accepts syntax 3.11 rejects.
python="$PWD/${1:?usage: affected_test.sh PYTHON3_11}"
tmp="${TEST_TMPDIR:?run me with bazel test}"
export HOME="${HOME:-$tmp}" # Bazel and git want one; bazel test may leave it unset

clone="$tmp/ws"
rm -rf "$clone"
git clone -q "$workspace" "$clone"
cd "$clone"
git config user.email affected-test@localhost
git config user.name affected_test
base="$(git rev-parse HEAD)"

# The nested Bazel (tools/testing/nested_bazel.sh): its own output root, the outer repository cache.
# shellcheck source=tools/testing/nested_bazel.sh
source "$runfiles/tools/testing/nested_bazel.sh"
nested_bazel_setup "$workspace" "$tmp"

# --- helpers ------------------------------------------------------------------------------------
out="$tmp/out"
run_affected() { # run_affected ARGS...: the selection in $out
  "$python" "$affected" "$@" >"$out" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "affected $* exited non-zero"; }
}
count() { grep -cE "$1" "$out" || true; }
expect_some() { [[ "$(count "$1")" -gt 0 ]] || fail "$scenario: expected a target matching $1, got: $(tr '\n' ' ' <"$out")"; }
expect_none() { [[ "$(count "$1")" -eq 0 ]] || fail "$scenario: expected no target matching $1, got: $(grep -E "$1" "$out" | tr '\n' ' ')"; }
expect_empty() { [[ ! -s "$out" ]] || fail "$scenario: expected nothing, got: $(tr '\n' ' ' <"$out")"; }
reset() { git reset -q --hard "$base" && git clean -qfd; }
passed=0
ok() {
  passed=$((passed + 1))
  echo "ok: $scenario ($(wc -l <"$out") targets)"
}
readonly GO='^//go_service[/:]' PY='^//py_service[/:]'

# --- scenarios ----------------------------------------------------------------------------------
scenario="no change"
run_affected --base HEAD
expect_empty && ok

scenario="py_service source change"
echo "# touched by affected_test" >>py_service/app/cache.py
run_affected --base HEAD
expect_some "$PY" && expect_none "$GO"
cp "$out" "$tmp/py_all"
run_affected --base HEAD --tests
expect_some '^//py_service/tests:.*_test$' && expect_none "$GO" && expect_none '^//py_service:py_service$' && ok

scenario="py_service change, committed (base HEAD~1)"
git commit -qam "py change"
run_affected --base HEAD~1
cmp -s "$out" "$tmp/py_all" ||
  fail "$scenario: differs from the same change uncommitted: $(diff "$tmp/py_all" "$out" | head -20 | tr '\n' ' ')"
ok
reset

scenario="go_service source change"
echo "// touched by affected_test" >>go_service/internal/cache/cache.go
run_affected --base HEAD
expect_some "$GO" && expect_none "$PY"
grep -qx '//go_service/internal/cache:cache_test' "$out" || fail "$scenario: its own package's test is missing"
cp "$out" "$tmp/go_all"
run_affected --base HEAD --tests
expect_some "$GO" && expect_none "$PY" && expect_none '^//go_service/internal/cache:cache$' && ok
reset

scenario="MODULE.bazel change"
echo "# touched by affected_test" >>MODULE.bazel
run_affected --base HEAD
sort -u "$tmp/py_all" "$tmp/go_all" | comm -23 - "$out" >"$tmp/missing"
[[ ! -s "$tmp/missing" ]] || fail "$scenario: everything should include $(tr '\n' ' ' <"$tmp/missing")"
expect_some '^//tools/'
# "Everything" is exactly what `bazel build //...` builds: the non-manual rules of //...
"$BAZEL" query --keep_going --output=label 'kind(rule, //...) except attr(tags, "\bmanual\b", //...)' \
  2>/dev/null | sort >"$tmp/all" || true
cmp -s "$out" "$tmp/all" || fail "$scenario: not every target: $(diff "$tmp/all" "$out" | head -n 5 | tr '\n' ' ')"
run_affected --base HEAD --all-as-pattern
[[ "$(cat "$out")" == "//..." ]] || fail "$scenario: --all-as-pattern should print //..."
ok
reset

scenario="go.sum change"
echo "" >>go_service/go.sum
run_affected --base HEAD --all-as-pattern
[[ "$(cat "$out")" == "//..." ]] || fail "$scenario: should select everything"
ok
reset

scenario="documentation change"
echo "more words" >>README.md
mkdir -p docs && echo "# notes" >docs/notes.md
run_affected --base HEAD --tests
[[ "$(cat "$out")" == "//docs:links_test" ]] || fail "$scenario: expected only the docs test, got: $(tr '\n' ' ' <"$out")"
ok
reset

scenario="BUILD file change"
echo "# touched by affected_test" >>go_service/internal/config/BUILD.bazel
run_affected --base HEAD
"$BAZEL" query --keep_going --output=label \
  'kind(rule, //go_service/internal/config:*) except attr(tags, "\bmanual\b", //go_service/internal/config:*)' \
  2>/dev/null | sort >"$tmp/package" || true
[[ -s "$tmp/package" ]] || fail "$scenario: could not list //go_service/internal/config"
comm -23 "$tmp/package" "$out" >"$tmp/missing"
[[ ! -s "$tmp/missing" ]] || fail "$scenario: the package's $(tr '\n' ' ' <"$tmp/missing") missing"
expect_none "$PY" && ok
reset

scenario="file only the tree listing reads"
echo "scratch" >go_service/notes.txt
run_affected --base HEAD
# The tree listings (all_files) and their one reader, nothing else.
others="$(grep -vE '^//docs:links_test$|:all_files$' "$out" || true)"
[[ -z "$others" ]] || fail "$scenario: expected only all_files groups and //docs:links_test, got: $others"
grep -qx '//docs:links_test' "$out" || fail "$scenario: //docs:links_test is missing"
run_affected --base HEAD --tests
[[ "$(cat "$out")" == "//docs:links_test" ]] || fail "$scenario: expected only the docs test, got: $(tr '\n' ' ' <"$out")"
ok
reset

scenario="deleted source file (globbed)"
git rm -q py_service/app/errors.py
run_affected --base HEAD
expect_some "$PY" && expect_none "$GO" && ok
reset

scenario="bad base revision"
if "$python" "$affected" --base no-such-revision >"$out" 2>"$tmp/err"; then fail "$scenario: exited 0"; fi
if [[ "$(wc -l <"$tmp/err")" -ne 1 ]] || ! grep -q "bad base revision 'no-such-revision'" "$tmp/err"; then
  fail "$scenario: expected one clear line, got: $(cat "$tmp/err")"
fi
ok

echo "$passed passed, 0 failed"
