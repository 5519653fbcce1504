-- The `aloop` REPL: each line (or chunk) runs as a task on a loop that keeps running between
-- lines, so `aio.sleep(1)` or other suspending calls work at the prompt and tasks started on
-- earlier lines keep running while you type.
local aio = require "aloop"

return function()
  local loop = aio.get_event_loop()
  local buffer = ""
  local prompt1, prompt2 = "> ", ">> "

  local function show(...)
    if select("#", ...) > 0 then print(...) end
  end

  local function prompt(p)
    io.stdout:write(p)
    io.stdout:flush()
  end

  local function compile(src)
    local fn, err = load("return " .. src, "=stdin")
    if fn then return fn end
    fn, err = load(src, "=stdin")
    return fn, err
  end

  local running = nil
  local function on_line()
    local line = io.stdin:read("L")
    if line == nil then
      io.stdout:write("\n")
      loop:remove_reader(0)
      loop:stop()
      return
    end
    if running then return end
    buffer = buffer .. line
    local fn, err = compile(buffer)
    if not fn then
      if err:match("<eof>$") then
        prompt(prompt2)
        return
      end
      io.stderr:write(err, "\n")
      buffer = ""
      prompt(prompt1)
      return
    end
    buffer = ""
    running = loop:create_task(function()
      local res = table.pack(xpcall(fn, debug.traceback))
      if res[1] then
        show(table.unpack(res, 2, res.n))
      else
        io.stderr:write(tostring(res[2]), "\n")
      end
    end)
    running:add_done_callback(function()
      running = nil
      prompt(prompt1)
    end)
  end

  prompt(prompt1)
  loop:add_reader(0, on_line)
  local ok, err = pcall(loop.run_forever, loop)
  loop:remove_reader(0)
  if not ok and not aio.iserror(err, aio.KeyboardInterrupt) then error(err, 0) end
end
