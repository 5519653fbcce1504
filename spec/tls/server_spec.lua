-- TLS servers (src/tls/, lua/aloop/net/tls.lua) against clients aloop did not write: openssl
-- s_client, Python's ssl module and curl. SNI choosing a certificate, ALPN, client certificates,
-- 1 MiB both ways, garbage instead of a ClientHello and clients vanishing mid-handshake or
-- mid-stream (the server survives and serves the next client), backpressure with a slow reader
-- (memory stays bounded). No socket is left open.
local aio = require "aloop"
local T = require "spec.tls_helper"

local it_fds = T.it_fds(it)

-- A Python TLS client: sends N bytes, reads them back, then close_notify; prints "OK n".
-- With mode "vanish" it sends N bytes and closes the TCP connection without close_notify.
local PY_CLIENT = [[
import socket, ssl, sys
port, cafile, n, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
tls = ctx.wrap_socket(raw, server_hostname="localhost")
data = bytes((i * 7 + 3) % 256 for i in range(256)) * (n // 256 + 1)
data = data[:n]
if mode == "vanish":
    tls.sendall(data)
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    tls.close()  # an SSLSocket closes without close_notify; linger 0: a reset
    print("GONE", flush=True)
    sys.exit(0)
tls.sendall(data)
got = bytearray()
while len(got) < n:
    d = tls.recv(65536)
    if not d:
        break
    got += d
print("OK" if bytes(got) == data else "BAD", len(got), flush=True)
tls.unwrap()
raw.close()
]]

-- An echo server (streams): echoes until the client's EOF, then closes; records errors.
local function echo_server(opts)
  local errors = {}
  local server = aio.start_server(function(r, w)
    local ok, err = pcall(function()
      while true do
        local d = r:read(65536)
        if d == "" then break end
        w:write(d)
        w:drain()
      end
    end)
    if not ok then errors[#errors + 1] = err end
    w:close()
  end, "127.0.0.1", 0, opts or { ssl = T.server_ctx() })
  return server, server.sockets[1]:getsockname()[2], errors
end

-- Reports to the loop's exception handler, collected.
local function collect_reports()
  local reports = {}
  aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  return reports
end

local function close_server(server)
  server:close()
  server:wait_closed()
end

describe("TLS server", function()
  setup(function() T.pki() end)

  it_fds("serves openssl s_client", function()
    local server, port = echo_server()
    local proc = T.spawn({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-quiet",
      "-CAfile", T.path("ca.pem"), "-verify_return_error", "-verify_hostname", "localhost" })
    proc.stdin:write("ping from s_client\n")
    assert.equal("ping from s_client\n", T.wait_line(proc, "^(ping.*\n)$"))
    T.stop(proc)
    close_server(server)
  end)

  it_fds("serves a Python ssl client 1 MiB both ways, closing on its close_notify", function()
    local reports = collect_reports()
    local server, port, errors = echo_server()
    local proc = T.python(PY_CLIENT, tostring(port), T.path("ca.pem"), tostring(1024 * 1024), "echo")
    assert.equal(tostring(1024 * 1024), T.wait_line(proc, "^OK (%d+)"))
    assert.equal(0, proc:wait())
    close_server(server)
    assert.same({}, errors)
    assert.same({}, reports)
  end)

  it_fds("answers curl --cacert over HTTPS (ALPN http/1.1)", function()
    local sctx = T.server_ctx()
    sctx:set_alpn_protocols { "http/1.1" }
    local alpn
    local server = aio.start_server(function(r, w)
      alpn = w:get_extra_info("alpn_protocol")
      repeat local line = r:readline() until line == "\r\n" or line == ""
      w:write("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, curl\n")
      w:close()
    end, "127.0.0.1", 0, { ssl = sctx })
    local port = server.sockets[1]:getsockname()[2]
    local proc = T.spawn({ "curl", "-sS", "--max-time", "20", "--cacert", T.path("ca.pem"),
      "--resolve", "localhost:" .. port .. ":127.0.0.1", "https://localhost:" .. port .. "/" })
    assert.equal("hello, curl\n", proc.stdout:read(-1))
    assert.equal(0, proc:wait())
    assert.equal("http/1.1", alpn)
    close_server(server)
  end)

  it_fds("picks a certificate by SNI with the servername callback", function()
    local seen = {}
    local sctx, alt = T.server_ctx(), T.server_ctx("alt")
    sctx:set_servername_callback(function(name)
      seen[#seen + 1] = name or "(none)"
      if name == "alt.test" then return alt end
    end)
    local server = aio.start_server(function(r, w)
      w:write(w:get_extra_info("sslcontext") == alt and "alt\n" or "default\n")
      w:close()
    end, "127.0.0.1", 0, { ssl = sctx })
    local port = server.sockets[1]:getsockname()[2]
    local proc = T.spawn({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-quiet",
      "-servername", "alt.test", "-CAfile", T.path("ca.pem"), "-verify_return_error",
      "-verify_hostname", "alt.test" })
    assert.equal("alt", T.wait_line(proc, "^(%a+)\n$"))
    T.stop(proc)
    -- an aloop client: localhost gets the default certificate
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    assert.equal("default\n", r:readline())
    assert.equal("localhost", w:get_extra_info("peercert").subject.commonName)
    w:close()
    w:wait_closed()
    -- and alt.test the other one, checked against that name
    r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx(), server_hostname = "alt.test" })
    assert.equal("alt\n", r:readline())
    w:close()
    w:wait_closed()
    assert.same({ "alt.test", "localhost", "alt.test" }, seen)
    close_server(server)
  end)

  it_fds("a failing servername callback fails that handshake only, and is reported", function()
    local reports = collect_reports()
    local sctx = T.server_ctx()
    local calls = 0
    sctx:set_servername_callback(function(name)
      calls = calls + 1
      if name == "boom.test" then error("no such site") end
      if name == "bad.test" then return "not a context" end
    end)
    local server, port = echo_server { ssl = sctx }
    for _, name in ipairs { "boom.test", "bad.test" } do
      local ok, err = pcall(aio.open_connection, "127.0.0.1", port,
        { ssl = T.client_ctx(), server_hostname = name })
      assert.is_false(ok)
      assert.is_true(aio.iserror(err, aio.SSLError), tostring(err))
    end
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    w:write("still serving\n")
    assert.equal("still serving\n", r:readline())
    w:close()
    w:wait_closed()
    assert.equal(3, calls)
    close_server(server)
    assert.equal(2, #reports)
    assert.equal("Error in the TLS servername callback", reports[1].message)
    assert.matches("no such site", tostring(reports[1].exception))
    assert.matches("must return a server SSLContext or nil", tostring(reports[2].exception))
  end)

  it_fds("survives garbage instead of a ClientHello and serves the next client", function()
    local reports = collect_reports()
    local server, port = echo_server()
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("", r:read(-1)) -- the server hung up (a TLS alert may come first)
    w:close()
    w:wait_closed()
    local proc = T.python(PY_CLIENT, tostring(port), T.path("ca.pem"), "1000", "echo")
    assert.equal("1000", T.wait_line(proc, "^OK (%d+)"))
    proc:wait()
    close_server(server)
    assert.same({}, reports)
  end)

  it_fds("drops a client that never says hello after ssl_handshake_timeout", function()
    local reports = collect_reports()
    local server, port = echo_server { ssl = T.server_ctx(), ssl_handshake_timeout = 0.2 }
    local loop = aio.get_running_loop()
    local t0 = loop:time()
    local r, w = aio.open_connection("127.0.0.1", port)
    assert.equal("", r:read(-1)) -- the server closed on us
    assert.is_true(loop:time() - t0 >= 0.2)
    w:close()
    w:wait_closed()
    close_server(server)
    assert.same({}, reports)
  end)

  it_fds("close() gives up after ssl_shutdown_timeout when the peer reads nothing", function()
    local loop = aio.get_running_loop()
    local lost = loop:create_future()
    local big = T.payload(1024 * 1024)
    local server = loop:create_server(function()
      return {
        connection_made = function(_, tr)
          for _ = 1, 32 do tr:write(big) end -- more than the kernel holds for a stalled peer
          tr:close()
        end,
        connection_lost = function(_, err) lost:set_result(err) end,
      }
    end, "127.0.0.1", 0, { ssl = T.server_ctx(), ssl_shutdown_timeout = 0.2 })
    local port = server.sockets[1]:getsockname()[2]
    local tr = loop:create_connection(function() return {} end, "localhost", port,
      { ssl = T.client_ctx() })
    tr:pause_reading()
    local err = aio.await(lost)
    assert.is_true(aio.iserror(err, aio.ConnectionAbortedError), tostring(err))
    assert.matches("SSL shutdown timed out", tostring(err))
    tr:abort()
    close_server(server)
  end)

  it_fds("survives clients vanishing mid-handshake and mid-stream", function()
    local reports = collect_reports()
    local server, port, errors = echo_server()
    -- mid-handshake: send half a ClientHello, then leave
    local hello = assert(io.open(T.root .. "/spec/fuzz/corpus/tls_record/client_hello", "rb"))
    local bytes = hello:read("a"):sub(3)
    hello:close()
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write(bytes:sub(1, 100))
    w:close()
    w:wait_closed()
    -- mid-stream: a Python client sends, then resets the connection without close_notify
    local proc = T.python(PY_CLIENT, tostring(port), T.path("ca.pem"), "200000", "vanish")
    T.wait_line(proc, "^GONE")
    proc:wait()
    -- the next client is served
    r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    w:write("next\n")
    assert.equal("next\n", r:readline())
    w:close()
    w:wait_closed()
    close_server(server)
    assert.equal(1, #errors)
    assert.is_true(aio.iserror(errors[1], aio.ConnectionResetError), tostring(errors[1]))
    assert.same({}, reports)
  end)

  it_fds("asks for client certificates with verify_mode = \"required\"", function()
    local sctx = T.server_ctx()
    sctx:load_verify_locations(T.path("ca.pem"))
    sctx.verify_mode = "required"
    local server = aio.start_server(function(r, w)
      local cert = w:get_extra_info("peercert")
      w:write((cert and cert.subject.commonName or "anonymous") .. "\n")
      w:close()
    end, "127.0.0.1", 0, { ssl = sctx })
    local port = server.sockets[1]:getsockname()[2]
    local cctx = T.client_ctx()
    cctx:load_cert_chain(T.path("client.pem"), T.path("client.key"))
    local r, w = aio.open_connection("localhost", port, { ssl = cctx })
    assert.equal("aloop client\n", r:readline())
    w:close()
    w:wait_closed()
    -- without a certificate: TLS 1.3 finishes the client's handshake first, then the alert
    local ok, err = pcall(function()
      local r2, w2 = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
      local _ <close> = w2
      return r2:read(-1)
    end)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.SSLError), tostring(err))
    assert.matches("CERTIFICATE_REQUIRED", err.reason)
    close_server(server)
  end)

  it_fds("protocol servers get connection_made after the handshake, cleartext after", function()
    local loop = aio.get_running_loop()
    local events, done = {}, loop:create_future()
    local server = loop:create_server(function()
      return {
        connection_made = function(self, tr)
          self.tr = tr
          events[#events + 1] = "made " .. tr:get_extra_info("tls_version")
        end,
        data_received = function(self, d)
          events[#events + 1] = "data " .. d
          self.tr:write(d:upper())
        end,
        eof_received = function() events[#events + 1] = "eof" end,
        connection_lost = function(_, err)
          events[#events + 1] = "lost " .. tostring(err)
          done:set_result()
        end,
      }
    end, "127.0.0.1", 0, { ssl = T.server_ctx() })
    local port = server.sockets[1]:getsockname()[2]
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    w:write("abc")
    assert.equal("ABC", r:readexactly(3))
    w:close() -- close_notify: the server's protocol sees eof_received, then closes
    aio.await(done)
    assert.same({ "made TLSv1.3", "data abc", "eof", "lost nil" }, events)
    close_server(server)
  end)

  it_fds("Unix sockets take ssl= too (server_hostname names the certificate)", function()
    local path = os.tmpname()
    os.remove(path)
    local server = aio.start_unix_server(function(r, w)
      w:write(r:readline():upper())
      w:close()
    end, path, { ssl = T.server_ctx() })
    local ok, err = pcall(aio.open_unix_connection, path, { ssl = T.client_ctx() })
    assert.is_false(ok)
    assert.matches("server_hostname is required", tostring(err))
    local r, w = aio.open_unix_connection(path, { ssl = T.client_ctx(), server_hostname = "localhost" })
    w:write("unix\n")
    assert.equal("UNIX\n", r:readline())
    assert.equal("TLSv1.3", w:get_extra_info("tls_version"))
    w:close()
    w:wait_closed()
    close_server(server)
  end)

  it_fds("a slow reader: the sender's buffer and the reader's stay bounded", function()
    local total = 8 * 1024 * 1024
    local peak_wbuf = 0
    local sender_done = aio.get_running_loop():create_future()
    local server = aio.start_server(function(_, w)
      local chunk = T.payload(65536)
      for _ = 1, total // #chunk do
        w:write(chunk)
        peak_wbuf = math.max(peak_wbuf, w.transport:get_write_buffer_size())
        w:drain()
      end
      w:close()
      sender_done:set_result()
    end, "127.0.0.1", 0, { ssl = T.server_ctx() })
    local port = server.sockets[1]:getsockname()[2]
    local limit = 65536
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx(), limit = limit })
    local got, peak_rbuf = 0, 0
    while got < total do
      for _ = 1, 3 do aio.sleep(0) end -- a slow consumer: a small read every few iterations
      peak_rbuf = math.max(peak_rbuf, r._buffer:buffered())
      got = got + #r:read(4096)
    end
    assert.equal("", r:read(-1))
    aio.await(sender_done)
    -- one write on top of the high-water mark (plus record overhead), never the whole 8 MiB
    assert.is_true(peak_wbuf <= 65536 + 65536 + 4096, "sender buffered " .. peak_wbuf)
    -- the limit plus one decrypted read from the kernel
    assert.is_true(peak_rbuf <= limit + 65536 + 16384, "reader buffered " .. peak_rbuf)
    w:close()
    w:wait_closed()
    close_server(server)
  end)
end)
