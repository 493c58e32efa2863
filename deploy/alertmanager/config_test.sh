#!/usr/bin/env bash
# Checks Alertmanager's configuration and its routing with amtool from the same pinned Debian
# package the image ships (usage: config_test.sh TOOL_FROM_TARS ALERTMANAGER_YML TAR...).
set -euo pipefail
tool_from_tars="$1" config="$2"
shift 2
amtool="$("$tool_from_tars" "${TEST_TMPDIR:-$(mktemp -d)}/alertmanager" usr/bin/amtool "$@")"
"$amtool" check-config "$config"
# Every alert the rules can fire reaches the webhook receiver.
for alert in ServiceDown HighErrorRatio HighLatencyP99 LowCacheHitRatio CacheBackendErrors LowNginxCacheHitRatio; do
  receiver="$("$amtool" config routes test --config.file="$config" "alertname=$alert" job=go-service)"
  [[ "$receiver" == "webhook" ]] || { echo "$alert routes to '$receiver', not webhook" >&2; exit 1; }
done
echo "ok: config valid, every alert routed to the webhook"
