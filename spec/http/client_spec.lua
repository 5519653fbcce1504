-- aloop.http's client against real servers (Python's http.server, an aiohttp server, nginx)
-- and aloop's own server: bodies, chunked responses, redirects, the pool (FIFO waiters, pool
-- timeout, reuse only of fully read connections, stale connections retried), timeouts.
local aio = require "aloop"
local http = require "aloop.http"
local H = require "spec.helper"
local T = require "spec.http_helper"
local it_fds = require("spec.net_helper").it_fds(it)

local AIOHTTP_SERVER = [[
import asyncio, sys
from aiohttp import web
async def hello(req): return web.Response(text="hello from aiohttp")
async def echo(req): return web.json_response({"method": req.method, "body": (await req.read()).decode()})
async def chunked(req):
    r = web.StreamResponse()
    r.enable_chunked_encoding()
    await r.prepare(req)
    for i in range(5):
        await r.write(b"piece %d;" % i)
    await r.write_eof()
    return r
async def see_other(req): raise web.HTTPSeeOther("/echo")
async def loop_(req): raise web.HTTPFound("/loop")
async def hops(req):
    n = int(req.match_info["n"])
    if n == 0: raise web.HTTPFound("/hello")
    raise web.HTTPTemporaryRedirect("/hops/%d" % (n - 1))
app = web.Application()
app.add_routes([web.get("/hello", hello), web.route("*", "/echo", echo), web.get("/chunked", chunked),
                web.post("/see-other", see_other), web.get("/loop", loop_), web.get("/hops/{n}", hops)])
async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
]]

