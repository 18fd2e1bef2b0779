-- wrk script for bench/webhook_bench.py: POST pre-generated WeChat callbacks, each thread its own
-- share of the file, in file order, wrapping around at the end (the bench reports any wrap).
-- usage: wrk -t T -c C -d D -s bench/webhook.lua URL -- REQUEST_FILE T
-- REQUEST_FILE: one "PATH?QUERY<TAB>BODY" per line. Prints one JSON line when done.

local threads, count = {}, 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads, n = args[1], tonumber(args[2]), 0
  reqs, pos, wrapped = {}, 0, 0
  for line in io.lines(file) do
    if n % nthreads == id then
      local tab = line:find("\t", 1, true)
      reqs[#reqs + 1] = wrk.format("POST", line:sub(1, tab - 1),
                                   {["Content-Type"] = "text/xml"}, line:sub(tab + 1))
    end
    n = n + 1
  end
end

function request()
  pos = pos + 1
  if pos > #reqs then
    pos, wrapped = 1, wrapped + 1
  end
  return reqs[pos]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + thread:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "wraps": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, wraps))
end
