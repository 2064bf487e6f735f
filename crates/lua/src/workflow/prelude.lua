-- Tempest workflow prelude: the blocking parts of the workflow API, written in Lua because only
-- Lua code can yield. Each blocking call loops over a non-blocking Rust primitive and yields the
-- PARK sentinel to the scheduler until it is woken. Receives the primitives table, returns the
-- functions the engine wires into the sandbox.
local P = ...
local PARK, TRACE, record_trace = P.PARK, P.TRACE, P.record_trace
local yield, raw_resume, raw_status = coroutine.yield, coroutine.resume, coroutine.status
local try_recv, try_send, send_status, try_select = P.chan_try_recv, P.chan_try_send, P.chan_send_status, P.chan_try_select
local pack, unpack, type, error, setmetatable, pairs = table.pack, table.unpack, type, error, setmetatable, pairs

local M = {}

-- Blocks the running task until the scheduler wakes it. The scheduler may also resume a parked
-- task with TRACE (for the __stack_trace query): it records where it waits, and its caller
-- retries, which parks it again.
local function park()
  if yield(PARK) == TRACE then record_trace() end
end

local function receive(ch)
  while true do
    local got, v = try_recv(ch)
    if got then return v, true end
    if got == false then return nil, false end
    park()
  end
end

local function send(ch, v)
  local ticket = try_send(ch, v)
  if ticket == true then return true end
  while not send_status(ch, ticket) do park() end
  return true
end

M.channel_methods = {
  receive = receive,
  send = send,
  close = P.chan_close,
  len = P.chan_len,
  case_receive = function(ch) return { channel = ch, op = "receive" } end,
  case_send = function(ch, v) return { channel = ch, op = "send", value = v } end,
}

function M.select(cases)
  if type(cases) ~= "table" then error("channel.select expects a table of cases", 2) end
  local has_default = cases.default == true
  while true do
    local i, v, ok = try_select(cases, has_default)
    if i == 0 then return { default = true, ok = true } end
    if i then return { channel = cases[i].channel, value = v, ok = ok } end
    park()
  end
end

-- A PARK yielded inside a user coroutine belongs to the scheduler: pass it up, then resume the
-- inner coroutine again once the enclosing task is woken.
local function forward(co, ok, first, ...)
  if ok and first == PARK and raw_status(co) == "suspended" then
    return forward(co, raw_resume(co, yield(PARK)))
  end
  return ok, first, ...
end

function M.resume(co, ...)
  return forward(co, raw_resume(co, ...))
end

function M.wrap(f)
  local co = P.coroutine_create(f)
  return function(...)
    local r = pack(forward(co, raw_resume(co, ...)))
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

-- The body of a run's main task: evaluate the entry's chunk and call its method.
function M.main(chunk, entry, method, ...)
  local module = chunk()
  local f
  if type(module) == "function" then
    f = module
  elseif type(module) == "table" then
    f = module[method]
  end
  if type(f) ~= "function" then
    error(("entry %s: method %q not found (the chunk must return a function or a table with a function %q)")
      :format(entry, method, method), 0)
  end
  return f(...)
end

-- Activities: the future's channel delivers one payload, or closes on failure.
local function await(future)
  receive(P.future_channel(future))
  return P.future_values(future)
end

-- A blocking call needs no future: the task parks until the activity's outcome is in, and the
-- scheduler resumes it with the call's key, value and failure. Woken for anything else (a stack
-- trace, say), it asks for the outcome itself.
local activity_call, activity_result = P.activity_call, P.activity_result
local function call(options, context, id, ...)
  local key, err = activity_call(options, context, id, ...)
  if not key then return nil, err end
  if type(key) ~= "number" then return await(key) end
  while true do
    local got, value, failure = yield(PARK)
    if got == key then return value, failure end
    if got == TRACE then record_trace() end
    local done
    done, value, failure = activity_result(key)
    if done then return value, failure end
  end
end

-- An executor keeps its options and context as tables (for merging) and as converted once
-- (`prepared_*`), so a call through it converts nothing.
local Executor = {}
Executor.__index = Executor
local prepare = P.prepare

local function merged(a, b)
  local out = {}
  for k, v in pairs(a) do out[k] = v end
  for k, v in pairs(b) do out[k] = v end
  return out
end

local function executor(options, prepared_options, context, prepared_context)
  return setmetatable({ options = options, prepared_options = prepared_options, context = context,
    prepared_context = prepared_context }, Executor)
end

function Executor:with_options(options)
  if type(options) ~= "table" then return nil, P.invalid("with_options expects a table") end
  local all = merged(self.options, options)
  return executor(all, prepare(all), self.context, self.prepared_context)
end

function Executor:with_context(values)
  if type(values) ~= "table" then return nil, P.invalid("with_context expects a table") end
  local all = merged(self.context, values)
  return executor(self.options, self.prepared_options, all, prepare(all))
end

function Executor:call(id, ...) return call(self.prepared_options, self.prepared_context, id, ...) end
function Executor:async(id, ...)
  return P.activity(self.prepared_options, self.prepared_context, id, ...)
end

M.funcs = {
  call = function(id, ...) return call(nil, nil, id, ...) end,
  async = function(id, ...) return P.activity(nil, nil, id, ...) end,
  new = function() return executor({}, nil, {}, nil) end,
}

-- Timers: a durable timer that wakes the sleeping task.
local sleep_start, timer_pending = P.sleep_start, P.timer_pending
function M.sleep(d)
  local seq, err = sleep_start(d)
  if not seq then return nil, err end
  if type(seq) ~= "number" then receive(seq) return end
  repeat park() until not timer_pending(seq)
end

return M