describe("http client", function()
  it_fds("talks to an aiohttp server: chunked bodies, JSON, redirects", function()
    local script = H.tmpfile(AIOHTTP_SERVER)
    local peer, port = T.spawn_port(T.PY .. " " .. script)
    local ok, err = pcall(function()
      local s <close> = http.Session { base_url = "http://127.0.0.1:" .. port }
      local r <close> = s:get("/hello")
      assert.same({ 200, "OK", "1.1", "hello from aiohttp" }, { r.status, r.reason, r.version, r:read() })
      assert.equal("text/plain; charset=utf-8", r.headers["Content-Type"])
      local c = s:get("/chunked")
      assert.equal("chunked", c.headers["transfer-encoding"])
      local pieces = {}
      for chunk in c:chunks(4) do pieces[#pieces + 1] = chunk end
      assert.equal("piece 0;piece 1;piece 2;piece 3;piece 4;", table.concat(pieces))
      assert.is_true(#pieces >= 10)
      local j = s:post("/echo", { json = { a = 1 } }):json()
      assert.same({ method = "POST", body = '{"a":1}' }, j)
      local rd = s:post("/see-other", { body = "data" })
      assert.same({ 200, 1, 303 }, { rd.status, #rd.history, rd.history[1].status })
      assert.same({ method = "GET", body = "" }, rd:json())
      local hops = s:get("/hops/3")
      assert.same({ 200, 4, "hello from aiohttp" }, { hops.status, #hops.history, hops:read() })
      local e = select(2, pcall(s.get, s, "/loop"))
      assert.is_true(aio.iserror(e, http.TooManyRedirects))
      assert.equal(10, #e.history)
      local nr = s:get("/hops/1", { allow_redirects = false })
      assert.same({ 307, "/hops/0" }, { nr.status, nr.headers.location })
      nr:close()
    end)
    T.stop(peer)
    os.remove(script)
    if not ok then error(err, 0) end
  end)

  it_fds("downloads from Python's http.server (HTTP/1.0, body until close)", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/data.bin", "wb"))
    local blob = ("0123456789abcdef"):rep(65536)
    f:write(blob)
    f:close()
    local peer, port = T.spawn_port("sh -c " .. H.q("cd " .. dir ..
      " && exec " .. T.PY .. " -u -c 'import http.server as h, socketserver as s\n" ..
      "srv = h.ThreadingHTTPServer((\"127.0.0.1\", 0), h.SimpleHTTPRequestHandler)\n" ..
      "print(srv.server_address[1], flush=True)\nsrv.serve_forever()' 2>/dev/null"))
    local ok, err = pcall(function()
      local r <close> = http.get(("http://127.0.0.1:%d/data.bin"):format(port))
      assert.equal(200, r.status)
      local n = r:save(dir .. "/copy.bin")
      assert.equal(#blob, n)
      local g = assert(io.open(dir .. "/copy.bin", "rb"))
      assert.is_true(g:read("a") == blob)
      g:close()
      local missing = http.get(("http://127.0.0.1:%d/missing"):format(port))
      assert.equal(404, missing.status)
      assert.is_true(aio.iserror(select(2, pcall(missing.raise_for_status, missing)), http.HTTPError))
      missing:close()
    end)
    T.stop(peer)
    os.execute("rm -rf " .. dir)
    if not ok then error(err, 0) end
  end)

  it_fds("reuses keep-alive connections to nginx, HEAD included", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local peer, port = T.nginx(dir, [[location / { return 200 "hi from nginx"; }
      location /gone { return 302 /; }]])
    local ok, err = pcall(function()
      local s <close> = http.Session { limit_per_host = 4 }
      local base = "http://127.0.0.1:" .. port
      local tasks = {}
      for i = 1, 40 do tasks[i] = aio.create_task(function() return s:get(base .. "/x"):read() end) end
      local results = aio.gather(tasks)
      for i = 1, 40 do assert.equal("hi from nginx", results[i]) end
      assert.is_true(s.pool.count <= 4)
      local h = s:head(base .. "/")
      assert.same({ 200, "" }, { h.status, h:read() })
      assert.equal("13", h.headers["content-length"])
      assert.equal("hi from nginx", s:get(base .. "/gone"):read())
    end)
    T.stop(peer)
    os.execute("rm -rf " .. dir)
    if not ok then error(err, 0) end
  end)

  it_fds("waits in FIFO order for a full pool; only the pool timeout ends a wait", function()
    local app = http.App {}
    local order = {}
    app:get("/<n:int>", function(_, n) order[#order + 1] = n aio.sleep(0.01) return tostring(n) end)
    local hold = aio.get_running_loop():create_future()
    app:get("/hold", function(req)
      local w <close> = req:respond {}
      w:write("part")
      aio.await(hold)
    end)
    local srv <close>, base = T.serve(app)
    local s <close> = http.Session { limit = 1 }
    local tasks = {}
    for i = 1, 6 do tasks[i] = aio.create_task(function() return s:get(base .. "/" .. i):read() end) end
    local results = aio.gather(tasks)
    assert.same({ "1", "2", "3", "4", "5", "6" }, { table.unpack(results, 1, 6) })
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)
    local held = s:get(base .. "/hold") -- body not read to its end: the connection stays taken
    local e = select(2, pcall(s.get, s, base .. "/8", { timeout = { pool = 0.05 } }))
    assert.is_true(aio.iserror(e, aio.TimeoutError), tostring(e))
    assert.truthy(tostring(e):find("pool", 1, true))
    held:close() -- unread: closed, not pooled
    assert.equal(0, s.pool.count)
    hold:set_result()
    assert.equal("9", s:get(base .. "/9"):read())
  end)

  it_fds("read timeout is the longest gap; total covers everything", function()
    local app = http.App {}
    app:get("/drip", function(req)
      local w <close> = req:respond {}
      for _ = 1, 8 do w:write("x") aio.sleep(0.03) end
    end)
    app:get("/stall", function(req)
      local w <close> = req:respond {}
      w:write("a")
      aio.sleep(5)
    end)
    local srv <close>, base = T.serve(app)
    local s <close> = http.Session { timeout = { read = 5 } }
    assert.equal("xxxxxxxx", s:get(base .. "/drip"):read()) -- 0.24 s in all, gaps of 0.03 s
    local r = s:get(base .. "/stall", { timeout = { read = 0.1 } })
    local e = select(2, pcall(r.read, r))
    assert.is_true(aio.iserror(e, aio.TimeoutError))
    assert.truthy(tostring(e):find("read", 1, true))
    r:close()
    e = select(2, pcall(function() return s:get(base .. "/drip", { timeout = 0.1 }):read() end))
    assert.is_true(aio.iserror(e, aio.TimeoutError))
    assert.truthy(tostring(e):find("total", 1, true))
    srv:shutdown(0)
  end)

  it_fds("retries an idempotent request once when a pooled connection went stale", function()
    local nconn = 0
    local server = aio.start_server(function(r, w)
      nconn = nconn + 1
      local id, served = nconn, 0
      while true do
        local ok = pcall(r.readuntil, r, "\r\n\r\n")
        if not ok then break end
        if id == 1 and served == 1 then break end -- a keep-alive connection the server dropped
        w:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        served = served + 1
      end
      w:close()
    end, "127.0.0.1", 0)
    local base = "http://127.0.0.1:" .. server.sockets[1]:getsockname()[2]
    local s = http.Session {}
    assert.equal("ok", s:get(base .. "/a"):read())
    assert.equal("ok", s:get(base .. "/b"):read()) -- sent on the dropped one, then retried
    assert.equal(2, nconn)
    s:close()
    H.settle()
    server:close()
    server:wait_closed()
  end)

  it_fds("sends string, file, iterator, json and form bodies; reads lines", function()
    local app = http.App {}
    app:route("/echo", function(req)
      return http.json { te = req.headers["transfer-encoding"], len = req.headers["content-length"],
        type = req.headers["content-type"], body = req:body() }
    end, { methods = { "POST", "PUT" } })
    app:get("/lines", function() return "one\ntwo\r\nthree" end)
    local srv <close>, base = T.serve(app)
    local s <close> = http.Session { base_url = base, headers = { ["x-session"] = "1" } }
    local v = s:post("/echo", { body = "plain" }):json()
    assert.same({ "5", "plain" }, { v.len, v.body })
    local path = H.tmpfile("from a file")
    local f = assert(io.open(path, "rb"))
    v = s:put("/echo", { body = f }):json()
    f:close()
    os.remove(path)
    assert.same({ "11", "from a file" }, { v.len, v.body })
    local parts = { "it", "er", "ator" }
    local i = 0
    v = s:post("/echo", { body = function() i = i + 1 return parts[i] end }):json()
    assert.same({ "chunked", "iterator" }, { v.te, v.body })
    v = s:post("/echo", { json = { 1, 2 } }):json()
    assert.same({ "application/json", "[1,2]" }, { v.type, v.body })
    v = s:post("/echo", { form = { a = "x y", b = "&" } }):json()
    assert.same({ "application/x-www-form-urlencoded", "a=x%20y&b=%26" }, { v.type, v.body })
    local lines = {}
    for line in s:get("/lines", { params = { q = 1 } }):lines() do lines[#lines + 1] = line end
    assert.same({ "one", "two", "three" }, lines)
  end)

  it("refuses https:// clearly until aio.ssl exists, and bad URLs", H.async(function()
    local e = select(2, pcall(http.get, "https://127.0.0.1:1/"))
    assert.truthy(tostring(e):find("aio.ssl", 1, true))
    e = select(2, pcall(http.get, "ftp://x/"))
    assert.truthy(tostring(e):find("scheme", 1, true))
    e = select(2, pcall(http.get, "/relative"))
    assert.truthy(tostring(e):find("absolute", 1, true))
  end))

  it_fds("raises ProtocolError on a malformed or truncated response", function()
    local replies = { "garbage\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" }
    local i = 0
    local server = aio.start_server(function(r, w)
      i = i + 1
      r:readuntil("\r\n\r\n")
      w:write(replies[i])
      w:close()
    end, "127.0.0.1", 0)
    local base = "http://127.0.0.1:" .. server.sockets[1]:getsockname()[2]
    local s <close> = http.Session {}
    local e = select(2, pcall(s.get, s, base))
    assert.is_true(aio.iserror(e, http.ProtocolError), tostring(e))
    local r = s:get(base)
    e = select(2, pcall(r.read, r))
    assert.is_true(aio.iserror(e, http.ProtocolError), tostring(e))
    server:close()
    server:wait_closed()
  end)
end)
