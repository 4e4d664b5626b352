-- wrk script for bench/serve.py: POST a random line of $WRK_BODIES (one JSON body per
-- line) per request; $WRK_API_KEY as X-API-Key; $WRK_DELAY_MS of think time per
-- connection before each request (0: saturate). Prints one JSON line of results.
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local think_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_API_KEY")
if key and key ~= "" then wrk.headers["X-API-Key"] = key end

function setup(thread)
  thread:set("seed", math.random(1, 2 ^ 30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end

if think_ms > 0 then
  function delay() return think_ms end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
