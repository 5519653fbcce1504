-- Seed 000, "Subprocess using streams" (get_date): run an interpreter that prints the date,
-- read one line of its stdout, wait for it to exit. The child is this same interpreter
-- (arg[-1]), or lua5.4 when the script runs elsewhere.
local aio = require "aloop"

local function get_date()
  local code = 'print(os.date("%Y-%m-%d %H:%M:%S"))'
  local proc = aio.create_subprocess_exec(arg[-1] or "lua5.4", "-e", code,
                                          {stdout = aio.subprocess.PIPE})
  local line = proc.stdout:readline():gsub("%s+$", "")
  proc:wait()
  return line
end

local loop = aio.get_event_loop()
local date = loop:run_until_complete(get_date)
print("Current date: " .. date)
loop:close()
