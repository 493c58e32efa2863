-- The stack's Nginx metrics: every request the proxy servers answer, by service, status code and
-- cache status, and its duration by service. Names and labels are those the recording rules,
-- alerts and dashboards read (deploy/prometheus/rules, api/metrics.json); they were mtail's
-- before, and are unchanged.
--
-- Loaded once by init_by_lua (nginx.conf), before the workers fork: they share the dictionary.

local prometheus = require("prometheus").init("prometheus_metrics")

local requests = prometheus:counter(
  "nginx_http_requests_total",
  "Requests Nginx answered, by service, status code and cache status ($upstream_cache_status, - when the request did not go through the cache).",
  { "service", "code", "cache_status" }
)

local duration = prometheus:histogram(
  "nginx_http_request_duration_seconds",
  "Time from Nginx reading the request's first bytes to writing its last byte ($request_time), by service.",
  { "service" },
  { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
)

local M = {}

--- Counts the current request (log_by_lua*). $service is bounded by its map in nginx.conf,
-- $status by HTTP and $upstream_cache_status by Nginx's own set of values.
function M.log()
  local var = ngx.var
  local service = var.service
  requests:inc(1, { service, var.status, var.upstream_cache_status or "-" })
  duration:observe(var.request_time, { service })
end

--- Answers a scrape (content_by_lua*).
function M.collect()
  prometheus:collect()
end

return M
