-- Shared by the wrk scripts (loaded with dofile; wrk runs with benchmarks/ as its directory):
-- every thread counts expected and other statuses; done() prints the totals for http_load.py.
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

-- init of the POST scripts: zeroed counts, the run tag (args[1]: unique per wrk run, so no
-- visitor id or event id repeats across runs), JSON bodies
function init_post(args)
  ok, bad = 0, 0
  run = args[1] or tostring(os.time())
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function count_status(status, expected)
  if status == expected then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
  end
  io.write(string.format("LEVER_STATUS ok=%d bad=%d\n", total_ok, total_bad))
end
