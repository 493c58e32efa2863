#!/usr/bin/env bash
# Checks the Prometheus configuration and unit-tests the rules with promtool from the same pinned
# Debian package the image ships
# (usage: promtool_test.sh TOOL_FROM_TARS PROMETHEUS_YML RULES_DIR TAR...).
set -euo pipefail
tool_from_tars="$1" config="$2" rules="$3"
shift 3
promtool="$("$tool_from_tars" "${TEST_TMPDIR:-$(mktemp -d)}/prometheus" usr/bin/promtool "$@")"
"$promtool" check config --syntax-only "$config"
"$promtool" check rules "$rules/recording.yml" "$rules/alerts.yml"
cd "$rules"
"$promtool" test rules rules_test.yml
