-- The `aloop` REPL: each chunk you type runs as a task on a loop that keeps running between
-- lines, so suspending calls (`aio.sleep(1)`, `t:await()`) work at the prompt and tasks started
-- on earlier lines go on running while you type. stdin is watched with loop:add_reader: on a
-- terminal, libedit edits the line and keeps history (module aloop.lineedit, when the
-- interpreter was built with it); otherwise raw reads, so piped input works the same way.
local aio = require "aloop"
local core = require "aloop.core"
local open_servers = require("aloop.net.connections").open_servers

local function compile(src)
  local fn = load("return " .. src, "=stdin")
  if fn then return fn end
  return load(src, "=stdin")
end

local function describe(err)
  if type(err) == "table" and err.traceback then return tostring(err) .. "\n" .. err.traceback end
  return tostring(err)
end

-- A set of tasks (what aio.all_tasks() returns) is shown one task a line, with where each is;
-- the REPL's own tasks (in `hide`) are left out.
local function task_set(v, hide)
  if type(v) ~= "table" or getmetatable(v) ~= nil or next(v) == nil then return nil end
  local tasks = {}
  for k, flag in pairs(v) do
    if flag ~= true or not aio.isfuture(k) or not k.get_stack then return nil end
    if not hide[k] then tasks[#tasks + 1] = k end
  end
  local lines = {}
  for _, t in ipairs(tasks) do
    local top = t:get_stack(1)[1]
    lines[#lines + 1] = "  " .. tostring(t) .. (top and ("  at %s:%d"):format(top.source, top.line) or "")
  end
  table.sort(lines)
  if #lines == 0 then return "{}" end
  return "{\n" .. table.concat(lines, "\n") .. "\n}"
end

-- Servers made at the prompt stay open after their line (a `local s <close>` would close them
-- at the end of that very line): say so once for each new one, so it is not left by mistake.
local function announce_servers(loop, seen)
  for s in pairs(open_servers) do
    if not seen[s] and s:get_loop() == loop then
      seen[s] = true
      io.stderr:write(("%s is listening until you call :close() on it (the REPL closes it when "
        .. "it ends)\n"):format(tostring(s)))
    end
  end
end

-- At the end of input: the servers still open on the loop are closed, each with a line saying so.
local function close_servers(loop)
  for s in pairs(open_servers) do -- (close() clears its entry: allowed while traversing)
    if s:get_loop() == loop then
      io.stderr:write(("closing %s: still open when the REPL ended\n"):format(tostring(s)))
      s:close()
    end
  end
end

local function show(res, hide)
  local out = {}
  for i = 2, res.n do out[#out + 1] = task_set(res[i], hide) or tostring(res[i]) end
  print(table.concat(out, "\t"))
end

return function()
  if rawget(_G, "aio") == nil then rawset(_G, "aio", aio) end -- handy at the prompt
  local loop = aio.get_event_loop()
  local tty = core._isatty(0)
  local lineedit = tty and package.preload["aloop.lineedit"] and require("aloop.lineedit")
  local lines, head, tail, eof = {}, 1, 0, false
  local wakeup

  local function push_line(line)
    if line == nil then
      eof = true
    else
      tail = tail + 1
      lines[tail] = line
    end
    if wakeup and not wakeup:done() then wakeup:set_result() end
  end

  -- Raw input: complete lines from whatever read() returns; the rest waits for more.
  local pending = ""
  local function on_readable()
    local data = core._fd_read(0)
    if data == nil then
      loop:remove_reader(0)
      if pending ~= "" then push_line(pending) end
      pending = ""
      return push_line(nil)
    end
    pending = pending .. data
    local last = 1
    for line, after in pending:gmatch("([^\n]*)\n()") do
      push_line(line)
      last = after
    end
    pending = pending:sub(last)
  end

  -- The next line, after showing `prompt` (on a terminal); nil at end of input.
  local function next_line(prompt)
    if lines[head] == nil and not eof then
      if lineedit then
        lineedit.prompt(prompt, push_line)
      elseif tty then
        io.stdout:write(prompt)
        io.stdout:flush()
      end
    end
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
  local servers_seen = setmetatable({}, { __mode = "k" })
  for s in pairs(open_servers) do servers_seen[s] = true end -- made by a script before -i
  local runner = loop:create_task(function()
    local chunk = ""
    while true do
      local line = next_line(chunk == "" and "> " or ">> ")
      if line == nil then break end
      chunk = chunk .. line .. "\n"
      local fn, err = compile(chunk)
      if fn or not err:match("<eof>$") then -- complete (or wrong): run it or say why
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
          local line_task = current
          current = nil
          if not res[1] then
            io.stderr:write(describe(res[2]), "\n")
          elseif res.n > 1 then
            show(res, { [line_task] = true, [aio.current_task()] = true })
          end
          announce_servers(loop, servers_seen)
        end
        io.stderr:flush()
        io.stdout:flush()
      end
    end
    if tty then io.stdout:write("\n") end
    close_servers(loop)
  end)

  loop:add_reader(0, lineedit and lineedit.feed or on_readable)
  while not runner:done() do
    local ok, err = pcall(loop.run_until_complete, loop, runner)
    if not ok then
      if not aio.iserror(err, aio.KeyboardInterrupt) then
        loop:remove_reader(0)
        if lineedit then lineedit.stop() end
        error(err, 0)
      end
      io.stderr:write("KeyboardInterrupt\n")
      if current then current:cancel() end
    end
  end
  loop:remove_reader(0)
  if lineedit then lineedit.stop() end
end
