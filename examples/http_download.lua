-- Seed 001 ("An Intro to asyncio"), downloading files with asyncio.wait: several URLs fetched
-- concurrently, each saved to a file as it streams in, a line per finished file. The files come
-- from a local server this example starts (so it runs offline).
-- Usage: http_download.lua [directory]  (default: a new temporary directory)
local aio = require "aloop"
local http = require "aloop.http"
io.stdout:setvbuf("line")

local dir = arg[1]
if not dir then
  dir = os.tmpname()
  os.remove(dir)
end
os.execute("mkdir -p '" .. dir .. "'")

local files = { ["f1040.pdf"] = 180000, ["f1040a.pdf"] = 120000, ["f1040ez.pdf"] = 60000,
  ["f1040es.pdf"] = 240000, ["f1040sb.pdf"] = 30000 }

-- The download coroutine: streams one URL into a file named after it.
local function download(url)
  local filename = url:match("([^/]+)$")
  local r <close> = http.get(url)
  r:raise_for_status()
  local bytes = r:save(dir .. "/" .. filename)
  return ("Finished downloading %s (%d bytes)"):format(filename, bytes)
end

aio.run(function()
  local app = http.App {}
  app:get("/pub/irs-pdf/<name>", function(req, name)
    local size = files[name]
    if not size then error(http.HTTPError(404)) end
    local w <close> = req:respond { headers = { ["content-type"] = "application/pdf",
      ["content-length"] = size } }
    for _ = 1, size // 1000 do w:write(("%"):rep(1000)) end
  end)
  local srv <close> = http.serve(app, "127.0.0.1", 0)
  local base = ("http://127.0.0.1:%d/pub/irs-pdf/"):format(srv:port())
  local names = {}
  for name in pairs(files) do names[#names + 1] = name end
  table.sort(names)
  local tasks = {}
  for i, name in ipairs(names) do tasks[i] = aio.create_task(download, base .. name) end
  local done = aio.wait(tasks)
  local lines = {}
  for t in pairs(done) do lines[#lines + 1] = t:result() end
  table.sort(lines)
  for _, line in ipairs(lines) do print(line) end
  print("Saved in " .. dir)
end)
