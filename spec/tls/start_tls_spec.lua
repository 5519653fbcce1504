-- start_tls (API.md §12): upgrading a live plain connection, both directions, with streams
-- (writer:start_tls) and protocols (loop:start_tls), against Python's ssl module and between two
-- aloop ends. Bytes that arrived before the upgrade count as ciphertext.
local aio = require "aloop"
local T = require "spec.tls_helper"

local it_fds = T.it_fds(it)

-- A Python peer speaking a STARTTLS dialog: plain "STARTTLS\n" -> "OK\n", then TLS; as the
-- server it echoes one line in TLS, as the client it sends "secret\n" and prints the answer.
local PY_PEER = [[
import socket, ssl, sys
role, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
if role == "server":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a, b)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print("PORT", srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.settimeout(20)
    f = conn.makefile("rb")
    assert f.readline() == b"STARTTLS\n"
    conn.sendall(b"OK\n")
    tls = ctx.wrap_socket(conn, server_side=True)
    line = tls.recv(100)
    tls.sendall(b"echo " + line)
    print("CIPHER", tls.version(), flush=True)
    tls.unwrap()
else:
    ctx = ssl.create_default_context(cafile=b)
    conn = socket.create_connection(("127.0.0.1", int(a)), timeout=20)
    conn.sendall(b"STARTTLS\n")
    assert conn.recv(3) == b"OK\n"
    tls = ctx.wrap_socket(conn, server_hostname="localhost")
    tls.sendall(b"secret\n")
    print("GOT", tls.recv(100).decode().strip(), flush=True)
    tls.unwrap()
conn.close()
]]

describe("start_tls", function()
  setup(function() T.pki() end)

  it_fds("writer:start_tls upgrades a client stream (Python server)", function()
    local proc = T.python(PY_PEER, "server", T.path("server.pem"), T.path("server.key"))
    local port = tonumber(T.wait_line(proc, "^PORT (%d+)"))
    local r, w = aio.open_connection("127.0.0.1", port)
    assert.is_nil(w:get_extra_info("tls_version"))
    w:write("STARTTLS\n")
    assert.equal("OK\n", r:readline())
    w:start_tls(T.client_ctx(), { server_hostname = "localhost" })
    assert.equal("TLSv1.3", w:get_extra_info("tls_version"))
    w:write("hello\n")
    assert.equal("echo hello\n", r:readline())
    assert.equal("TLSv1.3", T.wait_line(proc, "^CIPHER (%S+)"))
    assert.equal("", r:read(-1)) -- the peer's close_notify
    w:close()
    w:wait_closed()
    assert.equal(0, proc:wait())
  end)

  it_fds("writer:start_tls upgrades a server stream (Python client)", function()
    local done = aio.get_running_loop():create_future()
    local server = aio.start_server(function(r, w)
      local ok, err = pcall(function()
        assert.equal("STARTTLS\n", r:readline())
        w:write("OK\n")
        w:start_tls(T.server_ctx(), { server_side = true })
        local line = r:readline()
        w:write("answer to " .. line)
        assert.equal("", r:read(-1))
      end)
      w:close()
      done:set_result(ok, err)
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local proc = T.python(PY_PEER, "client", tostring(port), T.path("ca.pem"))
    assert.equal("answer to secret", T.wait_line(proc, "^GOT (.-)\n?$"))
    assert.equal(0, proc:wait())
    local ok, err = aio.await(done)
    assert.is_true(ok, tostring(err))
    server:close()
    server:wait_closed()
  end)

  it_fds("two aloop ends upgrade; a ClientHello already buffered counts as ciphertext", function()
    local loop = aio.get_running_loop()
    local done = loop:create_future()
    local server = aio.start_server(function(r, w)
      assert.equal("STARTTLS\n", r:readline())
      w:write("OK\n")
      -- wait until the client's ClientHello sits in our reader before upgrading
      while r._buffer:buffered() == 0 do aio.await(r._buffer:wait()) end
      w:start_tls(T.server_ctx(), { server_side = true })
      w:write(r:readline():upper())
      w:close()
      done:set_result()
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local r, w = aio.open_connection("127.0.0.1", port)
    w:write("STARTTLS\n")
    assert.equal("OK\n", r:readline())
    w:start_tls(T.client_ctx(), { server_hostname = "localhost" })
    w:write("quiet\n")
    assert.equal("QUIET\n", r:readline())
    aio.await(done)
    w:close()
    w:wait_closed()
    server:close()
    server:wait_closed()
  end)

  it_fds("loop:start_tls switches a protocol transport; data_received gets cleartext", function()
    local loop = aio.get_running_loop()
    local proc = T.python(PY_PEER, "server", T.path("server.pem"), T.path("server.key"))
    local port = tonumber(T.wait_line(proc, "^PORT (%d+)"))
    local ok_fut, lost = loop:create_future(), loop:create_future()
    local got = {}
    local proto = {
      data_received = function(_, d)
        if d == "OK\n" and not ok_fut:done() then ok_fut:set_result() else got[#got + 1] = d end
      end,
      connection_lost = function(_, err) lost:set_result(err) end,
    }
    local tr = loop:create_connection(function() return proto end, "127.0.0.1", port)
    tr:write("STARTTLS\n")
    aio.await(ok_fut)
    local tls_tr = loop:start_tls(tr, proto, T.client_ctx(), { server_hostname = "localhost" })
    assert.equal("TLSv1.3", tls_tr:get_extra_info("tls_version"))
    tls_tr:write("proto\n")
    T.wait_line(proc, "^CIPHER")
    proc:wait()
    -- Python's unwrap sent close_notify: eof_received (absent) closes our side
    assert.is_nil(aio.await(lost))
    assert.equal("echo proto\n", table.concat(got))
  end)

  it_fds("start_tls on a closing transport or twice is an InvalidStateError", function()
    local loop = aio.get_running_loop()
    local server = aio.start_server(function(r, w)
      r:read(-1)
      w:close()
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local _, w = aio.open_connection("127.0.0.1", port)
    w:close()
    local ok, err = pcall(w.start_tls, w, T.client_ctx(), { server_hostname = "localhost" })
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.InvalidStateError), tostring(err))
    w:wait_closed()
    local ok2, err2 = pcall(loop.start_tls, loop, w.transport, {}, T.client_ctx())
    assert.is_false(ok2)
    assert.matches("server_hostname is required", tostring(err2))
    server:close()
    server:wait_closed()
  end)
end)
