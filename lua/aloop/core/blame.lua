-- Where an argument error is blamed (aloop.core.blame): the user's line that called into aloop,
-- however deep inside aloop's own Lua files the check runs, so a message such as
-- "aloop.create_subprocess_exec: unknown option 'x'" points at the caller, not at a library file.
local blame = {}

-- The folder of aloop's Lua files, as their chunk names give it ("@.../aloop/").
local own = debug.getinfo(1, "S").source:match("^(@.*/)core/[^/]*$") or "@lua/aloop/"

-- blame.error(msg): raises msg from the first Lua function outside aloop on the stack.
function blame.error(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S") -- the same level error() counts
    if not info then return error(msg, 0) end
    if info.what ~= "C" and info.source:sub(1, #own) ~= own then return error(msg, level) end
    level = level + 1
  end
end

return blame
