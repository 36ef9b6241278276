-- wrk script for bench/serve.sh: counts the responses that have the expected
-- status (wrk itself only counts statuses >= 400 as errors, so a 200 among
-- the 304s would go unnoticed) and prints one line a shell can read:
--
--   result requests=N seconds=S rate=R p50_ms=A p99_ms=B max_ms=C matched=M other=O errors=E
--
-- Usage: wrk ... -s bench/status.lua URL -- STATUS     (STATUS default 200)
-- `errors` adds up wrk's connect, read, write and timeout errors.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  want = tonumber(args[1]) or 200
  matched = 0
  other = 0
end

function response(status, headers, body)
  if status == want then
    matched = matched + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local m, o = 0, 0
  for _, thread in ipairs(threads) do
    m = m + thread:get("matched")
    o = o + thread:get("other")
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "result requests=%d seconds=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f matched=%d other=%d errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    m, o, e.connect + e.read + e.write + e.timeout))
end
