-- The `aloop` REPL: each chunk you type runs as a task on a loop that keeps running between
-- lines, so suspending calls (`aio.sleep(1)`, `t:await()`) work at the prompt and tasks started
-- on earlier lines go on running while you type. stdin is read with raw reads when it is
-- readable, so piped input and tasks interleave exactly as typed input would.
local aio = require "aloop"
local core = require "aloop.core"

local function compile(src)
  local fn = load("return " .. src, "=stdin")
  if fn then return fn end
  return load(src, "=stdin")
end

local function describe(err)
  if type(err) == "table" and err.traceback then return tostring(err) .. "\n" .. err.traceback end
  return tostring(err)
end

return function()
  if rawget(_G, "aio") == nil then rawset(_G, "aio", aio) end -- handy at the prompt
  local loop = aio.get_event_loop()
  local tty = core._isatty(0)
  local lines, head, tail, pending, eof = {}, 1, 0, "", false
  local wakeup

  local function prompt(p)
    if tty then
      io.stdout:write(p)
      io.stdout:flush()
    end
  end

  local function on_readable()
    local data = core._fd_read(0)
    if data == nil then
      eof = true
      loop:remove_reader(0)
      if pending ~= "" then
        tail = tail + 1
        lines[tail], pending = pending, ""
      end
    else
      pending = pending .. data
      for line, rest in pending:gmatch("([^\n]*)\n()") do
        tail = tail + 1
        lines[tail] = line
        pending = pending:sub(rest)
      end
    end
    if wakeup and not wakeup:done() then wakeup:set_result() end
  end

  local function next_line()
    while lines[head] == nil do
      if eof then return nil end
      wakeup = loop:create_future()
      wakeup:await()
      wakeup = nil
    end
    local line = lines[head]
    lines[head], head = nil, head + 1
    return line
  end

  local current -- the task running the chunk being evaluated
  local runner = loop:create_task(function()
    local chunk = ""
    prompt("> ")
    while true do
      local line = next_line()
      if line == nil then break end
      chunk = chunk .. line .. "\n"
      local fn, err = compile(chunk)
      if not fn and err:match("<eof>$") then
        prompt(">> ")
      else
        chunk = ""
        if not fn then
          io.stderr:write(err, "\n")
        else
          current = loop:create_task(function()
            local res = table.pack(xpcall(fn, function(e)
              if type(e) == "table" then return e end
              return debug.traceback(tostring(e), 2)
            end))
            if not res[1] then error(res[2], 0) end
            return table.unpack(res, 2, res.n)
          end)
          local res = table.pack(pcall(aio.await, current))
          current = nil
          if not res[1] then
            io.stderr:write(describe(res[2]), "\n")
          elseif res.n > 1 then
            print(table.unpack(res, 2, res.n))
          end
        end
        io.stderr:flush()
        io.stdout:flush()
        prompt("> ")
      end
    end
    if tty then io.stdout:write("\n") end
  end)

  loop:add_reader(0, on_readable)
  while not runner:done() do
    local ok, err = pcall(loop.run_until_complete, loop, runner)
    if not ok then
      if not aio.iserror(err, aio.KeyboardInterrupt) then
        loop:remove_reader(0)
        error(err, 0)
      end
      io.stderr:write("KeyboardInterrupt\n")
      if current then current:cancel() end
    end
  end
  loop:remove_reader(0)
end
