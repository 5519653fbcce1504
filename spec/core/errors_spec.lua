-- Error objects (API.md §4): classes, hierarchy, instances with message and traceback,
-- tostring, subclassing with Error:extend, and errors raised by aloop itself.
local aio = require "aloop"
local H = require "spec.helper"

local classes = {
  "Error", "CancelledError", "TimeoutError", "InvalidStateError", "KeyboardInterrupt",
  "IncompleteReadError", "LimitOverrunError", "QueueEmpty", "QueueFull", "OSError",
  "ConnectionError", "ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError",
  "BrokenPipeError", "SendfileNotAvailableError",
}

local parents = {
  CancelledError = "Error", TimeoutError = "Error", InvalidStateError = "Error",
  KeyboardInterrupt = "Error", IncompleteReadError = "Error", LimitOverrunError = "Error",
  QueueEmpty = "Error", QueueFull = "Error", OSError = "Error", SendfileNotAvailableError = "Error",
  ConnectionError = "OSError", ConnectionResetError = "ConnectionError",
  ConnectionRefusedError = "ConnectionError", ConnectionAbortedError = "ConnectionError",
  BrokenPipeError = "ConnectionError",
}

describe("error classes", function()
  for _, name in ipairs(classes) do
    it(name .. " exists, is callable and makes an instance of itself and of aio.Error", function()
      local cls = aio[name]
      assert.equal("table", type(cls))
      local e = cls("msg of " .. name)
      assert.is_true(aio.iserror(e, cls))
      assert.is_true(aio.iserror(e, aio.Error))
      assert.is_true(aio.iserror(e)) -- default class: aio.Error
      assert.equal("msg of " .. name, e.message)
      assert.equal(name .. ": msg of " .. name, tostring(e))
      assert.equal("string", type(e.traceback))
    end)
  end

  it("follow the documented hierarchy", function()
    for child, parent in pairs(parents) do
      assert.is_true(aio.iserror(aio[child](), aio[parent]), child .. " < " .. parent)
    end
  end)

  it("ConnectionResetError and friends are OSErrors and ConnectionErrors", function()
    for _, name in ipairs { "ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError", "BrokenPipeError" } do
      local e = aio[name]("x")
      assert.is_true(aio.iserror(e, aio.OSError), name)
      assert.is_true(aio.iserror(e, aio.ConnectionError), name)
      assert.is_false(aio.iserror(e, aio.TimeoutError), name)
    end
  end)

  it("siblings and parents are not instances of each other", function()
    assert.is_false(aio.iserror(aio.TimeoutError(), aio.CancelledError))
    assert.is_false(aio.iserror(aio.Error(), aio.TimeoutError))
    assert.is_false(aio.iserror(aio.OSError(), aio.ConnectionError))
    assert.is_false(aio.iserror(aio.ConnectionError(), aio.ConnectionResetError))
    assert.is_false(aio.iserror(aio.QueueEmpty(), aio.QueueFull))
  end)

  it("iserror is false for what is not an aloop error", function()
    assert.is_false(aio.iserror("CancelledError: x", aio.CancelledError))
    assert.is_false(aio.iserror({ message = "x" }, aio.Error))
    assert.is_false(aio.iserror(nil, aio.Error))
    assert.is_false(aio.iserror(42))
    assert.is_false(aio.iserror(setmetatable({}, {})))
  end)
end)

describe("error instances", function()
  it("tostring is 'Class: message', or the class name alone without a message", function()
    assert.equal("CancelledError: msg", tostring(aio.CancelledError("msg")))
    assert.equal("CancelledError", tostring(aio.CancelledError()))
    assert.equal("TimeoutError", tostring(aio.TimeoutError("")))
  end)

  it("carry a traceback of where they were made", function()
    local function make_here() return aio.TimeoutError("x") end
    local e = make_here()
    assert.matches("stack traceback", e.traceback)
    assert.matches("errors_spec%.lua", e.traceback)
  end)

  it("can be made from a table of fields", function()
    local e = aio.IncompleteReadError { message = "short read", partial = "ab", expected = 5 }
    assert.is_true(aio.iserror(e, aio.IncompleteReadError))
    assert.equal("short read", e.message)
    assert.equal("ab", e.partial)
    assert.equal(5, e.expected)
    assert.equal("string", type(e.traceback))
  end)

  it("can be made from a message and a table of extra fields", function()
    local e = aio.OSError("Connection refused", { errno = 111, strerror = "Connection refused" })
    assert.equal("Connection refused", e.message)
    assert.equal(111, e.errno)
    assert.equal("Connection refused", e.strerror)
  end)

  it("keep a traceback given in the fields", function()
    local e = aio.Error { message = "m", traceback = "TB" }
    assert.equal("TB", e.traceback)
  end)

  it("travel through error/pcall unchanged", function()
    local e = aio.QueueEmpty("empty")
    local ok, err = pcall(error, e)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
  end)

  it("a non-string message is shown with tostring", function()
    assert.equal("Error: 42", tostring(aio.Error(42)))
  end)
end)

