-- The C half of aloop.http (src/http/): the parser's events for pipelined, chunked and
-- malformed messages, its limits, and the head serialisers.
require "aloop"
local core = require "aloop.core"
local P = core._http

local function parse(data, opts)
  local p = P.parser("request", opts or {})
  return p:feed(data)
end

describe("http parser", function()
  it("parses a pipelined batch in one call, bodies folded into their heads", function()
    local ev, err = parse("GET /a%20b?x=1&y HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2 \r\n\r\n" ..
      "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.0\r\n\r\n")
    assert.is_nil(err)
    assert.equal(3, #ev)
    assert.same({ "GET", "/a%20b?x=1&y", "/a b", "x=1&y", "1.1", true },
      { ev[1].method, ev[1].target, ev[1].path, ev[1].query_string, ev[1].version, ev[1].keep_alive })
    assert.equal("1, 2", ev[1].headers["x-a"])
    assert.same({ "1", "2" }, ev[1].headers._multi["x-a"])
    assert.equal("h", ev[1].headers.host)
    assert.equal("abc", ev[2]._body)
    assert.equal("abc", ev[2]._body)
    assert.same({ "1.0", false }, { ev[3].version, ev[3].keep_alive })
  end)

  it("keeps raw headers on demand (raw_headers) and builds them with _http.headers", function()
    local ev = parse("GET / HTTP/1.1\r\nX-A: 1\r\nHost: h  \r\nx-a: 2\r\n\r\n", { raw_headers = true })
    assert.is_nil(ev[1].headers)
    assert.equal("x-a\0001\0host\0h\0x-a\0002\0", ev[1]._raw)
    local h = P.headers(ev[1]._raw, require("aloop.http.headers").mt)
    assert.same({ "1, 2", "h", "h" }, { h["x-a"], h.host, h.Host })
    assert.same({ "1", "2" }, h:get_all("X-A"))
  end)

  it("streams a body that spans chunks: head, pieces, then true", function()
    local p = P.parser("request", {})
    local ev = p:feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
    assert.equal(2, #ev)
    assert.is_nil(ev[1]._body)
    assert.equal("ab", ev[2])
    assert.is_false(p:idle())
    ev = p:feed("c\r\n0\r\n\r\n")
    assert.same({ "c", true }, ev)
    assert.is_true(p:idle())
  end)

  it("refuses request smuggling pairs and bad framing", function()
    local bad = {
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
      "GET / HTTP/1.1\r\n\x01x: y\r\n\r\n",
      "GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n",
      "GET /\x7f HTTP/1.1\r\n\r\n",
      "\0\1\2\3garbage\r\n\r\n",
    }
    for _, msg in ipairs(bad) do
      local _, err = parse(msg)
      assert.is_string(err, msg)
    end
  end)

  it("reports the limits as its own codes", function()
    local _, err = parse("GET / HTTP/1.1\r\nX: " .. ("a"):rep(200) .. "\r\n\r\n", { max_header_size = 100 })
    assert.equal("header_too_large", err)
    _, err = parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", { max_headers = 2 })
    assert.equal("too_many_headers", err)
    _, err = parse("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", { max_body = 10 })
    assert.equal("body_too_large", err)
    _, err = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n",
      { max_body = 10 })
    assert.equal("body_too_large", err)
  end)

  it("stays dead after an error", function()
    local p = P.parser("request", {})
    local _, err = p:feed("BAD\r\n\r\n")
    assert.is_string(err)
    local ev, err2 = p:feed("GET / HTTP/1.1\r\n\r\n")
    assert.same({}, ev)
    assert.equal(err, err2)
  end)

  it("parses responses, HEAD answers and bodies that end with the connection", function()
    local p = P.parser("response", {})
    p:skip_body()
    local ev = p:feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert.same({ 200, "OK", "" }, { ev[1].status, ev[1].reason, ev[1]._body })
    ev = p:feed("HTTP/1.0 200 Fine\r\n\r\nhello")
    assert.equal(2, #ev)
    assert.equal("hello", ev[2])
    assert.same({ true }, p:feed(nil))
  end)

  it("methods refuse a value that is not a parser", function()
    local p = P.parser("request", {})
    for _, call in ipairs {
      { p.feed, 42, "GET / HTTP/1.1\r\n\r\n" },
      { p.idle, io.stdout },
      { p.skip_body, {} },
    } do
      local ok, err = pcall(table.unpack(call))
      assert.is_false(ok)
      assert.matches("aloop.http.Parser expected, got ", tostring(err), 1, true)
    end
    assert.is_true(p:idle())
  end)
end)

describe("http serialisers", function()
  it("writes a response head with its body in one string", function()
    local s = P.response(200, { ["X-Y"] = { "a", "b" }, n = 5 }, "hello", 0, "Keep-Alive: timeout=5\r\n")
    assert.truthy(s:find("^HTTP/1.1 200 OK\r\n"))
    assert.truthy(s:find("\r\nContent-Length: 5\r\n", 1, true))
    assert.truthy(s:find("\r\nX-Y: a\r\nX-Y: b\r\n", 1, true))
    assert.truthy(s:find("\r\nn: 5\r\n", 1, true))
    assert.truthy(s:find("\r\nKeep-Alive: timeout=5\r\n", 1, true))
    assert.truthy(s:find("\r\n\r\nhello$"))
  end)

  it("keeps HEAD answers and 204/304 without a body", function()
    local s = P.response(200, nil, "hello", 1 | 8)
    assert.truthy(s:find("Content-Length: 5\r\n", 1, true))
    assert.truthy(s:find("Connection: close\r\n", 1, true))
    assert.truthy(s:find("\r\n\r\n$"))
    s = P.response(204, nil, "", 0)
    assert.falsy(s:find("Content-Length", 1, true))
  end)

  it("refuses CR/LF in names and values (no response splitting)", function()
    assert.has_error(function() P.response(200, { x = "a\r\nSet-Cookie: evil" }, "", 0) end)
    assert.has_error(function() P.response(200, { ["x\ny"] = "a" }, "", 0) end)
    assert.has_error(function() P.request("GET", "/ HTTP/1.1\r\n", "h", nil, nil, nil) end)
    assert.has_error(function() P.response(42, nil, "", 0) end)
  end)

  it("writes request heads, the request's headers over the session's", function()
    local s = P.request("POST", "/x?y", "h:81", { Accept = "a" }, { accept = "b", ["x-d"] = "d" }, "body")
    assert.truthy(s:find("^POST /x%?y HTTP/1.1\r\nHost: h:81\r\n"))
    assert.truthy(s:find("\r\nAccept: a\r\n", 1, true))
    assert.falsy(s:find("accept: b", 1, true))
    assert.truthy(s:find("\r\nx-d: d\r\n", 1, true))
    assert.truthy(s:find("\r\nContent-Length: 4\r\n", 1, true))
    assert.truthy(s:find("\r\n\r\nbody$"))
    s = P.request("PUT", "/", "h", nil, nil, true)
    assert.truthy(s:find("Transfer-Encoding: chunked\r\n", 1, true))
    assert.equal("5\r\nhello\r\n", P.chunk("hello"))
  end)
end)
