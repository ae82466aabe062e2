-- wrk script for `python -m bench`: POST a webhook body whose supr_nid is unique per request.
-- args: <template file with __NID__> <authorization header value or ""> <run prefix>
local counter, template, auth, prefix = 0, nil, nil, nil
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  template = f:read("*a")
  f:close()
  auth = args[2]
  prefix = args[3] .. "-" .. tostring(tid)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end
end

function request()
  counter = counter + 1
  local body = template:gsub("__NID__", prefix .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "non2xx": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
