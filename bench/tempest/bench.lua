-- BenchWorkflow(arg): echo("arg|0") -> echo("arg|0|1") -> echo("arg|0|1|2"), each with a 30s
-- start-to-close timeout, then a 0-duration durable timer; returns "arg|0|1|2".
local funcs = require("funcs")
local time = require("time")

local ACTIVITIES = 3

local function bench_workflow(arg)
    local executor = funcs.new():with_options({ ["activity.start_to_close_timeout"] = "30s" })
    local s = arg
    for i = 0, ACTIVITIES - 1 do
        local value, err = executor:call("bench:echo", s .. "|" .. i)
        if err then
            return nil, err
        end
        s = value
    end
    time.sleep(0)
    return s
end

return { bench_workflow = bench_workflow }
