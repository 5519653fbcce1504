-- Seed 002 (asyncio notebook), "selectors" (stdin): loop:add_reader(io.stdin, read) calls read
-- each time stdin is readable; it reads one line. Stops at the end of input.
local aio = require "aloop"

local loop = aio.get_event_loop()
-- Unbuffered: each read takes one line from the fd, so the rest stays readable for the loop.
io.stdin:setvbuf("no")

local function read(fh)
  local line = fh:read("l")
  if line == nil then -- end of input
    loop:remove_reader(fh)
    loop:stop()
    return
  end
  print(("Got input from stdin: '%s'"):format(line))
end

-- Register the read function for the READ event on stdin
loop:add_reader(io.stdin, read, io.stdin)
loop:run_forever()
loop:close()
