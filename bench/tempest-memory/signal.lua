-- BenchSignalWorkflow(arg): blocks until the signal `go` arrives, then returns arg.
local function main(arg)
    process.listen("go"):receive()
    return arg
end

return { main = main }
