-- aloop_call_threadsafe (include/aloop.h) from many OS threads, driven by the C program
-- spec/c/threadsafe_post.c (built as <build>/spec/threadsafe_post): 8 threads x 10,000 posts to
-- a running loop that has nothing else to do, none lost, the loop stays alive until the last
-- one ran; a future completed only by a post; posted calls that raise (an error is reported,
-- a KeyboardInterrupt stops run_forever); and a post after close fails with -1.
local H = require "spec.helper"

local PROG = H.build .. "/spec/threadsafe_post"

describe("aloop_call_threadsafe from 8 OS threads", function()
  local out, err, code

  setup(function()
    out, err, code = H.capture("exec timeout -s KILL 30 " .. H.q(PROG))
  end)

  it("the test program runs and exits 0", function()
    assert.equal(0, code, "stdout: " .. out .. "\nstderr: " .. err)
  end)

  it("runs all 80,000 posted calls, none lost, and a post after close returns -1", function()
    assert.matches("^posted=80000 ran=80000 after_close=%-1\n", out)
  end)

  it("keeps the loop running while posted calls are pending (run_until_complete waits for a post)", function()
    assert.matches("\nphase2=from%-thread\n", out)
  end)

  it("reports a posted call that raises, goes on, and raises a posted KeyboardInterrupt from run_forever", function()
    assert.matches("\nphase3=interrupted; 1 reported: Exception in a thread%-safe call / posted call failed; ran=80001\n", out)
  end)

  it("reports no errors", function()
    assert.equal("", err)
  end)
end)
