#!/usr/bin/env bash
# Checks the Prometheus configuration and unit-tests the rules with promtool from the same pinned
# Debian package the image ships (usage: promtool_test.sh PROMETHEUS_YML RULES_DIR TAR...).
set -euo pipefail
config="$1" rules="$2"
shift 2
root="${TEST_TMPDIR:-$(mktemp -d)}/prometheus"
mkdir -p "$root"
for tar in "$@"; do
  tar -xf "$tar" -C "$root" ./usr/bin/promtool 2>/dev/null || true
done
promtool="$root/usr/bin/promtool"
[[ -x "$promtool" ]] || { echo "promtool is in none of the package tars" >&2; exit 1; }
"$promtool" check config --syntax-only "$config"
"$promtool" check rules "$rules/recording.yml" "$rules/alerts.yml"
cd "$rules"
"$promtool" test rules rules_test.yml
