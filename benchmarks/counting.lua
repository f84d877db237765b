-- wrk script for GET endpoints: count 200 and non-200 responses.
dofile("wrk_status.lua")
function init(args) ok, bad = 0, 0 end
function response(status, headers, body) count_status(status, 200) end
