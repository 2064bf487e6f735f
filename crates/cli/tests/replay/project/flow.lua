local funcs = require("funcs")
local time = require("time")

return { main = function(name)
  local greeting = funcs.call("app:greet", name)
  time.sleep("1s")
  return greeting
end }