describe("Error:extend", function()
  it("makes a subclass usable with iserror", function()
    local MyError = aio.Error:extend("MyError")
    local e = MyError("mine")
    assert.is_true(aio.iserror(e, MyError))
    assert.is_true(aio.iserror(e, aio.Error))
    assert.is_false(aio.iserror(e, aio.TimeoutError))
    assert.is_false(aio.iserror(aio.Error("x"), MyError))
    assert.equal("MyError: mine", tostring(e))
    assert.equal("mine", e.message)
    assert.equal("string", type(e.traceback))
  end)

  it("works on any class and can be chained", function()
    local AppTimeout = aio.TimeoutError:extend("AppTimeout")
    local DbTimeout = AppTimeout:extend("DbTimeout")
    local e = DbTimeout("db")
    assert.is_true(aio.iserror(e, DbTimeout))
    assert.is_true(aio.iserror(e, AppTimeout))
    assert.is_true(aio.iserror(e, aio.TimeoutError))
    assert.is_true(aio.iserror(e, aio.Error))
    assert.is_false(aio.iserror(AppTimeout(), DbTimeout))
    assert.equal("DbTimeout: db", tostring(e))
  end)

  it("subclasses see methods added to their parents", function()
    local Base = aio.Error:extend("Base")
    local Child = Base:extend("Child")
    function Base:describe() return "base says " .. self.message end
    assert.equal("base says hi", Child("hi"):describe())
  end)

  it("needs a name", function()
    assert.has_error(function() aio.Error:extend() end)
  end)

  it("an instance of a subclass travels through a task unchanged", function()
    local MyError = aio.Error:extend("MyError")
    local e = MyError("from task")
    local loop = aio.new_event_loop()
    local ok, err = pcall(loop.run_until_complete, loop, function() aio.sleep(0); error(e) end)
    loop:close()
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
    assert.is_true(aio.iserror(err, MyError))
  end)
end)

describe("errors raised by aloop", function()
  it("are aloop error tables with message and traceback", function()
    local loop = aio.new_event_loop()
    local f = loop:create_future()
    local ok, err = pcall(f.result, f)
    loop:close()
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError))
    assert.equal("string", type(err.message))
    assert.equal("string", type(err.traceback))
    assert.matches("^InvalidStateError: ", tostring(err))
  end)

  it("CancelledError from a cancelled task carries the cancel message", H.async(function()
    local t = aio.create_task(function() aio.sleep(10) end)
    aio.sleep(0)
    t:cancel("bye")
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError))
    assert.equal("bye", err.message)
    assert.equal("CancelledError: bye", tostring(err))
  end))

  it("a plain string error raised in a task travels unchanged", H.async(function()
    local t = aio.create_task(function() error("just a string", 0) end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.equal("just a string", err)
  end))
end)

describe("core.errno (errno values from C, for the Lua half)", function()
  local core = require "aloop.core"

  it("holds the values the system's calls report", H.async(function(loop)
    local server = loop:create_server(function() return {} end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local ok, err = pcall(loop.create_server, loop, function() return {} end, "127.0.0.1", port)
    assert.is_false(ok)
    assert.equal(core.errno.EADDRINUSE, err.errno, tostring(err))
    server:close()
    server:wait_closed()
    ok, err = pcall(loop.create_connection, loop, function() return {} end, "127.0.0.1", port)
    assert.is_false(ok)
    assert.equal(core.errno.ECONNREFUSED, err.errno, tostring(err))
    assert.is_true(aio.iserror(err, aio.ConnectionRefusedError))
  end))

  it("names only integers", function()
    local n = 0
    for name, v in pairs(core.errno) do
      assert.matches("^E[A-Z]+$", name)
      assert.equal("integer", math.type(v))
      n = n + 1
    end
    assert.is_true(n >= 40)
  end)
end)
