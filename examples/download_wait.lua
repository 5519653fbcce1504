-- Seed 001 ("Python 3: An Intro to asyncio"), "A Coroutine Example".
-- main() makes one coroutine object per URL and waits for all with aio.wait; the download is
-- simulated (chunks arrive after a short aio.sleep, nothing is written to disk) instead of HTTP.
local aio = require "aloop"

-- Stands in for urlopen(url):read(1024): a chunk arrives after a short network delay.
local function fake_read(url, n)
  aio.sleep(0.01)
  if n > #url % 4 + 2 then return nil end        -- a few chunks per file
  return string.rep("x", 1024)
end

-- A coroutine to download the specified url
local download_coroutine = aio.async(function(url)
  local filename = url:match("[^/]+$")
  local size, n = 0, 1
  while true do
    local chunk = fake_read(url, n)
    if not chunk then break end
    size, n = size + #chunk, n + 1
  end
  return ("Finished downloading %s"):format(filename)
end)

-- Creates a group of coroutines and waits for them to finish
local function main(urls)
  local coroutines = {}
  for i, url in ipairs(urls) do coroutines[i] = download_coroutine(url) end
  local completed, pending = aio.wait(coroutines)
  for item in pairs(completed) do
    print(item:result())
  end
end

local urls = {
  "http://www.irs.gov/pub/irs-pdf/f1040.pdf",
  "http://www.irs.gov/pub/irs-pdf/f1040a.pdf",
  "http://www.irs.gov/pub/irs-pdf/f1040ez.pdf",
  "http://www.irs.gov/pub/irs-pdf/f1040es.pdf",
  "http://www.irs.gov/pub/irs-pdf/f1040sb.pdf",
}
local event_loop = aio.get_event_loop()
local ok, err = pcall(event_loop.run_until_complete, event_loop, main, urls)
event_loop:close()                               -- finally
if not ok then error(err, 0) end
