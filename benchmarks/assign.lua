-- wrk script: POST an assign body (to /api/v1/assign) with a fresh visitor id per request, counting statuses.
dofile("wrk_status.lua")
local counter = 0

function init(args) init_post(args) end

function request()
  counter = counter + 1
  local body = string.format(
    '{"experiment":"bench","visitor":"%s-%d-%d","context":{"device":"mobile","hour":14}}', run, id, counter)
  return wrk.format(nil, nil, nil, body)  -- the path of the URL: /api/v1/assign (or the reference /echo)
end

function response(status, headers, body) count_status(status, 200) end
