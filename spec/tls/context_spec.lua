-- aio.ssl contexts (src/tls/context.c): the defaults of create_default_context for each side,
-- the fields, loading certificates and CAs (files, cadata, passwords) and the clear errors for
-- bad input. No connection is made here.
local aio = require "aloop"
local H = require "spec.helper"
local T = require "spec.tls_helper"

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.matches(pattern, tostring(err))
  return err
end

describe("aio.ssl contexts", function()
  setup(function() T.pki() end)

  it("a client context verifies the peer and its name, TLS 1.2 at least", function()
    local ctx = aio.ssl.create_default_context()
    assert.is_true(ctx.check_hostname)
    assert.equal("required", ctx.verify_mode)
    assert.equal("TLSv1.2", ctx.minimum_version)
    assert.is_nil(ctx.maximum_version)
    assert.is_false(ctx.server_side)
    assert.matches("^<aloop.SSLContext client", tostring(ctx))
    assert.is_false(aio.ssl.create_default_context("client").server_side)
  end)

  it("a server context asks no client certificate", function()
    local ctx = aio.ssl.create_default_context("server")
    assert.is_false(ctx.check_hostname)
    assert.equal("none", ctx.verify_mode)
    assert.is_true(ctx.server_side)
    raises("invalid option 'both'", aio.ssl.create_default_context, "both")
  end)

  it("fields are checked as Python's SSLContext does", function()
    local ctx = aio.ssl.create_default_context()
    raises("Cannot set verify_mode to \"none\" when check_hostname is enabled", function()
      ctx.verify_mode = "none"
    end)
    ctx.check_hostname = false
    ctx.verify_mode = "none"
    assert.equal("none", ctx.verify_mode)
    ctx.check_hostname = true -- turns verification back on
    assert.equal("required", ctx.verify_mode)
    ctx.minimum_version = "TLSv1.3"
    assert.equal("TLSv1.3", ctx.minimum_version)
    ctx.maximum_version = "TLSv1.3"
    assert.equal("TLSv1.3", ctx.maximum_version)
    ctx.maximum_version = nil
    assert.is_nil(ctx.maximum_version)
    raises("invalid option 'SSLv3'", function() ctx.minimum_version = "SSLv3" end)
    raises("invalid option 'sometimes'", function() ctx.verify_mode = "sometimes" end)
    raises("has no field 'verify'", function() ctx.verify = true end)
    raises("boolean expected", function() ctx.check_hostname = "yes" end)
  end)

  it("loads a certificate chain, with the key in the same or another file", function()
    local ctx = aio.ssl.create_default_context("server")
    ctx:load_cert_chain(T.path("server.pem"), T.path("server.key"))
    ctx:load_cert_chain(T.path("rsa.pem"), T.path("rsa.key"))
    local both = H.tmpfile(io.open(T.path("server.pem")):read("a") ..
      io.open(T.path("server.key")):read("a"))
    ctx:load_cert_chain(both)
    os.remove(both)
  end)

  it("an encrypted key needs its password (a string or a function)", function()
    local key = T.path("server.key")
    local enc = T.pki() .. "/encrypted.key"
    H.sh(("env -u LD_PRELOAD openssl pkey -in %s -aes128 -passout pass:s3cret -out %s"):format(H.q(key), H.q(enc)))
    local ctx = aio.ssl.create_default_context("server")
    ctx:load_cert_chain(T.path("server.pem"), enc, "s3cret")
    ctx:load_cert_chain(T.path("server.pem"), enc, function() return "s3cret" end)
    local err = raises("SSLError", ctx.load_cert_chain, ctx, T.path("server.pem"), enc, "wrong")
    assert.is_true(aio.iserror(err, aio.SSLError))
    raises("password must be a string", ctx.load_cert_chain, ctx, T.path("server.pem"), enc,
      function() error("no") end)
    raises("string or function expected", ctx.load_cert_chain, ctx, T.path("server.pem"), enc, {})
  end)

  it("bad certificate files are clear errors", function()
    local ctx = aio.ssl.create_default_context("server")
    local err = raises("No such file or directory", ctx.load_cert_chain, ctx, "/nonexistent.pem")
    assert.is_true(aio.iserror(err, aio.OSError))
    assert.equal(2, err.errno)
    local junk = H.tmpfile("not a certificate\n")
    err = raises("PEM", ctx.load_cert_chain, ctx, junk)
    assert.is_true(aio.iserror(err, aio.SSLError))
    assert.is_string(err.reason)
    os.remove(junk)
    -- a key that does not belong to the certificate
    err = raises("SSLError", ctx.load_cert_chain, ctx, T.path("server.pem"), T.path("other.key"))
    assert.is_true(aio.iserror(err, aio.SSLError))
  end)

  it("loads CAs from a file, a directory or PEM text", function()
    local ctx = aio.ssl.create_default_context()
    ctx:load_verify_locations(T.path("ca.pem"))
    ctx:load_verify_locations { cafile = T.path("ca.pem") }
    ctx:load_verify_locations(nil, "/etc/ssl/certs")
    ctx:load_verify_locations { cadata = io.open(T.path("ca.pem")):read("a") }
    ctx:load_default_certs()
    raises("cadata holds no PEM certificate", ctx.load_verify_locations, ctx, { cadata = "junk" })
    raises("cafile or capath expected", ctx.load_verify_locations, ctx)
    raises("cafile, capath or cadata expected", ctx.load_verify_locations, ctx, {})
    raises("No such file", ctx.load_verify_locations, ctx, "/nonexistent/ca.pem")
  end)

  it("ALPN lists and cipher strings are checked", function()
    local ctx = aio.ssl.create_default_context()
    ctx:set_alpn_protocols { "h2", "http/1.1" }
    ctx:set_alpn_protocols {}
    raises("protocol 2 must be a string of 1 to 255 bytes", ctx.set_alpn_protocols, ctx,
      { "h2", "" })
    raises("protocol 1 must be a string", ctx.set_alpn_protocols, ctx, { ("x"):rep(256) })
    ctx:set_ciphers("ECDHE+AESGCM")
    local err = raises("No cipher can be selected", ctx.set_ciphers, ctx, "NOTACIPHER")
    assert.is_true(aio.iserror(err, aio.SSLError))
    assert.equal("NO_CIPHER_MATCH", err.reason)
  end)

  it("the servername callback belongs to server contexts", function()
    local client = aio.ssl.create_default_context()
    raises("needs a server context", client.set_servername_callback, client, function() end)
    local server = aio.ssl.create_default_context("server")
    server:set_servername_callback(function() end)
    server:set_servername_callback(nil)
    raises("function expected", server.set_servername_callback, server, 42)
  end)

  it("methods and fields refuse a value that is not an SSLContext", function()
    local ctx = aio.ssl.create_default_context()
    raises("aloop.SSLContext expected, got number", ctx.load_cert_chain, 42, T.path("server.pem"))
    raises("aloop.SSLContext expected, got FILE*", ctx.set_ciphers, io.stdout, "ECDHE+AESGCM")
    H.with_loop(function(loop)
      raises("aloop.SSLContext expected, got aloop.Loop", ctx.load_default_certs, loop)
    end)
    local mt = getmetatable(ctx)
    raises("aloop.SSLContext expected, got table", mt.__index, {}, "verify_mode")
    raises("aloop.SSLContext expected, got nil", mt.__newindex, nil, "check_hostname", true)
    assert.equal("required", ctx.verify_mode)
  end)

  it("SSLError is an OSError; SSLCertVerificationError an SSLError", function()
    assert.is_true(aio.iserror(aio.SSLError("x"), aio.OSError))
    assert.is_true(aio.iserror(aio.SSLCertVerificationError("x"), aio.SSLError))
    assert.equal(aio.SSLError, aio.ssl.SSLError)
    assert.matches("^OpenSSL 3", aio.ssl.OPENSSL_VERSION)
  end)
end)
