-- wrk script: POST /api/v1/reward (server-side form) for pre-assigned visitors, a distinct
-- event_id per request so each one is a new reward; counts 202 and other statuses. That form
-- (experiment and visitor, no assignment token) needs events.ingest: the admin token (args[3]).
dofile("wrk_status.lua")
local counter = 0

function init(args)
  init_post(args)
  visitors = tonumber(args[2] or "500")
  wrk.headers["Authorization"] = "Bearer " .. (args[3] or "")
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"experiment":"bench-reward","visitor":"r%d","value":1,"event_id":"%s-%d-%d"}',
    counter % visitors, run, id, counter)
  return wrk.format(nil, "/api/v1/reward", nil, body)
end

function response(status, headers, body) count_status(status, 202) end
