-- POST /echo with a body of ECHOBENCH_SIZE bytes (default 32), reporting JSON (see report.lua).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
local size = tonumber(os.getenv("ECHOBENCH_SIZE") or "32")
wrk.method = "POST"
wrk.path = "/echo"
wrk.body = string.rep("x", size)
wrk.headers["Content-Type"] = "application/octet-stream"
