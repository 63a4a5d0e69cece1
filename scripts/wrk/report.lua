-- Shared by the echobench wrk scripts: at the end, print one JSON line on stdout (prefixed
-- "ECHOBENCH_JSON ") with throughput and latency percentiles in microseconds, so callers read
-- structured data rather than wrk's human summary.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'ECHOBENCH_JSON {"requests":%d,"seconds":%.6f,"rps":%.1f,"bytes":%d,"errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes, errors,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
