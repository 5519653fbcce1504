-- aloop.http's server against real clients (curl, Python requests / http.client / aiohttp) and
-- raw sockets: routes, HEAD, chunked bodies both ways, 100-continue, keep-alive and pipelining
-- order, flow control with a slow reader, limits, timeouts, malformed requests, shutdown.
local aio = require "aloop"
local http = require "aloop.http"
local H = require "spec.helper"
local T = require "spec.http_helper"
local it_fds = require("spec.net_helper").it_fds(it)

local function routes_app()
  local app = http.App {}
  app:get("/", function() return "Hello, world" end)
  app:get("/<user>", function(_, user) return http.json { hello = user } end)
  app:get("/number/<n:number>", function(_, n) return ("number %s %s"):format(n, math.type(n)) end)
  app:get("/int/<n:int>", function(_, n) return ("int %d"):format(n) end)
  app:get("/files/<rest:path>", function(req, rest) return "path " .. rest .. " " .. req.params.rest end)
  app:get("/folder/<id:%w%w?%w?%w?>", function(_, id) return "folder " .. id end)
  app:route("/echo", function(req) return req:body() end, { methods = { "POST", "PUT" } })
  app:get("/query", function(req) return req.query.a .. "," .. req.query.b[2] end)
  return app
end

describe("http server", function()
  it_fds("answers curl: routes, converters, 404, 405, HEAD", function()
    local srv <close>, base = T.serve(routes_app())
    local function curl(args) return (T.run("curl -s -S " .. args)) end
    assert.equal("Hello, world", curl(base .. "/"))
    assert.equal('{"hello":"bob"}', curl(base .. "/bob"))
    assert.equal("number 2.5 float", curl(base .. "/number/2.5"))
    assert.equal("int -7", curl(base .. "/int/-7"))
    assert.equal("path a/b/c.txt a/b/c.txt", curl(base .. "/files/a/b/c.txt"))
    assert.equal("folder ab1", curl(base .. "/folder/ab1"))
    assert.equal("1,3", curl("'" .. base .. "/query?a=1&b=2&b=3'"))
    assert.equal("404", curl("-o /dev/null -w '%{http_code}' " .. base .. "/int/x"))
    assert.equal("404", curl("-o /dev/null -w '%{http_code}' " .. base .. "/folder/abcde"))
    local head = curl("-i -X DELETE " .. base .. "/echo")
    assert.truthy(head:find("^HTTP/1.1 405"))
    assert.truthy(head:find("\r\nallow: POST, PUT\r\n", 1, true))
    head = curl("-I " .. base .. "/")
    assert.truthy(head:find("^HTTP/1.1 200 OK\r\n"))
    assert.truthy(head:find("Content-Length: 12\r\n", 1, true))
    assert.truthy(head:find("\r\n\r\n$"))
  end)

  it_fds("reads chunked and 100-continue uploads from curl and streams big bodies", function()
    local app = http.App { client_max_size = 8 << 20 }
    local pieces
    app:post("/count", function(req)
      pieces = 0
      local n = 0
      for chunk in req:chunks() do pieces, n = pieces + 1, n + #chunk end
      return tostring(n)
    end)
    app:route("/echo", function(req) return req:body() end, { methods = { "POST" } })
    local srv <close>, base = T.serve(app)
    local out = T.run("printf 'hello chunked' | curl -s -S -H 'Transfer-Encoding: chunked' --data-binary @- "
      .. base .. "/echo")
    assert.equal("hello chunked", out)
    out = T.run("curl -s -S -v -H 'Expect: 100-continue' --data-binary 'xyz' " .. base .. "/echo")
    assert.truthy(out:find("HTTP/1.1 100 Continue", 1, true))
    assert.truthy(out:find("xyz$"))
    out = T.run("head -c 4000000 /dev/zero | curl -s -S --data-binary @- " .. base .. "/count")
    assert.equal("4000000", out)
    assert.is_true(pieces > 1)
  end)

  it_fds("keeps a Python requests session on one connection; JSON both ways", function()
    local app = http.App {}
    local ports = {}
    app:post("/sum", function(req)
      ports[req.remote[2]] = true
      local v = req:json()
      return http.json { sum = v.a + v.b, agent = req.headers["User-Agent"] ~= nil }
    end)
    local srv <close>, base = T.serve(app)
    local out, rc = T.python([[
import requests, sys
s = requests.Session()
for i in range(5):
    r = s.post(sys.argv[1] + "/sum", json={"a": i, "b": 10})
    print(r.status_code, r.json()["sum"], r.headers["Keep-Alive"])
]], base)
    assert.equal(0, rc, out)
    assert.equal("200 10 timeout=75\n200 11 timeout=75\n200 12 timeout=75\n200 13 timeout=75\n200 14 timeout=75\n", out)
    local n = 0
    for _ in pairs(ports) do n = n + 1 end
    assert.equal(1, n)
  end)

  it_fds("streams a chunked response to aiohttp's client and takes its chunked upload", function()
    local app = http.App {}
    app:get("/stream", function(req)
      local w <close> = req:respond { headers = { ["content-type"] = "text/plain" } }
      for i = 1, 5 do w:write("line " .. i .. "\n") aio.sleep(0) end
    end)
    app:post("/up", function(req) return tostring(#req:body()) end)
    local srv <close>, base = T.serve(app)
    local out, rc = T.python([[
import aiohttp, asyncio, sys
async def main():
    async with aiohttp.ClientSession() as s:
        async with s.get(sys.argv[1] + "/stream") as r:
            print(r.headers["Transfer-Encoding"], repr(await r.text()))
        async def gen():
            for i in range(10):
                yield b"x" * 1000
        async with s.post(sys.argv[1] + "/up", data=gen()) as r:
            print(await r.text())
asyncio.run(main())
]], base)
    assert.equal(0, rc, out)
    assert.equal("chunked 'line 1\\nline 2\\nline 3\\nline 4\\nline 5\\n'\n10000\n", out)
  end)

  it_fds("answers pipelined requests in order, a slow handler first", function()
    local app = http.App {}
    app:get("/slow", function() aio.sleep(0.05) return "slow" end)
    app:get("/fast/<n:int>", function(_, n) return "fast" .. n end)
    local srv <close> = T.serve(app)
    local req = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
    for i = 1, 3 do req = req .. ("GET /fast/%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i) end
    req = req .. "GET /fast/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local out = T.raw(srv:port(), req)
    local bodies = {}
    for b in out:gmatch("\r\n\r\n(%l+%d?)") do bodies[#bodies + 1] = b end
    assert.same({ "slow", "fast1", "fast2", "fast3", "fast4" }, bodies)
    assert.truthy(out:find("Connection: close\r\n", 1, true))
  end)

  it_fds("HTTP/1.0 closes unless it asks for keep-alive; streams to it without chunks", function()
    local app = http.App {}
    app:get("/", function() return "ok" end)
    app:get("/stream", function(req)
      local w <close> = req:respond {}
      w:write("a")
      w:write("b")
    end)
    local srv <close> = T.serve(app)
    local out = T.raw(srv:port(), "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert.truthy(out:find("Connection: close\r\n", 1, true))
    assert.falsy(out:lower():find("transfer-encoding", 1, true))
    assert.falsy(out:lower():find("content-length", 1, true))
    assert.truthy(out:find("\r\n\r\nab$"))
    out = T.raw(srv:port(), "GET / HTTP/1.0\r\n\r\n")
    assert.truthy(out:find("Connection: close", 1, true))
    out = T.raw(srv:port(), "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    assert.same({ 200, 200 }, T.statuses(out))
    assert.truthy(out:find("Connection: keep-alive", 1, true))
  end)

  it_fds("suspends w:write while the client does not read (memory bounded)", function()
    local app = http.App {}
    local peak, piece, total = 0, ("x"):rep(65536), 64
    app:get("/big", function(req)
      local w <close> = req:respond { headers = { ["content-length"] = #piece * total } }
      local tr = req._conn.tr
      for _ = 1, total do
        w:write(piece)
        peak = math.max(peak, tr:get_write_buffer_size())
      end
    end)
    local srv <close> = T.serve(app)
    local r, w = aio.open_connection("127.0.0.1", srv:port())
    w:write("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    aio.sleep(0.05) -- the client reads nothing for a while: the handler must wait, not buffer
    local data = T.within(10, r.read, r, -1)
    w:close()
    assert.equal(#piece * total, #data - data:find("\r\n\r\n", 1, true) - 3)
    assert.is_true(peak <= 65536 + #piece, "peak write buffer " .. peak)
  end)

  it_fds("answers malformed requests 4xx (505 for HTTP/9.9) and keeps serving", function()
    local srv <close> = T.serve(function(req) req:body() return "ok" end)
    local port = srv:port()
    local bad = {
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
      "\0\1\2\3\4\5 random bytes\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: -1\r\n\r\n",
    }
    math.randomseed(15)
    for _ = 1, 20 do
      local t = {}
      for i = 1, math.random(1, 200) do t[i] = string.char(math.random(0, 255)) end
      bad[#bad + 1] = table.concat(t) .. "\r\n\r\n"
    end
    for _, msg in ipairs(bad) do
      local out = T.raw(port, msg, { eof = true })
      local st = T.statuses(out)
      assert.is_true(#st <= 1, msg)
      assert.is_true(st[1] == nil or (st[1] >= 400 and st[1] < 500) or st[1] == 505, msg)
    end
    -- truncated: the connection ends mid-head or mid-body
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    w:write_eof()
    assert.same({ 400 }, T.statuses(T.within(10, r.read, r, -1)))
    w:close()
    assert.same({ 200 }, T.statuses(T.raw(port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")))
  end)

  it_fds("enforces header and body limits: 431, 413, 503", function()
    local app = http.App { max_header_size = 1024, max_headers = 10, client_max_size = 100, max_connections = 2 }
    app:post("/", function(req) return req:body() end)
    local srv <close> = T.serve(app)
    local port = srv:port()
    assert.same({ 431 }, T.statuses(T.raw(port, "GET / HTTP/1.1\r\nX: " .. ("a"):rep(2000) .. "\r\n\r\n")))
    local many = "GET / HTTP/1.1\r\n"
    for i = 1, 20 do many = many .. "X-" .. i .. ": y\r\n" end
    assert.same({ 431 }, T.statuses(T.raw(port, many .. "\r\n")))
    assert.same({ 413 }, T.statuses(T.raw(port, "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")))
    assert.same({ 413 }, T.statuses(T.raw(port,
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" .. ("a"):rep(128) .. "\r\n0\r\n\r\n")))
    local conns = {}
    for i = 1, 2 do conns[i] = { aio.open_connection("127.0.0.1", port) } end
    for _ = 1, 500 do -- until both are accepted (bounded: 5 s)
      if srv.nconns == 2 then break end
      aio.sleep(0.01)
    end
    assert.equal(2, srv.nconns)
    assert.same({ 503 }, T.statuses(T.raw(port, "GET / HTTP/1.1\r\n\r\n")))
    for _, c in ipairs(conns) do c[2]:close() end
  end)

  it_fds("cuts off slow clients: header timeout, body timeout, keep-alive timeout", function()
    local app = http.App { header_timeout = 0.2, body_timeout = 0.2, keepalive_timeout = 0.3 }
    app:post("/", function(req) return req:body() end)
    app:get("/", function() return "ok" end)
    local srv <close> = T.serve(app)
    local port = srv:port()
    local t0 = aio.get_running_loop():time()
    -- slowloris: a head that never ends
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\nX-A: 1\r\n")
    local out = T.within(5, r.read, r, -1)
    assert.same({ 408 }, T.statuses(out))
    w:close()
    -- a body that stops coming
    r, w = aio.open_connection("127.0.0.1", port)
    w:write("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert.same({ 408 }, T.statuses(T.within(5, r.read, r, -1)))
    w:close()
    -- an idle keep-alive connection is closed after its timeout, announced in Keep-Alive
    r, w = aio.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\n\r\n")
    out = T.within(5, r.read, r, -1)
    assert.same({ 200 }, T.statuses(out))
    assert.truthy(out:find("Keep-Alive: timeout=1\r\n", 1, true))
    w:close()
    assert.is_true(aio.get_running_loop():time() - t0 < 5)
  end)

  it_fds("turns handler errors into 500 (reported) and HTTPError into its status", function()
    local app = http.App {}
    app:get("/boom", function() error("boom") end)
    app:get("/teapot", function() error(http.HTTPError(418, "short and stout")) end)
    app:get("/nil", function() end)
    local reported = {}
    aio.get_running_loop():set_exception_handler(function(_, ctx) reported[#reported + 1] = ctx end)
    local srv <close>, base = T.serve(app)
    local out = T.run("curl -s -i " .. base .. "/boom " .. base .. "/teapot " .. base .. "/nil")
    assert.same({ 500, 418, 500 }, T.statuses(out))
    assert.truthy(out:find("short and stout", 1, true))
    assert.equal(2, #reported)
    assert.truthy(tostring(reported[1].exception):find("boom", 1, true))
    aio.get_running_loop():set_exception_handler(nil)
  end)

  it_fds("runs middleware around the router", function()
    local app = http.App {}
    app:use(function(req, nxt)
      local res = nxt(req)
      if type(res) == "string" then return http.Response { body = res, headers = { ["x-mw"] = "1" } } end
      return res
    end)
    app:get("/", function() return "inner" end)
    local srv <close>, base = T.serve(app)
    local out = T.run("curl -s -i " .. base .. "/")
    assert.truthy(out:find("x-mw: 1\r\n", 1, true))
    assert.truthy(out:find("inner$"))
  end)

  it_fds("shuts down gracefully: idle connections close, in-flight requests finish", function()
    local app = http.App { header_timeout = 60 }
    local release = aio.get_running_loop():create_future()
    local started = aio.get_running_loop():create_future()
    app:get("/wait", function() started:set_result() aio.await(release) return "done" end)
    app:get("/", function() return "ok" end)
    local srv = T.serve(app)
    local port = srv:port()
    local r1, w1 = aio.open_connection("127.0.0.1", port) -- idle keep-alive
    w1:write("GET / HTTP/1.1\r\n\r\n")
    local first = T.within(5, r1.readuntil, r1, "ok")
    assert.truthy(first:find("200 OK", 1, true))
    local r2, w2 = aio.open_connection("127.0.0.1", port)
    w2:write("GET /wait HTTP/1.1\r\n\r\n")
    aio.await(started)
    local r3, w3 = aio.open_connection("127.0.0.1", port) -- accepted, nothing sent yet
    H.settle()
    assert.equal(3, srv.nconns)
    local stopping = aio.create_task(function() srv:shutdown(5) end)
    H.settle()
    assert.equal("", T.within(5, r1.read, r1, -1)) -- the idle one was closed
    assert.equal("", T.within(5, r3.read, r3, -1)) -- so was the silent one (no 408)
    w3:close()
    release:set_result()
    local out = T.within(5, r2.read, r2, -1)
    assert.truthy(out:find("Connection: close\r\n", 1, true))
    assert.truthy(out:find("done$"))
    aio.await(stopping)
    w1:close()
    w2:close()
    assert.has_error(function() aio.open_connection("127.0.0.1", port) end)
  end)

  it_fds("serves files with http.file (length, type, 404 when missing)", function()
    local path = H.tmpfile(("abc"):rep(50000))
    local html = path .. ".html"
    os.rename(path, html)
    local app = http.App {}
    app:get("/f", function() return http.file(html) end)
    app:get("/missing", function() return http.file(html .. ".nope") end)
    local srv <close>, base = T.serve(app)
    local out = T.run("curl -s -i " .. base .. "/f")
    assert.truthy(out:lower():find("\r\ncontent-length: 150000\r\n", 1, true))
    assert.truthy(out:lower():find("\r\ncontent-type: text/html; charset=utf-8\r\n", 1, true))
    assert.equal(150000, #out - out:find("\r\n\r\n", 1, true) - 3)
    assert.same({ 404 }, T.statuses(T.run("curl -s -i " .. base .. "/missing")))
    os.remove(html)
  end)

  it("app:run shuts down gracefully on SIGTERM: the in-flight request is answered", H.async(function()
    local script = H.tmpfile([[
local aio = require "aloop"
local http = require "aloop.http"
local app = http.App {}
app:get("/slow", function() print("started") io.stdout:flush() aio.sleep(0.3) return "finished" end)
app:on("shutdown", function() print("shutdown hook") end)
app:run { port = 0, shutdown_timeout = 5, ready = function(srv) print(srv:port()) io.stdout:flush() end }
print("run returned")
]])
    local p = aio.create_subprocess_exec(H.bin, script, { stdout = aio.subprocess.PIPE })
    local port = tonumber(T.within(20, p.stdout.readline, p.stdout))
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("GET /slow HTTP/1.1\r\n\r\n")
    assert.equal("started\n", T.within(10, p.stdout.readline, p.stdout)) -- in its handler now
    p:send_signal(aio.signal.SIGTERM)
    local out = T.within(10, r.read, r, -1)
    w:close()
    assert.truthy(out:find("Connection: close\r\n", 1, true))
    assert.truthy(out:find("finished$"))
    local rest = T.within(10, p.stdout.read, p.stdout, -1)
    assert.equal(0, T.within(10, p.wait, p))
    assert.equal("shutdown hook\nrun returned\n", rest)
    os.remove(script)
  end))

  it_fds("cancels requests still running when the shutdown timeout ends", function()
    local srv = T.serve(function() aio.sleep(30) return "never" end)
    local r, w = aio.open_connection("127.0.0.1", srv:port())
    w:write("GET / HTTP/1.1\r\n\r\n")
    H.settle()
    srv:shutdown(0.05)
    assert.equal("", T.within(5, r.read, r, -1))
    w:close()
  end)
end)
