-- The TLS examples run with the aloop interpreter against local peers, their output checked:
-- https_headers.lua (seed 000 "Get HTTP headers" with ssl = true) against a Python HTTPS server,
-- tls_echo_server.lua + tls_echo_client.lua, and start_tls.lua.
local aio = require "aloop"
local H = require "spec.helper"
local T = require "spec.tls_helper"

local it_fds = T.it_fds(it)

-- An HTTPS server answering one HEAD request, then close_notify (unwrap).
local PY_HTTPS = [[
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Served-By", "python-https")
        self.end_headers()
    def finish(self):
        super().finish()
        self.connection.unwrap()
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("PORT", srv.server_address[1], flush=True)
srv.handle_request()
]]

-- Runs examples/NAME.lua with the interpreter (args: a list) as a subprocess in this task;
-- env: extra "NAME=value" strings. Returns the process (stdout piped, stderr merged).
local function example(name, args, env)
  local argv = { "env" }
  for _, e in ipairs(env or {}) do argv[#argv + 1] = e end
  argv[#argv + 1] = H.bin
  argv[#argv + 1] = H.root .. "/examples/" .. name .. ".lua"
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = { stdout = aio.subprocess.PIPE, stderr = aio.subprocess.STDOUT }
  return aio.create_subprocess_exec(table.unpack(argv))
end

local function lines(proc)
  local out = proc.stdout:read(-1)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t, out
end

describe("TLS examples", function()
  setup(function() T.pki() end)

  it_fds("https_headers: HEAD over TLS, verified with SSL_CERT_FILE", function()
    local server = T.python(PY_HTTPS, T.path("server.pem"), T.path("server.key"))
    local port = T.wait_line(server, "^PORT (%d+)")
    local proc = example("https_headers", { "https://localhost:" .. port .. "/" },
      { "SSL_CERT_FILE=" .. T.path("ca.pem") })
    local got, out = lines(proc)
    assert.equal(0, proc:wait(), out)
    assert.equal("HTTP header> HTTP/1.0 200 OK", got[1])
    local names = {}
    for _, l in ipairs(got) do names[#names + 1] = l:match("^HTTP header> ([%w-]+):") end
    table.sort(names)
    assert.same({ "Content-Type", "Date", "Server", "X-Served-By" }, names)
    assert.equal(0, server:wait())
  end)

  it_fds("https_headers: an untrusted certificate fails with the verification reason", function()
    local server = T.python(PY_HTTPS, T.path("server.pem"), T.path("server.key"))
    local port = T.wait_line(server, "^PORT (%d+)")
    local proc = example("https_headers", { "https://localhost:" .. port .. "/" })
    local _, out = lines(proc)
    assert.equal(1, proc:wait())
    assert.matches("SSLCertVerificationError: %[SSL: CERTIFICATE_VERIFY_FAILED%] certificate " ..
      "verify failed: unable to get local issuer certificate", out)
    T.stop(server)
  end)

  it_fds("tls_echo_server + tls_echo_client", function()
    local server = example("tls_echo_server", { T.path("server.pem"), T.path("server.key"), "0", "1" })
    local port = T.wait_line(server, "^Serving TLS on 127%.0%.0%.1:(%d+)")
    local client = example("tls_echo_client", { T.path("ca.pem"), port })
    local got, out = lines(client)
    assert.equal(0, client:wait(), out)
    assert.same({ "Connected to localhost (issued by aloop test CA) over TLSv1.3",
      "Send: 'Hello TLS!'", "Received: 'Hello TLS!'", "Close the connection" }, got)
    local sgot, sout = lines(server)
    assert.equal(0, server:wait(), sout)
    assert.same({ "Received 'Hello TLS!' over TLSv1.3", "Close the client connection" }, sgot)
  end)

  it_fds("start_tls: a plain greeting, then TLS on the same connection", function()
    local proc = example("start_tls", { T.path("server.pem"), T.path("server.key"), T.path("ca.pem") })
    local got, out = lines(proc)
    assert.equal(0, proc:wait(), out)
    assert.same({ "client got: 220 ready", "server got: STARTTLS", "client got: 220 go ahead",
      "client verified: localhost", "server got over TLSv1.3: the password",
      "client got: 250 secret received" }, got)
  end)
end)
