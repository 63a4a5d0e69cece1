-- GET / with wrk, reporting JSON (see report.lua).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")
