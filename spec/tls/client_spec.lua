-- TLS clients (src/tls/, lua/aloop/net/tls.lua) against peers aloop did not write: openssl
-- s_server and a Python ssl server. Verification on by default (unknown CA, expired,
-- wrong hostname, IP literals, server_hostname = ""), ALPN, every get_extra_info key, 1 MiB both
-- ways, close_notify both ways and truncation, a silent peer (handshake timeout), a peer that
-- vanishes mid-handshake, and a task cancelled in the handshake. No socket is left open.
local aio = require "aloop"
local T = require "spec.tls_helper"

local it_fds = T.it_fds(it)

-- A Python TLS server: prints "PORT n", serves one connection in MODE, prints what it saw.
--   echo       echo until the client's close_notify, then close_notify back ("ECHOED n")
--   truncate   send "partial" and close the TCP connection without close_notify
--   bye        send "bye" and close_notify, then wait for the client's close_notify ("CLEAN")
local PY_SERVER = [[
import socket, ssl, sys
cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if len(sys.argv) > 4:
    ctx.set_alpn_protocols(sys.argv[4].split(","))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print("PORT", srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(20)
tls = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
print("ALPN", tls.selected_alpn_protocol(), flush=True)
if mode == "echo":
    total = 0
    while True:
        d = tls.recv(65536)
        if not d:
            break
        tls.sendall(d)
        total += len(d)
    print("ECHOED", total, flush=True)
    tls.unwrap()
elif mode == "truncate":
    tls.sendall(b"partial")
    conn.shutdown(socket.SHUT_RDWR)
elif mode == "bye":
    tls.sendall(b"bye")
    tls.unwrap()
    print("CLEAN", flush=True)
conn.close()
]]

local function py_server(mode, cert, alpn)
  cert = cert or "server"
  local proc = T.python(PY_SERVER, T.path(cert .. ".pem"), T.path(cert .. ".key"), mode, alpn)
  return proc, tonumber(T.wait_line(proc, "^PORT (%d+)"))
end

local function s_server(cert, extra)
  cert = cert or "server"
  local args = { "-cert", T.path(cert .. ".pem"), "-key", T.path(cert .. ".key") }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return T.s_server(args)
end

-- Asserts that fn raises an error of class cls whose message contains text; returns the error.
local function raises(cls, text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.is_true(aio.iserror(err, cls), tostring(err))
  if text then assert.truthy(tostring(err):find(text, 1, true), tostring(err)) end
  return err
end

describe("TLS client", function()
  setup(function() T.pki() end)

  it_fds("talks to openssl s_server: verified, SNI, extra info", function()
    local proc, port = s_server("server", { "-rev", "-alpn", "h2,http/1.1" })
    local ctx = T.client_ctx()
    ctx:set_alpn_protocols { "http/1.1" }
    local r, w = aio.open_connection("localhost", port, { ssl = ctx })
    w:write("hello\n")
    assert.equal("olleh\n", r:readline())
    assert.equal(ctx, w:get_extra_info("sslcontext"))
    assert.equal("localhost", w:get_extra_info("server_hostname"))
    assert.equal("http/1.1", w:get_extra_info("alpn_protocol"))
    assert.equal("TLSv1.3", w:get_extra_info("tls_version"))
    local cipher = w:get_extra_info("cipher")
    assert.equal("TLSv1.3", cipher.version)
    assert.equal(cipher.name, cipher[1])
    assert.is_true(cipher.bits >= 128)
    local cert = w:get_extra_info("peercert")
    assert.equal("localhost", cert.subject.commonName)
    assert.equal("aloop tests", cert.subject.organizationName)
    assert.equal("aloop test CA", cert.issuer.commonName)
    assert.same({ { "DNS", "localhost" }, { "IP Address", "127.0.0.1" } }, cert.subject_alt_names)
    assert.matches("^%u%l%l [ %d]%d %d%d:%d%d:%d%d %d%d%d%d GMT$", cert.not_before)
    assert.matches("GMT$", cert.not_after)
    assert.matches("^%x+$", cert.serial)
    assert.equal(3, cert.version)
    local der = w:get_extra_info("peercert_der")
    assert.equal(0x30, der:byte(1)) -- an ASN.1 SEQUENCE
    local f = assert(io.open(T.path("server.pem")))
    local pem = f:read("a")
    f:close()
    assert.truthy(#der > 200 and #pem > #der)
    assert.is_table(w:get_extra_info("peername"))
    w:close()
    w:wait_closed()
    T.stop(proc)
  end)

  it_fds("accepts an RSA certificate as well as ECDSA", function()
    local proc, port = s_server("rsa", { "-rev" })
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    w:write("rsa\n")
    assert.equal("asr\n", r:readline())
    assert.equal("localhost", w:get_extra_info("peercert").subject.commonName)
    w:close()
    w:wait_closed()
    T.stop(proc)
  end)

  it_fds("talks to a Python ssl server: 1 MiB both ways, then close_notify both ways", function()
    local proc, port = py_server("echo")
    local r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx() })
    local data = T.payload(1024 * 1024)
    local writer = aio.create_task(function()
      w:write(data)
      w:drain()
    end)
    assert.equal(data, r:readexactly(#data))
    aio.await(writer)
    w:close() -- our close_notify: the peer's recv() ends, it answers with its own
    assert.equal(tostring(#data), T.wait_line(proc, "^ECHOED (%d+)"))
    w:wait_closed()
    assert.equal(0, proc:wait())
  end)

  it_fds("reads to a clean EOF after the peer's close_notify, and answers it on close", function()
    local proc, port = py_server("bye")
    local r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx() })
    assert.equal("bye", r:read(-1)) -- "" after the close_notify, not an error
    assert.is_true(r:at_eof())
    w:close()
    w:wait_closed()
    T.wait_line(proc, "^CLEAN")
    assert.equal(0, proc:wait())
  end)

  it_fds("a TCP close without close_notify is a ConnectionResetError (truncation)", function()
    local proc, port = py_server("truncate")
    local r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx() })
    local err = raises(aio.ConnectionResetError, "without close_notify", r.read, r, -1)
    assert.is_false(aio.iserror(err, aio.SSLError))
    w:close()
    w:wait_closed()
    proc:wait()
  end)

  it_fds("protocols see the truncation as connection_lost(ConnectionResetError)", function()
    local proc, port = py_server("truncate")
    local loop = aio.get_running_loop()
    local lost = loop:create_future()
    local got = {}
    local tr = loop:create_connection(function()
      return {
        data_received = function(_, d) got[#got + 1] = d end,
        connection_lost = function(_, err) lost:set_result(err) end,
      }
    end, "127.0.0.1", port, { ssl = T.client_ctx() })
    local err = aio.await(lost)
    assert.equal("partial", table.concat(got))
    assert.is_true(aio.iserror(err, aio.ConnectionResetError), tostring(err))
    assert.is_true(tr:is_closing())
    proc:wait()
  end)

  it_fds("refuses a certificate from an unknown CA", function()
    local proc, port = s_server("rogue")
    local err = raises(aio.SSLCertVerificationError, "certificate verify failed",
      aio.open_connection, "localhost", port, { ssl = T.client_ctx() })
    assert.is_true(aio.iserror(err, aio.SSLError))
    assert.is_true(aio.iserror(err, aio.OSError))
    assert.equal("CERTIFICATE_VERIFY_FAILED", err.reason)
    assert.equal("SSL", err.library)
    assert.equal(20, err.verify_code) -- X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert.equal("unable to get local issuer certificate", err.verify_message)
    T.stop(proc)
  end)

  it_fds("ssl = true verifies against the system CAs, so the test CA is unknown there", function()
    local proc, port = s_server("server")
    raises(aio.SSLCertVerificationError, "unable to get local issuer certificate",
      aio.open_connection, "localhost", port, { ssl = true })
    T.stop(proc)
  end)

  it_fds("refuses an expired certificate", function()
    local proc, port = s_server("expired")
    local err = raises(aio.SSLCertVerificationError, "certificate has expired",
      aio.open_connection, "localhost", port, { ssl = T.client_ctx() })
    assert.equal(10, err.verify_code)
    assert.equal("certificate has expired", err.verify_message)
    T.stop(proc)
  end)

  it_fds("refuses a certificate for another hostname", function()
    local proc, port = s_server("other")
    local err = raises(aio.SSLCertVerificationError, "Hostname mismatch",
      aio.open_connection, "localhost", port, { ssl = T.client_ctx() })
    assert.equal("Hostname mismatch, certificate is not valid for 'localhost'.", err.verify_message)
    assert.equal(62, err.verify_code)
    T.stop(proc)
  end)

  it_fds("checks an IP literal against the certificate's IP SANs (and sends no SNI)", function()
    local proc, port = s_server("server", { "-rev" })
    local r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx() })
    w:write("ip\n")
    assert.equal("pi\n", r:readline())
    w:close()
    w:wait_closed()
    T.stop(proc)
    proc, port = s_server("other")
    local err = raises(aio.SSLCertVerificationError, "IP address mismatch",
      aio.open_connection, "127.0.0.1", port, { ssl = T.client_ctx() })
    assert.equal("IP address mismatch, certificate is not valid for '127.0.0.1'.",
      err.verify_message)
    T.stop(proc)
  end)

  it_fds("server_hostname names what to check; \"\" checks no name (the chain still)", function()
    local proc, port = s_server("other", { "-rev" })
    local r, w = aio.open_connection("127.0.0.1", port,
      { ssl = T.client_ctx(), server_hostname = "other.example" })
    w:write("a\n")
    assert.equal("a\n", r:readline())
    w:close()
    w:wait_closed()
    T.stop(proc)
    proc, port = s_server("other", { "-rev" })
    r, w = aio.open_connection("127.0.0.1", port, { ssl = T.client_ctx(), server_hostname = "" })
    assert.is_nil(w:get_extra_info("server_hostname"))
    w:close()
    w:wait_closed()
    T.stop(proc)
    proc, port = s_server("rogue")
    raises(aio.SSLCertVerificationError, "unable to get local issuer",
      aio.open_connection, "127.0.0.1", port, { ssl = T.client_ctx(), server_hostname = "" })
    T.stop(proc)
  end)

  it_fds("verify_mode = \"none\" accepts any certificate", function()
    local proc, port = s_server("rogue", { "-rev" })
    local ctx = aio.ssl.create_default_context()
    ctx.check_hostname = false
    ctx.verify_mode = "none"
    local r, w = aio.open_connection("127.0.0.1", port, { ssl = ctx })
    w:write("x\n")
    assert.equal("x\n", r:readline())
    assert.equal("rogue CA", w:get_extra_info("peercert").issuer.commonName)
    w:close()
    w:wait_closed()
    T.stop(proc)
  end)

  it_fds("negotiates ALPN with a Python server, and none when nothing matches", function()
    local proc, port = py_server("echo", "server", "h2,http/1.1")
    local ctx = T.client_ctx()
    ctx:set_alpn_protocols { "http/1.1", "spdy/3" }
    local _, w = aio.open_connection("127.0.0.1", port, { ssl = ctx })
    assert.equal("http/1.1", T.wait_line(proc, "^ALPN (%S+)"))
    assert.equal("http/1.1", w:get_extra_info("alpn_protocol"))
    w:close()
    w:wait_closed()
    proc:wait()
    proc, port = py_server("echo", "server", "h2")
    ctx = T.client_ctx()
    ctx:set_alpn_protocols { "http/1.1" }
    _, w = aio.open_connection("127.0.0.1", port, { ssl = ctx })
    assert.equal("None", T.wait_line(proc, "^ALPN (%S+)"))
    assert.is_nil(w:get_extra_info("alpn_protocol"))
    w:close()
    w:wait_closed()
    proc:wait()
  end)

  it_fds("minimum_version TLSv1.3 against a TLS 1.2-only server fails with an SSLError", function()
    local proc, port = s_server("server", { "-tls1_2" })
    local ctx = T.client_ctx()
    ctx.minimum_version = "TLSv1.3"
    local err = raises(aio.SSLError, nil, aio.open_connection, "localhost", port, { ssl = ctx })
    assert.truthy(err.reason and #err.reason > 0)
    T.stop(proc)
    proc, port = s_server("server", { "-tls1_2", "-rev" })
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    assert.equal("TLSv1.2", w:get_extra_info("tls_version"))
    w:write("12\n")
    assert.equal("21\n", r:readline())
    w:close()
    w:wait_closed()
    T.stop(proc)
  end)

  it_fds("refuses renegotiation (openssl s_server's R command, TLS 1.2)", function()
    local proc, port = s_server("server", { "-tls1_2" })
    local r, w = aio.open_connection("localhost", port, { ssl = T.client_ctx() })
    w:write("before\n")
    T.wait_line(proc, "^before")
    proc.stdin:write("R\n") -- the server asks for a new handshake: we answer no_renegotiation
    T.wait_line(proc, "no renegotiation")
    pcall(r.read, r, -1) -- the server gave up on the connection
    w:close()
    w:wait_closed()
    T.stop(proc)
  end)

  it_fds("a silent peer: the handshake times out with ConnectionAbortedError", function()
    local loop = aio.get_running_loop()
    local server = loop:create_server(function() return {} end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local t0 = loop:time()
    raises(aio.ConnectionAbortedError, "SSL handshake is taking longer than",
      aio.open_connection, "127.0.0.1", port,
      { ssl = T.client_ctx(), ssl_handshake_timeout = 0.2 })
    assert.is_true(loop:time() - t0 >= 0.2)
    server:close()
    server:wait_closed()
  end)

  it_fds("a peer that vanishes mid-handshake: ConnectionResetError", function()
    local loop = aio.get_running_loop()
    local server = loop:create_server(function()
      return {
        connection_made = function(self, tr) self.tr = tr end,
        data_received = function(self) self.tr:close() end, -- reads the ClientHello, leaves
      }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    raises(aio.ConnectionResetError, "during the TLS handshake",
      aio.open_connection, "127.0.0.1", port, { ssl = T.client_ctx() })
    server:close()
    server:wait_closed()
  end)

  it_fds("a plain-text answer instead of a ServerHello is an SSLError", function()
    local loop = aio.get_running_loop()
    local server = loop:create_server(function()
      return {
        connection_made = function(self, tr) self.tr = tr end,
        data_received = function(self) self.tr:write("HTTP/1.1 400 Bad Request\r\n\r\n") end,
      }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local err = raises(aio.SSLError, nil, aio.open_connection, "127.0.0.1", port,
      { ssl = T.client_ctx() })
    assert.equal("WRONG_VERSION_NUMBER", err.reason)
    server:close()
    server:wait_closed()
  end)

  it_fds("cancelling a task waiting in the handshake closes the connection", function()
    local loop = aio.get_running_loop()
    local accepted = loop:create_future()
    local server = loop:create_server(function()
      return { connection_made = function(_, tr) accepted:set_result(tr) end }
    end, "127.0.0.1", 0)
    local port = server.sockets[1]:getsockname()[2]
    local task = aio.create_task(aio.open_connection, "127.0.0.1", port, { ssl = T.client_ctx() })
    local peer = aio.await(accepted)
    task:cancel()
    local ok, err = pcall(aio.await, task)
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.CancelledError), tostring(err))
    peer:close()
    server:close()
    server:wait_closed()
  end)

  it("refuses a server context and bad ssl= values before connecting", function()
    aio.run(function()
      local loop = aio.get_running_loop()
      local sctx = T.server_ctx()
      local ok, err = pcall(loop.create_connection, loop, function() return {} end,
        "127.0.0.1", 1, { ssl = sctx })
      assert.is_false(ok)
      assert.matches("client%-side context", tostring(err))
      ok, err = pcall(loop.create_connection, loop, function() return {} end, "127.0.0.1", 1,
        { ssl = "yes" })
      assert.is_false(ok)
      assert.matches("ssl must be true or an SSLContext", tostring(err))
      ok, err = pcall(loop.create_server, loop, function() return {} end, "127.0.0.1", 0,
        { ssl = true })
      assert.is_false(ok)
      assert.matches("needs a certificate on a server", tostring(err))
    end)
  end)
end)
