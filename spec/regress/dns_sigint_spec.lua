-- A process-wide signal goes to any thread that does not block it. aloop's DNS workers and the
-- reaper thread used to start with the signal mask of whoever started them, so a Ctrl+C could run
-- aloop's SIGINT handler on a resolver thread. Every background thread now starts with all
-- signals blocked (src/util/thread.c). Here a lookup is held in flight deterministically: glibc's
-- resolver opens the file named by HOSTALIASES for a name without dots, and that file is a FIFO,
-- so the DNS worker blocks in it until the spec lets it go. While it is held, every thread of the
-- child but the loop's own blocks SIGINT, and a SIGINT ends run_until_complete with
-- KeyboardInterrupt (the handler ran for the loop thread).
local H = require "spec.helper"

local CHILD = [[
local aio = require "aloop"
local f = io.open("/proc/self/stat")
local pid = f:read("l"):match("^(%d+)")
f:close()
print("ready " .. pid)
io.stdout:flush()
local loop = aio.new_event_loop()
local ok, err = pcall(loop.run_until_complete, loop, function()
  return loop:getaddrinfo("aloopnodots", 80) -- the worker blocks on the FIFO
end)
print("caught", ok, aio.iserror(err, aio.KeyboardInterrupt))
]]

describe("regress: signals during a DNS lookup", function()
  it("every background thread blocks SIGINT; SIGINT reaches the loop thread", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. H.q(dir)))
    local fifo = dir .. "/hostaliases"
    assert(os.execute("mkfifo " .. H.q(fifo)))
    local script = H.tmpfile(CHILD)
    local child = io.popen("HOSTALIASES=" .. H.q(fifo) .. " exec timeout -s KILL 20 " .. H.bin .. " "
                           .. H.q(script) .. " 2>&1")
    local pid = assert(child:read("l"):match("^ready (%d+)$"))
    -- The shell's open of the FIFO returns once the DNS worker opened it: the lookup is then in
    -- flight and stays so while fd 3 is open. The FIFO becomes an empty file before fd 3 closes,
    -- so the resolver's later opens of it do not block.
    local masks, code = H.sh("timeout -s KILL 10 sh -c " .. H.q(
      "exec 3>" .. H.q(fifo) .. "; cd /proc/" .. pid .. "/task && for t in *; do "
      .. "echo \"$t $(grep SigBlk $t/status)\"; done; kill -INT " .. pid .. "; rm "
      .. H.q(fifo) .. "; : > " .. H.q(fifo)))
    local rest = child:read("a")
    child:close()
    os.remove(script)
    os.remove(fifo)
    os.remove(dir)
    assert.equal(0, code, masks)
    local others = 0
    for tid, hex in masks:gmatch("(%d+) SigBlk:%s*(%x+)") do
      if tid ~= pid then
        others = others + 1
        assert.is_true(tonumber(hex, 16) & 2 ~= 0, "thread " .. tid .. " does not block SIGINT: " .. hex)
      end
    end
    assert.is_true(others >= 1, "no DNS worker thread: " .. masks)
    assert.equal("caught\tfalse\ttrue\n", rest)
  end)
end)
