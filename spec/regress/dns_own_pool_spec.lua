-- A resolver that shares its threads with run_in_executor work stalls every connect while the
-- executor is busy: asyncio's getaddrinfo runs in the default executor, so a few blocking jobs
-- make name resolution wait behind them. aloop resolves on its own small pool (src/dns.c).
-- Here every thread of the default executor is blocked on a FIFO; a name that needs the
-- resolver ("127.1" is not a literal address for inet_pton, so it goes to the DNS pool) must
-- still resolve, and only then are the jobs released.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: DNS has its own pool", function()
  it("getaddrinfo completes while every default-executor thread is blocked", H.async(function(loop)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. H.q(dir)))
    local gate, started = dir .. "/gate", dir .. "/started"
    assert(os.execute("mkfifo " .. H.q(gate) .. " " .. H.q(started)))
    -- Opened read+write, a FIFO never blocks its other users' open(); unbuffered, one line each.
    local gate_w = assert(io.open(gate, "r+"))
    local started_r = assert(io.open(started, "r+"))
    started_r:setvbuf("no")
    aio.executor.set_default_size(2)
    local function blocked_job(gate_path, started_path) -- in a worker thread
      local s = assert(io.open(started_path, "w"))
      s:write("s\n")
      s:close()
      local g = assert(io.open(gate_path, "r"))
      g:setvbuf("no")
      local line = g:read("l") -- blocks until the spec opens the gate
      g:close()
      return line
    end
    local jobs = {
      loop:run_in_executor(nil, blocked_job, gate, started),
      loop:run_in_executor(nil, blocked_job, gate, started),
    }
    assert.equal("s", started_r:read("l")) -- both workers are running and about to block
    assert.equal("s", started_r:read("l"))
    local infos = loop:getaddrinfo("127.1", 80)
    assert.equal("127.0.0.1", infos[1].addr[1])
    for _, j in ipairs(jobs) do assert.is_false(j:done()) end -- still blocked: DNS did not wait
    gate_w:write("go\ngo\n")
    gate_w:flush()
    assert.same({ "go", "go", n = 2 }, aio.gather(jobs))
    gate_w:close()
    started_r:close()
    loop:shutdown_default_executor()
    os.remove(gate)
    os.remove(started)
    os.remove(dir)
  end))
end)
