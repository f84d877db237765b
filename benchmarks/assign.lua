-- wrk script: POST /api/v1/assign with a fresh visitor id per request, counting statuses.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  ok, bad = 0, 0
  run = args[1] or tostring(os.time())  -- unique per wrk run, so no visitor id repeats across runs
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"experiment":"bench","visitor":"%s-%d-%d","context":{"device":"mobile","hour":14}}',
    run, id, counter)
  return wrk.format(nil, "/api/v1/assign", nil, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
  end
  io.write(string.format("LEVER_STATUS ok=%d bad=%d\n", total_ok, total_bad))
end
