-- aloop.http over TLS: the client against Python's http.server wrapped in ssl and against
-- aloop's own https server; that server against curl --cacert and Python requests /
-- http.client; certificate failures (wrong hostname, unknown CA) from s:get; Session{ssl=false};
-- keep-alive reuse over one handshake; http and https never sharing a pooled connection;
-- redirects between them; an EOF without close_notify after a complete message; a failed
-- handshake that leaves the server serving; app:run{ssl=}.
local aio = require "aloop"
local http = require "aloop.http"
local H = require "spec.helper"
local T = require "spec.http_helper"
local TLS = require "spec.tls_helper"

local it_fds = TLS.it_fds(it)

-- An HTTPS server (Python's http.server in ssl) on an OS port: /hello has a Content-Length and
-- keeps the connection; /close answers Connection: close and closes without close_notify;
-- /until-close has no length (the body ends at the close, again without close_notify).
local PY_HTTPS = [[
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"hello over TLS from python"
        self.send_response(200)
        if self.path == "/until-close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
]]

local function py_https(cert)
  local script = H.tmpfile(PY_HTTPS)
  local peer, port = T.spawn_port(("%s %s %s %s"):format(T.PY, script,
    TLS.path(cert .. ".pem"), TLS.path(cert .. ".key")))
  os.remove(script)
  return peer, port
end

-- An aloop https server: / says hello, /remote tells the client's address (one per connection).
local function aloop_https(cert)
  local app = http.App()
  app:get("/", function() return "hello over TLS from aloop" end)
  app:get("/remote", function(req) return req.remote[1] .. ":" .. req.remote[2] end)
  local srv = http.serve(app, "127.0.0.1", 0, { ssl = TLS.server_ctx(cert) })
  return srv, "https://localhost:" .. srv:port()
end

describe("https", function()
  setup(function() TLS.pki() end)

  it_fds("client: GETs from Python's https server, verified against the test CA", function()
    local peer, port = py_https("server")
    local ok, err = pcall(function()
      local s <close> = http.Session { ssl = TLS.client_ctx() }
      local base = "https://localhost:" .. port
      local r <close> = s:get(base .. "/hello")
      assert.same({ 200, "hello over TLS from python" }, { r.status, r:read() })
      assert.equal(base .. "/hello", r.url)
      -- closed by the server without close_notify after a complete message: a clean end
      local c <close> = s:get(base .. "/close")
      assert.same({ 200, "hello over TLS from python" }, { c.status, c:read() })
      -- a body delimited only by the close: without close_notify it may be truncated
      local u <close> = s:get(base .. "/until-close")
      local rok, rerr = pcall(u.read, u)
      assert.is_false(rok)
      assert.is_true(aio.iserror(rerr, aio.ConnectionResetError), tostring(rerr))
      assert.matches("without close_notify", tostring(rerr))
    end)
    T.stop(peer)
    assert(ok, err)
  end)

  it_fds("client and server: aloop both ends, keep-alive reuse over one handshake", function()
    local srv, base = aloop_https("server")
    local s <close> = http.Session { ssl = TLS.client_ctx() }
    local a <close> = s:get(base .. "/remote")
    local first = a:text()
    local b <close> = s:get(base .. "/remote")
    assert.equal(first, b:text()) -- the same client address: the same TLS connection
    local tr = s.pool.idle["https://localhost:" .. srv:port()][1].tr
    assert.equal("TLSv1.3", tr:get_extra_info("tls_version"))
    assert.equal("localhost", tr:get_extra_info("peercert").subject.commonName)
    assert.equal("hello over TLS from aloop", s:get(base .. "/"):text())
    srv:close()
  end)

  it_fds("server: answers curl --cacert and Python requests / http.client with the CA", function()
    local srv, base = aloop_https("server")
    local ca = TLS.path("ca.pem")
    local out, rc = T.run(("curl -sS --cacert %s %s/ %s/remote"):format(H.q(ca), base, base))
    assert.equal(0, rc, out)
    assert.matches("^hello over TLS from aloop127%.0%.0%.1:%d+$", out)
    out, rc = T.python([[
import sys, requests, http.client, ssl
base, ca = sys.argv[1], sys.argv[2]
with requests.Session() as s:
    a = s.get(base + "/remote", verify=ca).text
    b = s.get(base + "/remote", verify=ca).text
    print(s.get(base + "/", verify=ca).text, a == b)
c = http.client.HTTPSConnection("localhost", int(base.rsplit(":", 1)[1]),
                                context=ssl.create_default_context(cafile=ca))
c.request("GET", "/")
r = c.getresponse()
print(r.status, r.read().decode(), r.getheader("Content-Type"))
]], base .. " " .. H.q(ca))
    assert.equal(0, rc, out)
    assert.equal("hello over TLS from aloop True\n200 hello over TLS from aloop text/plain; charset=utf-8\n", out)
    srv:close()
  end)

  it_fds("client: a wrong hostname and an unknown CA raise SSLCertVerificationError", function()
    local other = aloop_https("other")
    local rogue = aloop_https("rogue")
    local s <close> = http.Session { ssl = TLS.client_ctx() }
    local ok, err = pcall(s.get, s, "https://localhost:" .. other:port() .. "/")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.SSLCertVerificationError), tostring(err))
    assert.matches("^Hostname mismatch", err.verify_message)
    ok, err = pcall(s.get, s, "https://localhost:" .. rogue:port() .. "/")
    assert.is_false(ok)
    assert.is_true(aio.iserror(err, aio.SSLCertVerificationError), tostring(err))
    assert.matches("unable to get local issuer certificate", err.verify_message)
    -- the default session verifies with the system CAs, which do not know the test CA
    local d <close> = http.Session()
    ok, err = pcall(d.get, d, "https://localhost:" .. other:port() .. "/")
    assert.is_true(aio.iserror(err, aio.SSLCertVerificationError), tostring(err))
    -- the failed slots went back: the pool opens connections again
    local good, base = aloop_https("server")
    assert.equal("hello over TLS from aloop", s:get(base .. "/"):text())
    assert.equal(0, s.pool.per_host["https://localhost:" .. other:port()])
    other:close()
    rogue:close()
    good:close()
  end)

  it_fds("client: Session{ssl=false} talks to a self-signed server without verifying", function()
    local dir = TLS.pki()
    H.sh(("env -u LD_PRELOAD openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
      "-nodes -keyout %s/self.key -out %s/self.pem -days 2 -subj /CN=self.test 2>&1"):format(dir, dir))
    local peer, port = py_https("self")
    local ok, err = pcall(function()
      local s <close> = http.Session { ssl = false }
      local r <close> = s:get("https://127.0.0.1:" .. port .. "/hello")
      assert.same({ 200, "hello over TLS from python" }, { r.status, r:read() })
      local v <close> = http.Session { ssl = TLS.client_ctx() }
      local vok, verr = pcall(v.get, v, "https://127.0.0.1:" .. port .. "/hello")
      assert.is_false(vok)
      assert.is_true(aio.iserror(verr, aio.SSLCertVerificationError), tostring(verr))
    end)
    T.stop(peer)
    assert(ok, err)
  end)

  it_fds("bad ssl= values are refused with a clear error, client and server", function()
    local ok, err = pcall(http.Session, { ssl = "yes" })
    assert.is_false(ok)
    assert.matches("ssl must be a client SSLContext or false", err)
    ok, err = pcall(http.Session, { ssl = TLS.server_ctx() })
    assert.is_false(ok)
    assert.matches("ssl must be a client SSLContext or false", err)
    ok, err = pcall(http.serve, function() return "x" end, "127.0.0.1", 0, { ssl = true })
    assert.is_false(ok)
    assert.matches("ssl = true needs a certificate on a server", err)
    ok, err = pcall(http.serve, function() return "x" end, "127.0.0.1", 0, { ssl = TLS.client_ctx() })
    assert.is_false(ok)
    assert.matches("ssl needs a server%-side context", err)
  end)

  it_fds("client: http and https to one host never share a connection; redirects cross", function()
    local tls_srv, tls_base = aloop_https("server")
    local plain = http.App()
    plain:get("/to-https", function() return http.redirect(tls_base .. "/remote") end)
    plain:get("/remote", function(req) return "plain " .. req.remote[2] end)
    local plain_srv, plain_base = T.serve(plain)
    local tls_app_port = tls_srv:port()
    local back = http.App()
    back:get("/to-http", function() return http.redirect(plain_base .. "/remote") end)
    local back_srv = http.serve(back, "127.0.0.1", 0, { ssl = TLS.server_ctx() })
    local s <close> = http.Session { ssl = TLS.client_ctx() }
    local r <close> = s:get(plain_base .. "/to-https")
    assert.equal(200, r.status)
    assert.matches("^127%.0%.0%.1:%d+$", r:text())
    assert.same({ 302 }, { r.history[1].status })
    assert.equal(tls_base .. "/remote", r.url)
    local b <close> = s:get("https://localhost:" .. back_srv:port() .. "/to-http")
    assert.matches("^plain %d+$", b:text())
    -- plain HTTP to the TLS port: a separate pool key, and no TLS connection handed out
    local ok, err = pcall(s.get, s, "http://localhost:" .. tls_app_port .. "/remote")
    assert.is_false(ok)
    assert.is_not_nil(err)
    assert.equal(1, #s.pool.idle["https://localhost:" .. tls_app_port])
    assert.equal(0, s.pool.per_host["http://localhost:" .. tls_app_port])
    plain_srv:close()
    back_srv:close()
    tls_srv:close()
  end)

  it_fds("server: a failed handshake ends that connection only; the server keeps serving", function()
    local srv, base = aloop_https("server")
    local port = srv:port()
    -- plain HTTP to the TLS port, then garbage, then a client that does not trust the CA:
    -- a failure is logged (at debug level, as asyncio) and ends that connection only
    local records = H.capture_log(function()
      aio.log.set_level("debug")
      local out = T.raw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.is_true(#out < 100) -- at most a TLS alert, never an HTTP answer
      T.raw(port, ("\22\3\1\0\5garbage"):rep(3))
    end)
    local failures = 0
    for _, rec in ipairs(records) do
      if rec.msg:find("TLS handshake failed", 1, true) then failures = failures + 1 end
    end
    assert.equal(2, failures) -- logged before the server closed those connections
    local curl_out, rc = T.run("curl -sS " .. base .. "/")
    assert.not_equal(0, rc, curl_out)
    local s <close> = http.Session { ssl = TLS.client_ctx() }
    assert.equal("hello over TLS from aloop", s:get(base .. "/"):text())
    srv:close()
  end)

  it_fds("server: app:run{ssl=} serves https until SIGTERM", function()
    local script = H.tmpfile(([[
      local aio = require "aloop"
      local http = require "aloop.http"
      local ctx = aio.ssl.create_default_context("server")
      ctx:load_cert_chain(%q, %q)
      local app = http.App()
      app:get("/", function() return "hello from app:run" end)
      app:run { port = 0, ssl = ctx, shutdown_timeout = 5,
        ready = function(srv) print(srv:port()) io.stdout:flush() end }
      print("stopped")
    ]]):format(TLS.path("server.pem"), TLS.path("server.key")))
    local p, port = T.spawn_port(H.bin .. " " .. script)
    local out, rc = T.run(("curl -sS --cacert %s https://localhost:%d/"):format(
      H.q(TLS.path("ca.pem")), port))
    T.stop(p)
    os.remove(script)
    assert.equal(0, rc, out)
    assert.equal("hello from app:run", out)
    assert.equal("stopped\n", p.stdout:read(-1))
    assert.equal(0, p.returncode)
  end)
end)
