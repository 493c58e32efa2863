-- wrk's report as one JSON object on stdout, for tools/dev/bench (wrk -s report.lua ...).
--
-- Latencies are wrk's, in milliseconds: from writing a request to reading its response, on
-- connections that each send the next request once the previous one is answered (a closed
-- loop). They are the latency at saturation; tools/dev/bench measures latency at a fixed offered
-- rate with loadgen -rate. "failed" counts what wrk calls errors: non-2xx/3xx answers, reads,
-- writes and timeouts; "not_connected" its connect errors. wrk's Lua API: wrk(1), SCRIPTING.

done = function(summary, latency, requests)
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  local function ms(us)
    return us / 1000
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "bytes": %d, '
      .. '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, '
      .. '"failed": %d, "not_connected": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max),
    errors.status + errors.read + errors.write + errors.timeout, errors.connect,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout
  ))
end
