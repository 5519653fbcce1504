-- Runs every script in examples/ with the aloop interpreter and checks what it prints: the lines,
-- their order and the exit status. Times are checked only where the physics guarantees them (a
-- delay is never shorter than asked), never against an upper bound.
-- The interpreter is $ALOOP_BIN (relative to the repo root), build/aloop by default.

-- The repo root, found from this file's path (spec/examples_spec.lua).
local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)/[^/]+/[^/]+$") or "."
end

local ROOT = repo_root()
local BIN = os.getenv("ALOOP_BIN") or "build/aloop"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function split_lines(s)
  local lines = {}
  for line in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local tail = s:match("([^\n]+)$")
  if tail then lines[#lines + 1] = tail end
  return lines
end

-- Runs examples/NAME.lua with ARGS. Returns {out, err, lines, status}: stdout, stderr, stdout's
-- lines and the exit status (128 + N when killed by signal N). SIGINT gets its default disposition back (some examples send it to
-- themselves as a Ctrl+C), and a hung example is killed by timeout (status 124).
-- A table as the last argument holds options: {env = "ALOOP_DEBUG=1"} sets environment variables.
local function run(name, ...)
  local bin_path = BIN:sub(1, 1) == "/" and BIN or ROOT .. "/" .. BIN
  assert(io.open(bin_path, "rb"), "no interpreter at " .. bin_path .. " (build it, or set ALOOP_BIN)")
  local args, opts = {}, {}
  for i, a in ipairs({...}) do
    if type(a) == "table" then opts = a else args[i] = q(a) end
  end
  local errfile = os.tmpname()
  local cmd = ("cd %s && exec timeout -k 5 60 env --default-signal=INT %s %s %s %s 2>%s"):format(
    q(ROOT), opts.env or "", q(BIN), q("examples/" .. name .. ".lua"), table.concat(args, " "),
    q(errfile))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  local err = read_file(errfile) or ""
  os.remove(errfile)
  -- killed by a signal: report it like a shell does (128 + signal number, e.g. 139 for SIGSEGV)
  local status = how == "exit" and code or 128 + code
  return {out = out, err = err, lines = split_lines(out), status = status}
end

-- Asserts a clean run: exit status 0 and nothing on stderr.
local function assert_ok(r)
  assert.are.equal(0, r.status, "exit status; stdout:\n" .. r.out .. "\nstderr:\n" .. r.err)
  assert.are.equal("", r.err, "stderr should be empty")
end

-- print_stack blocks (a "Stack for" line and its frames) sorted: all_tasks() has no order.
local function sorted_stacks(lines)
  local blocks = {}
  for _, line in ipairs(lines) do
    if line:match("^Stack for") or #blocks == 0 then blocks[#blocks + 1] = {} end
    table.insert(blocks[#blocks], line)
  end
  table.sort(blocks, function(a, b) return a[1] < b[1] end)
  local out = {}
  for _, b in ipairs(blocks) do table.move(b, 1, #b, #out + 1, out) end
  return out
end

local function sorted(list, i, j)
  local t = table.move(list, i or 1, j or #list, 1, {})
  table.sort(t)
  return t
end

-- Lines "Started NAME at T" / "Finished NAME at T": the names in order, and each T at least the
-- expected time (minus the rounding of %.1f) and not before the previous one.
local function assert_timed_lines(lines, expected)
  assert.are.equal(#expected, #lines, table.concat(lines, "\n"))
  local last = 0
  for i, want in ipairs(expected) do
    local what, t = lines[i]:match("^(.-) at (%d+%.%d)$")
    assert.are.equal(want[1], what, "line " .. i .. ": " .. lines[i])
    t = tonumber(t)
    assert.is_true(t >= want[2] - 0.05, ("line %d: %s is earlier than %.1f"):format(i, lines[i], want[2]))
    assert.is_true(t >= last, "line " .. i .. " goes back in time: " .. lines[i])
    last = t
  end
end

describe("examples", function()
  -- seed 000

  it("hello_world prints Hello World!", function()
    local r = run("hello_world")
    assert_ok(r)
    assert.are.same({"Hello World!"}, r.lines)
  end)

  it("display_date prints the date duration/interval times", function()
    local before = os.date("%Y-%m-%d %H:%M:%S", os.time() - 1)
    local r = run("display_date")             -- 0.5 s, every 0.1 s: prints at 0, .1, .2, .3, .4
    local after = os.date("%Y-%m-%d %H:%M:%S", os.time() + 1)
    assert_ok(r)
    assert.are.equal(5, #r.lines, r.out)
    local last = before
    for _, line in ipairs(r.lines) do
      assert.is_truthy(line:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$"), line)
      assert.is_true(line >= last and line <= after, line .. " not between " .. last .. " and " .. after)
      last = line
    end
  end)

  it("chain_coroutines returns compute's result to print_sum", function()
    local r = run("chain_coroutines")
    assert_ok(r)
    assert.are.same({"Compute 1 + 2 ...", "1 + 2 = 3"}, r.lines)
  end)

  it("future_run_until_complete prints the future's result", function()
    local r = run("future_run_until_complete")
    assert_ok(r)
    assert.are.same({"Future is done!"}, r.lines)
  end)

  it("future_run_forever prints the result from the done callback and stops", function()
    local r = run("future_run_forever")
    assert_ok(r)
    assert.are.same({"Future is done!"}, r.lines)
  end)

  it("parallel_factorial interleaves the three tasks", function()
    local r = run("parallel_factorial")
    assert_ok(r)
    assert.are.same({
      "Task A: Compute factorial(2)...",
      "Task B: Compute factorial(2)...",
      "Task C: Compute factorial(2)...",
      "Task A: factorial(2) = 2",
      "Task B: Compute factorial(3)...",
      "Task C: Compute factorial(3)...",
      "Task B: factorial(3) = 6",
      "Task C: Compute factorial(4)...",
      "Task C: factorial(4) = 24",
    }, r.lines)
  end)

  -- seed 000, "7. Synchronization primitives" and "8. Queues"

  it("lock_usage: both usages serialize the read-sleep-write of the counter", function()
    local r = run("lock_usage")
    assert_ok(r)
    assert.are.same({"explicit 1: counter = 1", "guarded 1: counter = 2", "explicit 2: counter = 3",
      "guarded 2: counter = 4", "final counter = 4, locked: false"}, r.lines)
  end)

  it("event_wait: one set() wakes every waiter in order", function()
    local r = run("event_wait")
    assert_ok(r)
    assert.are.same({"waiter 1 waits for the event", "waiter 2 waits for the event",
      "waiter 3 waits for the event", "setting the event", "waiter 1 got the event",
      "waiter 2 got the event", "waiter 3 got the event", "is_set: true"}, r.lines)
  end)

  it("condition_notify: notify_all lets each consumer take one item", function()
    local r = run("condition_notify")
    assert_ok(r)
    assert.are.same({"producer put 3 items, notify_all", "consumer 1 takes item 1",
      "consumer 2 takes item 2", "consumer 3 takes item 3"}, r.lines)
  end)

  it("semaphore_limit: at most two downloads at once, started in order", function()
    local r = run("semaphore_limit")
    assert_ok(r)
    assert.are.same({"start 1 (running: 1)", "start 2 (running: 2)", "end 1", "end 2",
      "start 3 (running: 1)", "start 4 (running: 2)", "end 3", "end 4",
      "start 5 (running: 1)", "start 6 (running: 2)", "end 5", "end 6", "at most 2 at once"}, r.lines)
  end)

  it("queue_kinds: FIFO, priority and LIFO order", function()
    local r = run("queue_kinds")
    assert_ok(r)
    assert.are.same({"Queue: 3:write report, 1:fix bug, 2:review, 1:deploy",
      "PriorityQueue: 1:fix bug, 1:deploy, 2:review, 3:write report",
      "LifoQueue: 1:deploy, 2:review, 1:fix bug, 3:write report"}, r.lines)
  end)

  it("joinable_queue: join returns after every task_done", function()
    local r = run("joinable_queue")
    assert_ok(r)
    assert.are.same({"handled job 1", "handled job 2", "handled job 3", "handled job 4",
      "all jobs handled, qsize = 0", "consumer cancelled: true"}, r.lines)
  end)

  it("worker_pool: N workers drain the queue, every job done once", function()
    local r = run("worker_pool")
    assert_ok(r)
    assert.are.same({"3 workers did 10 jobs: 1 4 9 16 25 36 49 64 81 100", "sum of squares = 385"}, r.lines)
    r = run("worker_pool", "5", "20")
    assert_ok(r)
    assert.are.same("5 workers did 20 jobs", r.lines[1]:match("^(.-):"))
    assert.are.same("sum of squares = 2870", r.lines[2])
  end)

  -- seed 001

  it("download_wait prints one line per download (in set order)", function()
    local r = run("download_wait")
    assert_ok(r)
    assert.are.same({
      "Finished downloading f1040.pdf",
      "Finished downloading f1040a.pdf",
      "Finished downloading f1040es.pdf",
      "Finished downloading f1040ez.pdf",
      "Finished downloading f1040sb.pdf",
    }, sorted(r.lines))
  end)

  it("call_soon_partial runs both callbacks in order, then stops", function()
    local r = run("call_soon_partial")
    assert_ok(r)
    assert.are.same({
      "starting event loop",
      "Event handler called",
      "Event handler called",
      "stopping the loop",
      "closing event loop",
    }, r.lines)
  end)

  it("call_later_at runs the call_later handler, then the call_at one that stops", function()
    local r = run("call_later_at")
    assert_ok(r)
    assert.are.same({
      "starting event loop",
      "Event handler called",
      "Event handler called",
      "stopping the loop",
      "closing event loop",
    }, r.lines)
  end)

  it("task_blocking_sleep prints the task's result after the loop is closed", function()
    local r = run("task_blocking_sleep")
    assert_ok(r)
    assert.are.same({
      "task creation started",
      "This task is taking 0.2 seconds to complete",
      "The task's result was: task finished",
    }, r.lines)
  end)

  it("task_cancel raises CancelledError in the task and in its awaiter", function()
    local r = run("task_cancel")
    assert_ok(r)
    assert.are.same({
      "This task is taking 10 seconds to complete",
      "cancelling the task",
      "my_task got CancelledError:\ttrue",
      "awaiting the task raised CancelledError:\ttrue",
      "task cancelled:\ttrue",
    }, r.lines)
  end)

  -- seed 002

  it("sleepers_wait: the sleepers finish in order of delay", function()
    local r = run("sleepers_wait")
    assert_ok(r)
    assert.are.same({
      "Finished sleeper with delay: 1",
      "Finished sleeper with delay: 2",
      "Finished sleeper with delay: 3",
    }, r.lines)
  end)

  it("call_soon_create_task runs the task before call_later stops the loop", function()
    local r = run("call_soon_create_task")
    assert_ok(r)
    assert.are.same({"Finished sleeper with delay: 1"}, r.lines)
  end)

  it("stack_printer prints the stack of the suspended task", function()
    -- print_stack may write to stdout or stderr: look at both. The sleeping task's stack must
    -- show the line where it called aio.sleep.
    local r = run("stack_printer")
    assert.are.equal(0, r.status, "exit status; stdout:\n" .. r.out .. "\nstderr:\n" .. r.err)
    local n = 0
    for line in io.lines(ROOT .. "/examples/stack_printer.lua") do
      n = n + 1
      if line:match("^%s*aio%.sleep%(delay%)") then break end
    end
    local all = r.out .. r.err
    assert.is_truthy(all:find("stack_printer.lua:" .. n .. ":", 1, true),
                     "no frame at stack_printer.lua:" .. n .. " in:\n" .. all)
  end)

  it("call_order_blocking: the blocking printers run one after another", function()
    local r = run("call_order_blocking")
    assert_ok(r)
    assert_timed_lines(r.lines, {
      {"Started call_soon", 0.0}, {"Finished call_soon", 0.2},
      {"Started call_soon_threadsafe", 0.2}, {"Finished call_soon_threadsafe", 0.4},
      {"Started call_later", 0.4}, {"Finished call_later", 0.6},
      {"Started call_at", 0.6}, {"Finished call_at", 0.8},
    })
  end)

  it("call_order_tasks: the task printers overlap", function()
    local r = run("call_order_tasks")
    assert_ok(r)
    assert_timed_lines(r.lines, {
      {"Started call_soon", 0.0}, {"Started call_soon_threadsafe", 0.0},
      {"Started call_later", 0.1}, {"Started call_at", 0.2},
      {"Finished call_soon", 0.2}, {"Finished call_soon_threadsafe", 0.2},
      {"Finished call_later", 0.3}, {"Finished call_at", 0.4},
    })
  end)

  -- seed 003

  it("infinity_hello prints hello! count times", function()
    local r = run("infinity_hello")
    assert_ok(r)
    assert.are.same({"hello!", "hello!", "hello!"}, r.lines)
  end)

  it("callback_to_future turns callback results and errors into returns and raises", function()
    local r = run("callback_to_future")
    assert_ok(r)
    assert.are.same({"6 / 3 = 2", "1 / 0 raised: division by zero"}, r.lines)
  end)

  -- seed 004

  it("create_task runs the coroutine object as a task", function()
    local r = run("create_task")
    assert_ok(r)
    assert.are.same({"Waiting: \t2"}, r.lines)
  end)

  it("task_done_callback calls the callback before run_until_complete returns", function()
    local r = run("task_done_callback")
    assert_ok(r)
    assert.are.same({"Callback: \t2", "2"}, r.lines)
  end)

  it("task_return_value returns the task's result", function()
    local r = run("task_return_value")
    assert_ok(r)
    assert.are.same({"Done after 0.1s", "Done after 0.1s"}, r.lines)
  end)

  it("wait_done_pending returns done and pending sets", function()
    local r = run("wait_done_pending")
    assert_ok(r)
    local l = r.lines
    assert.are.equal(9, #l, r.out)
    assert.are.same({"sleep: \t1", "sleep: \t3"}, {l[1], l[2]})
    assert.are.same({"1", "3"}, sorted(l, 3, 4))    -- a set: any order
    assert.are.same({
      "pending: \t0",
      "sleep: \t1",
      "sleep: \t3",
      "done: \t1\tpending: \t1",
      "late result: \t3",
    }, {table.unpack(l, 5)})
  end)

  it("cancel_all_tasks cancels every unfinished task after Ctrl+C", function()
    local r = run("cancel_all_tasks")
    assert_ok(r)
    -- func(20), func(33) and the task running wait; func(1) finished before the Ctrl+C
    assert.are.equal(3, #r.lines, r.out)
    for _, line in ipairs(r.lines) do
      assert.is_truthy(line:match("^cancel: \ttrue\t."), line)
    end
  end)

  -- Subprocesses (seeds 000, 002, 004)
  it("subprocess_get_date reads one line of a child's stdout", function()
    local r = run("subprocess_get_date")
    assert_ok(r)
    assert.are.equal(1, #r.lines, r.out)
    assert.matches("^Current date: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", r.lines[1])
  end)

  it("subprocess_sleep_parallel: sequential children one by one, parallel ones overlap", function()
    local r = run("subprocess_sleep_parallel")
    assert_ok(r)
    local l = r.lines
    assert.are.same({"sequential:", "start 1 (pid ok)", "done 1: exit 0", "start 2 (pid ok)",
      "done 2: exit 0", "start 3 (pid ok)", "done 3: exit 0", "parallel:",
      "start 1 (pid ok)", "start 2 (pid ok)", "start 3 (pid ok)"}, {table.unpack(l, 1, 11)})
    assert.are.same({"done 1: exit 0", "done 2: exit 0", "done 3: exit 0"}, sorted(l, 12, 14))
    local seq, par = l[15]:match("^sequential took ([%d.]+) s, parallel ([%d.]+) s$")
    assert.is_true(tonumber(seq) >= 0.3, l[15]) -- three sleeps of 0.1 s, one after the other
    assert.is_true(tonumber(par) >= 0.1, l[15])
  end)

  it("subprocess_pipe_script pipes a script into `aloop -` and reads its lines", function()
    local r = run("subprocess_pipe_script")
    assert_ok(r)
    assert.are.same({"got: line 1 from the child", "got: line 2 from the child",
      "got: line 3 from the child", "exit code: 0"}, r.lines)
  end)

  it("subprocess_ping_lines reads a command's lines as they come", function()
    local r = run("subprocess_ping_lines", "3")
    assert_ok(r)
    assert.are.same({"reply 1: 64 bytes from 127.0.0.1: icmp_seq=1 ttl=64",
      "reply 2: 64 bytes from 127.0.0.1: icmp_seq=2 ttl=64",
      "reply 3: 64 bytes from 127.0.0.1: icmp_seq=3 ttl=64", "ping exited with 0"}, r.lines)
  end)

  it("subprocess_ctrl_c: SIGINT cancels every task and their children are killed", function()
    local out, errf = os.tmpname(), os.tmpname()
    -- started in the background with SIGINT at its default (a shell's background jobs ignore
    -- it); SIGINT is sent once the example says its children run; bounded waits only
    -- (not run("subprocess_ctrl_c"): the signal comes from outside. --foreground: timeout passes
    -- the SIGINT to the example only, once, as a terminal would)
    local cmd = ("cd %s && (env --default-signal=INT timeout --foreground -k 5 60 %s examples/subprocess_ctrl_c.lua >%s 2>%s & "
      .. "p=$!; i=0; while ! grep -q ready %s && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; "
      .. "kill -INT $p; wait $p; echo \"status $?\")"):format(q(ROOT), q(BIN), q(out), q(errf), q(out))
    local p = assert(io.popen(cmd))
    local status = p:read("a")
    p:close()
    local r = {out = read_file(out) or "", err = read_file(errf) or ""}
    os.remove(out)
    os.remove(errf)
    assert.are.equal("status 0\n", status, r.out .. r.err)
    assert.are.equal("", r.err)
    local lines = split_lines(r.out)
    assert.are.same({"ready", "KeyboardInterrupt: cancelling all tasks"}, {table.unpack(lines, 1, 2)})
    assert.are.same({"worker 1 cancelled", "worker 2 cancelled", "worker 3 cancelled"}, sorted(lines, 3, 5))
    -- each child is dead: killed by its Process's close (-9), or by the SIGINT itself (-2) when
    -- it reaches the whole process group, as a terminal's Ctrl+C does
    for i = 1, 3 do
      local rc = lines[5 + i]:match("^task " .. i .. " cancelled: true, child returncode (%-%d+)$")
      assert.is_truthy(rc == "-9" or rc == "-2", lines[5 + i])
    end
    assert.are.same({"clean exit"}, {table.unpack(lines, 9)})
  end)

  it("gather_cancel cancels every unfinished task through one gather", function()
    local r = run("gather_cancel")
    assert_ok(r)
    assert.are.same({"true", "gather raised CancelledError:\ttrue", "3 of 3 tasks cancelled"}, r.lines)
  end)

  it("generator_subgen: subgen's yields pass through gen", function()
    local r = run("generator_subgen")
    assert_ok(r)
    assert.are.same({"nil", "2", "nil", "2"}, r.lines)
  end)

  it("debug_never_scheduled: a coroutine object never scheduled is reported, with where (debug)", function()
    local r = run("debug_never_scheduled", {env = "ALOOP_DEBUG=1"})
    assert.are.equal(0, r.status, r.err)
    assert.are.same({"done"}, r.lines) -- "never scheduled" is never printed
    assert.matches("^coroutine <coroutine object examples/debug_never_scheduled%.lua:6> was never awaited\n", r.err)
    assert.matches("Coroutine created at:\nstack traceback:\n\texamples/debug_never_scheduled%.lua:11: in local 'main'", r.err)
    local plain = run("debug_never_scheduled")
    assert.matches("was never awaited\n$", plain.err) -- without debug mode: no traceback
  end)

  it("debug_pending_task: a task pending at close is reported with its stack and origin (debug)", function()
    local r = run("debug_pending_task", {env = "ALOOP_DEBUG=1"})
    assert.are.equal(0, r.status, r.err)
    assert.are.same({"closed"}, r.lines)
    assert.matches("^Task was destroyed but it is pending!\ntask: <Task pending name='Task%-1' created at examples/debug_pending_task%.lua:12>\n", r.err)
    assert.matches("Stack for <Task pending .*> %(most recent call last%):\n  examples/debug_pending_task%.lua:7: in function", r.err)
    assert.matches("Object created at:\nstack traceback:\n\texamples/debug_pending_task%.lua:12: in main chunk", r.err)
  end)

  it("debug_stack_printer: tasks say where they were created and a slow step is logged", function()
    local r = run("debug_stack_printer")
    assert.are.equal(0, r.status, r.err)
    assert.are.same({
      "Stack for <Task pending name='Task-1' created at examples/debug_stack_printer.lua:20> (most recent call last):",
      "  examples/debug_stack_printer.lua:7: in function <examples/debug_stack_printer.lua:6>",
      "Stack for <Task pending name='Task-2' created at examples/debug_stack_printer.lua:21> (most recent call last):",
      "  examples/debug_stack_printer.lua:12: in function <examples/debug_stack_printer.lua:10>",
    }, sorted_stacks(r.lines))
    local took = r.err:match("^Executing a step of <Task finished name='Task%-2' created at examples/debug_stack_printer%.lua:21> took (%d+%.%d%d%d) seconds\n$")
    assert.is_truthy(took, r.err)
    assert.is_true(tonumber(took) >= 0.15, took) -- the step busy-waits 0.15 s of CPU time
  end)

  -- Networking examples. A server example runs in the background (port 0 and a client count,
  -- so it prints its port and stops by itself) while the client runs in the foreground.
  local function start_bg(cmd)
    local s = { out = os.tmpname(), err = os.tmpname(), st = os.tmpname(), pid = os.tmpname() }
    os.execute(("cd %s && (sh -c 'echo $$ >%s; exec timeout -k 5 60 %s' >%s 2>%s; echo $? >%s) " ..
      ">/dev/null 2>&1 &"):format(q(ROOT), q(s.pid), cmd, q(s.out), q(s.err), q(s.st)))
    for _ = 1, 400 do -- its first line names the port (20 s at most)
      local first = (read_file(s.out) or ""):match("^[^\n]*\n")
      if first then
        s.port = tonumber(first:match(":(%d+)%s*$") or first:match("port (%d+)"))
        return s
      end
      os.execute("sleep 0.05")
    end
    error("background server printed nothing: " .. (read_file(s.err) or ""))
  end

  local function server_run(name, ...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = q(a) end
    return start_bg(("%s %s %s"):format(q(BIN), q("examples/" .. name .. ".lua"), table.concat(args, " ")))
  end

  -- Waits for a background server to exit by itself; its {out, err, lines, status}.
  local function finish(s)
    for _ = 1, 800 do
      local st = read_file(s.st)
      if st and st:match("%d") then
        local r = { out = read_file(s.out), err = read_file(s.err), status = tonumber(st) }
        r.lines = split_lines(r.out)
        for _, f in ipairs({ s.out, s.err, s.st, s.pid }) do os.remove(f) end
        return r
      end
      os.execute("sleep 0.05")
    end
    error("background server did not stop")
  end

  -- Runs a python3 snippet (args after it) and returns its stdout.
  local function python(src, ...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = q(a) end
    -- (exec, and no LD_PRELOAD: under ASan neither the shell nor python3 may add leak reports)
    local p = io.popen(("exec env -u LD_PRELOAD timeout 30 python3 -c %s %s 2>&1"):format(
      q(src), table.concat(args, " ")))
    local out = p:read("a")
    p:close()
    return out
  end

  it("tcp_echo_server_protocol + tcp_echo_client_protocol (protocols)", function()
    local s = server_run("tcp_echo_server_protocol", 0, 1)
    local c = run("tcp_echo_client_protocol", s.port)
    assert_ok(c)
    assert.are.same({ "Data sent: 'Hello World!'", "Data received: 'Hello World!'",
      "The server closed the connection", "Stop the event loop" }, c.lines)
    local r = finish(s)
    assert_ok(r)
    assert.are.equal("Serving on 127.0.0.1:" .. s.port, r.lines[1])
    assert.matches("^Connection from 127%.0%.0%.1:%d+$", r.lines[2])
    assert.are.same({ "Data received: 'Hello World!'", "Send: 'Hello World!'",
      "Close the client socket" }, { table.unpack(r.lines, 3) })
  end)

  it("tcp_echo_server_streams + tcp_echo_client_streams (streams)", function()
    local s = server_run("tcp_echo_server_streams", 0, 1)
    local c = run("tcp_echo_client_streams", s.port)
    assert_ok(c)
    assert.are.same({ "Send: 'Hello World!'", "Received: 'Hello World!'", "Close the socket" }, c.lines)
    local r = finish(s)
    assert_ok(r)
    assert.are.equal(4, #r.lines)
    assert.matches("^Received 'Hello World!' from 127%.0%.0%.1:%d+$", r.lines[2])
    assert.are.same({ "Send: 'Hello World!'", "Close the client socket" }, { r.lines[3], r.lines[4] })
  end)

  it("simple_connections server/client: lines in order, times from the server's start", function()
    local s = server_run("simple_connections", "server", 0, 2)
    local c1 = run("simple_connections", "client", s.port, 3, 0.1)
    local c2 = run("simple_connections", "client", s.port, 2, 0.1)
    assert_ok(c1)
    assert_ok(c2)
    local r = finish(s)
    assert_ok(r)
    local function strip(lines) -- drop the times and the client's port
      local t = {}
      for i, l in ipairs(lines) do t[i] = l:gsub("^%d+%.%d ", ""):gsub("127%.0%.0%.1:%d+", "C") end
      return t
    end
    assert.are.same({ "Got line: client: C, 0", "Got line: client: C, 1", "Got line: client: C, 2" }, strip(c1.lines))
    assert.are.same({ "Got line: client: C, 0", "Got line: client: C, 1" }, strip(c2.lines))
    assert.are.same({ "Client connected C", "Started sending to C", "client: C, 0", "client: C, 1",
      "client: C, 2", "Finished sending to C", "Client connected C", "Started sending to C",
      "client: C, 0", "client: C, 1", "Finished sending to C" }, strip({ table.unpack(r.lines, 2) }))
    local t1, t3 = tonumber(c1.lines[1]:match("^[%d.]+")), tonumber(c1.lines[3]:match("^[%d.]+"))
    assert.is_true(t3 - t1 >= 0.2 - 0.1, "the client pauses between lines")
  end)

  it("echo_server_protocol (003) echoes to a python3 client and reports the close", function()
    local s = server_run("echo_server_protocol", 0, 1)
    local out = python([[
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello aloop\n")
got = b""
while len(got) < 12:
    got += s.recv(100)
print(got.decode(), end="")
s.close()
]], s.port)
    assert.are.equal("hello aloop\n", out)
    local r = finish(s)
    assert_ok(r)
    assert.are.same({ "Server started on port " .. s.port, "Client connected",
      [[Received data: 'hello aloop\n']], "Connection closed\tnil" }, r.lines)
  end)

  it("echo_server_tasks (003): a task per client, done callbacks keep the client table", function()
    local s = server_run("echo_server_tasks", 0, 2)
    local src = [[
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"one\ntwo\n")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(100)
    if not d: break
    got += d
print(got.decode(), end="")
]]
    assert.are.equal("one\ntwo\n", python(src, s.port))
    assert.are.equal("one\ntwo\n", python(src, s.port))
    local r = finish(s)
    assert_ok(r)
    assert.are.same({ "Serving on 127.0.0.1:" .. s.port, "client connected, clients: 1",
      "client done, clients: 0", "client connected, clients: 1", "client done, clients: 0" }, r.lines)
  end)

  it("http_reply_protocol (004) answers a python3 HTTP client", function()
    local s = server_run("http_reply_protocol", 0, 1)
    local out = python([[
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=10) as r:
    print(r.status, r.headers["Content-Type"], r.read().decode())
]], s.port)
    assert.are.equal("200 text/html Hello xxx\n", out)
    local r = finish(s)
    assert_ok(r)
    assert.are.same({ "Serving on 127.0.0.1:" .. s.port, "connection lost\tnil" }, r.lines)
  end)

  it("http_headers: HEAD against a local python3 http.server", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir " .. q(dir))
    local s = start_bg("env -u LD_PRELOAD python3 -u -m http.server 0 --bind 127.0.0.1 --directory " .. q(dir))
    local c = run("http_headers", "http://127.0.0.1:" .. s.port .. "/")
    os.execute("kill " .. read_file(s.pid):match("%d+"))
    finish(s)
    os.execute("rmdir " .. q(dir))
    assert_ok(c)
    assert.are.equal("HTTP header> HTTP/1.0 200 OK", c.lines[1])
    local names = {}
    for _, l in ipairs(c.lines) do names[#names + 1] = l:match("^HTTP header> ([%w-]+):") end
    table.sort(names)
    assert.are.same({ "Content-Length", "Content-type", "Date", "Server" }, names)
  end)

  it("http_server (003): curl's requests printed and answered Hello world!", function()
    local s = server_run("http_server", 0, 2)
    local url = "http://127.0.0.1:" .. s.port
    -- (no LD_PRELOAD: curl under the ASan runtime can hang in its resolver thread)
    local p = io.popen("exec env -u LD_PRELOAD timeout 30 curl -s " .. q(url .. "/") .. " " ..
      q(url .. "/some/path?x=1"))
    local out = p:read("a")
    p:close()
    assert.are.equal("Hello world!\r\nHello world!\r\n", out)
    local r = finish(s)
    assert_ok(r)
    assert.are.same({ "Serving on " .. url, [[method = "GET"; path = "/"; version = "1.1"]],
      [[method = "GET"; path = "/some/path"; version = "1.1"]] }, r.lines)
  end)

  it("http_download (001): five files fetched concurrently and saved", function()
    local dir = os.tmpname()
    os.remove(dir)
    local r = run("http_download", dir)
    assert_ok(r)
    assert.are.same({ "Finished downloading f1040.pdf (180000 bytes)",
      "Finished downloading f1040a.pdf (120000 bytes)", "Finished downloading f1040es.pdf (240000 bytes)",
      "Finished downloading f1040ez.pdf (60000 bytes)", "Finished downloading f1040sb.pdf (30000 bytes)",
      "Saved in " .. dir }, r.lines)
    local f = assert(io.open(dir .. "/f1040es.pdf", "rb"))
    assert.are.equal(("%"):rep(240000), f:read("a"))
    f:close()
    os.execute("rm -rf " .. q(dir))
  end)

  it("http_routes (004): sanic's routes, converters, add_route with methods", function()
    local r = run("http_routes")
    assert_ok(r)
    assert.are.same({ 'GET /aloop           200 {"hello":"aloop"}', "GET /number/3.14     200 number: 3.14",
      "GET /folder/ab12     200 folder: ab12", "GET /folder/toolong  404 Not Found",
      "GET /folder2/docs    200 folder2: docs", "GET /personal2/ann   200 personal2: ann",
      "GET /personal2/a1    404 Not Found", "POST /personal2/ann  405 GET, HEAD" }, r.lines)
  end)

  it("http_json_api: a JSON todo API and its client", function()
    local r = run("http_json_api")
    assert_ok(r)
    assert.are.equal(7, #r.lines)
    assert.are.equal("GET /todos             200 []", r.lines[1])
    assert.matches("^POST /todos            201 {.*}$", r.lines[2])
    assert.truthy(r.lines[2]:find('"title":"write the spec"', 1, true))
    assert.truthy(r.lines[3]:find('"id":2', 1, true))
    assert.are.equal("POST /todos (bad)      422 a title is needed", r.lines[4])
    assert.are.equal("DELETE /todos/1        204 ", r.lines[5])
    assert.are.equal("GET /todos/1           404 no todo 1", r.lines[6])
    assert.matches('^GET /todos             200 %[{.*"run it".*}%]$', r.lines[7])
  end)

  it("http_stream: a chunked download read with progress lines", function()
    local r = run("http_stream", 2)
    assert_ok(r)
    assert.are.same({ "200\tchunked", " 25% (524288 bytes)", " 50% (1048576 bytes)",
      " 75% (1572864 bytes)", "100% (2097152 bytes)", "done\ttrue" }, r.lines)
  end)

  it("udp_echo_server + udp_echo_client (datagram protocols)", function()
    local s = server_run("udp_echo_server", 0, 1)
    local c = run("udp_echo_client", s.port)
    assert_ok(c)
    assert.are.same({ "Send:\tHello World!", "Received:\tHello World!", "Close the socket",
      "Socket closed, stop the event loop" }, c.lines)
    local r = finish(s)
    assert_ok(r)
    assert.are.equal("Starting UDP server on 127.0.0.1:" .. s.port, r.lines[1])
    assert.matches("^Received 'Hello World!' from 127%.0%.0%.1:%d+$", r.lines[2])
    assert.matches("^Send 'Hello World!' to 127%.0%.0%.1:%d+$", r.lines[3])
  end)

  it("socketpair_protocol: create_connection{sock=} on a socketpair", function()
    local r = run("socketpair_protocol")
    assert_ok(r)
    assert.are.same({ "Received:\tabc" }, r.lines)
  end)

  it("socketpair_streams: open_connection{sock=} on a socketpair", function()
    local r = run("socketpair_streams")
    assert_ok(r)
    assert.are.same({ "Received:\tabc" }, r.lines)
  end)

  it("stdin_add_reader: a line per readiness callback until EOF", function()
    local bin_path = BIN:sub(1, 1) == "/" and BIN or ROOT .. "/" .. BIN
    local p = io.popen(("cd %s && printf 'first line\\nsecond line\\n' | timeout 30 %s examples/stdin_add_reader.lua 2>&1"):format(q(ROOT), q(bin_path)))
    local out = p:read("a")
    p:close()
    assert.are.equal("Got input from stdin: 'first line'\nGot input from stdin: 'second line'\n", out)
    assert.is_nil(run("stdin_add_reader").err:match("%S")) -- /dev/null: EOF at once, clean exit
  end)

  -- nc as the client, as the seed's own check of these servers does.
  local function nc(port, text)
    local p = io.popen(("printf %s | exec env -u LD_PRELOAD timeout 20 nc -N 127.0.0.1 %d 2>&1"):format(q(text), port))
    local out = p:read("a")
    p:close()
    return out
  end

  it("curio_echo_server: sock_accept/sock_recv/sock_sendall, a task per client (nc clients)", function()
    local s = server_run("curio_echo_server", 0, 2)
    assert.are.equal("hello world\n", nc(s.port, "hello world\n"))
    assert.are.equal("again\n", nc(s.port, "again\n"))
    local r = finish(s)
    assert_ok(r)
    assert.are.equal("Server listening at\t127.0.0.1:" .. s.port, r.lines[1])
    assert.are.equal(5, #r.lines)
    assert.matches("^Connection from\t127%.0%.0%.1:%d+$", r.lines[2])
    assert.are.same({ "Connection closed" }, { r.lines[3] })
  end)

  it("selector_echo_server: add_reader callbacks, no tasks (nc clients)", function()
    local s = server_run("selector_echo_server", 0, 2)
    assert.are.equal("hello world\n", nc(s.port, "hello world\n"))
    assert.are.equal("bye\n", nc(s.port, "bye\n"))
    local r = finish(s)
    assert_ok(r)
    assert.are.equal("Listening on 127.0.0.1:" .. s.port, r.lines[1])
    assert.matches("^accepted\t%d+\tfrom\t127%.0%.0%.1:%d+$", r.lines[2])
    assert.are.same({ "echoing\t12\tbytes" }, { r.lines[3] })
    assert.matches("^closing\t%d+$", r.lines[4])
    assert.are.equal(7, #r.lines)
  end)

  -- threads and executors (seed 004; 002/001 for run_in_executor)

  it("thread_loop_call_soon: blocking calls posted to a loop in another thread run one after the other", function()
    local r = run("thread_loop_call_soon")
    assert_ok(r)
    assert.are.same({ "start_loop", "More work 0.2" }, { r.lines[1], r.lines[2] })
    assert.are.equal("More work 0.2", r.lines[4])
    local t1 = tonumber(r.lines[3]:match("^Finished more work 0%.2 at (%d+%.%d)$"))
    local t2 = tonumber(r.lines[5]:match("^Finished more work 0%.2 at (%d+%.%d)$"))
    assert.is_true(t1 >= 0.15 and t2 >= 0.35, table.concat(r.lines, "\n"))
    assert.are.equal(5, #r.lines)
  end)

  it("thread_loop_coroutines: coroutines run with run_coroutine_threadsafe overlap", function()
    local r = run("thread_loop_coroutines")
    assert_ok(r)
    assert.are.same({ "TIME: 0.0", "Waiting 0.2", "Waiting 0.2" }, { r.lines[1], r.lines[2], r.lines[3] })
    for i = 4, 5 do
      local t = tonumber(r.lines[i]:match("^Finished more work 0%.2 at (%d+%.%d)$"))
      assert.is_true(t >= 0.15, r.lines[i])
    end
    assert.are.equal(5, #r.lines)
  end)

  it("threadpool_map: results in the order of the list, after every download", function()
    local r = run("threadpool_map")
    assert_ok(r)
    assert.are.same({
      "http://localhost?s=2\tfinished!",
      "http://localhost?s=4\tfinished!",
      "<content of http://localhost?s=2>, <content of http://localhost?s=4>",
    }, r.lines)
  end)

  it("threadpool_as_completed: the short job is handled first", function()
    local r = run("threadpool_as_completed")
    assert_ok(r)
    assert.are.same({
      "load url2 successful", "url:\turl2", "data:\tload url2 successful,timeout=0.1",
      "load url1 successful", "url:\turl1", "data:\tload url1 successful,timeout=0.4",
    }, r.lines)
  end)

  it("threadpool_close_waits: leaving the pool's scope waits for its jobs", function()
    local r = run("threadpool_close_waits")
    assert_ok(r)
    assert.are.same({
      "load url2 successful, timeout=0.1", "load url1 successful, timeout=0.4",
      "All tasks has been finished",
    }, r.lines)
  end)

  it("processpool_is_prime: as_completed yields every number once, map keeps the order", function()
    local r = run("processpool_is_prime")
    assert_ok(r)
    local first = {}
    for i = 1, 5 do first[i] = r.lines[i] end
    table.sort(first)
    assert.are.same({ "109\ttrue", "25\tfalse", "29\ttrue", "50\tfalse", "61\ttrue" }, first)
    assert.are.same({ "(25, false)", "(61, true)", "(29, true)", "(50, false)", "(109, true)" },
      { r.lines[6], r.lines[7], r.lines[8], r.lines[9], r.lines[10] })
  end)

  it("multiprocessing_pool: apply_async(...):get() and map on processes and threads", function()
    local r = run("multiprocessing_pool")
    assert_ok(r)
    local exps = "2.72 7.39 20.09 54.60 148.41 403.43 1096.63 2980.96 8103.08 22026.47"
    assert.are.same({ "fetched http://a (timeout 60)", exps, "fetched http://b (timeout 60)", exps }, r.lines)
  end)

  it("run_in_executor_blocking: the loop keeps ticking while the blocking call runs", function()
    local r = run("run_in_executor_blocking")
    assert_ok(r)
    assert.are.equal("Started blocking at 0.0", r.lines[1])
    assert.matches("^Finished blocking at %d+%.%d: slept 0%.5$", r.lines[#r.lines - 1])
    assert.are.equal("the loop ticked on while the call blocked", r.lines[#r.lines])
  end)

  it("debug_unclosed_transport: a connection left open at loop close is reported (debug)", function()
    local r = run("debug_unclosed_transport", {env = "ALOOP_DEBUG=1"})
    assert.are.equal(0, r.status, r.err)
    assert.are.same({"server got: hello", "closed"}, r.lines)
    local _, n = r.err:gsub("unclosed <aloop%.Transport fd=%d+> %(close it before its loop%)\nObject created at:\nstack traceback:\n", "")
    assert.are.equal(1, n, r.err) -- the client's; the server's was closed by its handler
    assert_ok(run("debug_unclosed_transport")) -- outside debug mode: no warning
  end)

  -- Redis examples: one redis-server (spec/redis_helper.lua) for all; the URL is their argument.
  describe("redis", function()
    local srv
    setup(function() srv = require("spec.redis_helper").server() end)
    teardown(function() srv:stop() end)

    it("redis_subscriber: prints Received: for each message on my-channel", function()
      local r = run("redis_subscriber", srv.url)
      assert_ok(r)
      assert.are.same({ "Received: 'hello' on channel my-channel", "Received: 'world' on channel my-channel",
        "Received: 'bye' on channel my-channel" }, r.lines)
    end)

    it("redis_queue_thread: durations popped from Redis run on the other thread's loop", function()
      local r = run("redis_queue_thread", srv.url)
      assert_ok(r)
      assert.are.same({ "Waiting 0.3", "Waiting 0.1", "Waiting 0.2", "Finished more work 0.1",
        "Finished more work 0.2", "Finished more work 0.3", "3 tasks done" }, r.lines)
    end)

    it("redis_job_queue: BLPOP workers handle every job once", function()
      local r = run("redis_job_queue", srv.url)
      assert_ok(r)
      local want = {}
      for n = 1, 9 do want[n] = ("%d squared is %d"):format(n, n * n) end
      want[10] = "3 workers handled 9 jobs"
      assert.are.same(want, r.lines)
    end)

    it("redis_rate_limiter: the fourth request of a window is limited", function()
      local r = run("redis_rate_limiter", srv.url)
      assert_ok(r)
      assert.are.same({ "alice request 1: allowed", "alice request 2: allowed", "bob   request 1: allowed",
        "alice request 3: allowed", "alice request 4: limited (429)", "alice request 5: limited (429)",
        "bob   request 2: allowed" }, r.lines)
    end)
  end)

  it("every example has a test above", function()
    local tested = {}                             -- the names passed to run() in this file
    for name in read_file(ROOT .. "/spec/examples_spec.lua"):gmatch('run%("([%w_]+)"') do
      tested[name] = true
    end
    -- the TLS examples run in spec/tls/examples_spec.lua (they need its certificates)
    for name in read_file(ROOT .. "/spec/tls/examples_spec.lua"):gmatch('example%("([%w_]+)"') do
      tested[name] = true
    end
    local missing = {}
    local p = assert(io.popen("cd " .. q(ROOT) .. " && ls examples"))
    for file in p:lines() do
      local name = file:match("^(.+)%.lua$")
      if name and not tested[name] then missing[#missing + 1] = name end
    end
    p:close()
    assert.are.same({}, missing)
  end)
end)
