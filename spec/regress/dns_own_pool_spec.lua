-- A resolver that shares its threads with run_in_executor work stalls every connect while the
-- executor is busy: asyncio's getaddrinfo runs in the default executor, so a few blocking jobs
-- make name resolution wait behind them. aloop resolves on its own small pool (src/net/dns.c).
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
    local gates, started = { dir .. "/gate1", dir .. "/gate2" }, dir .. "/started"
    assert(os.execute("mkfifo " .. H.q(gates[1]) .. " " .. H.q(gates[2]) .. " " .. H.q(started)))
    -- Opened read+write, a FIFO never blocks its other users' open(); one gate per worker.
    local gate_w = { assert(io.open(gates[1], "r+")), assert(io.open(gates[2], "r+")) }
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
      loop:run_in_executor(nil, blocked_job, gates[1], started),
      loop:run_in_executor(nil, blocked_job, gates[2], started),
    }
    assert.equal("s", started_r:read("l")) -- both workers are running and about to block
    assert.equal("s", started_r:read("l"))
    local infos = loop:getaddrinfo("127.1", 80)
    assert.equal("127.0.0.1", infos[1].addr[1])
    for _, j in ipairs(jobs) do assert.is_false(j:done()) end -- still blocked: DNS did not wait
    for _, g in ipairs(gate_w) do
      g:write("go\n")
      g:flush()
    end
    assert.same({ "go", "go", n = 2 }, aio.gather(jobs))
    for i, g in ipairs(gate_w) do
      g:close()
      os.remove(gates[i])
    end
    started_r:close()
    loop:shutdown_default_executor()
    os.remove(started)
    os.remove(dir)
  end))
end)
