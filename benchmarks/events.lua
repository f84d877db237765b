-- wrk script (http_load.py --events): POST /api/v1/events with 10 events per request for a
-- pre-assigned visitor, the admin token (args[3]) as Bearer; counts 202 and other statuses.
dofile("wrk_status.lua")
local counter = 0

function init(args)
  init_post(args)
  visitors = tonumber(args[2] or "500")
  wrk.headers["Authorization"] = "Bearer " .. (args[3] or "")
end

function request()
  counter = counter + 1
  local events = {}
  for i = 1, 10 do
    events[i] = string.format('{"name":"bench_event","value":%d,"event_id":"%s-%d-%d-%d"}', i, run, id, counter, i)
  end
  local body = string.format('{"visitor":"r%d","events":[%s]}', counter % visitors, table.concat(events, ","))
  return wrk.format(nil, "/api/v1/events", nil, body)
end

function response(status, headers, body) count_status(status, 202) end
