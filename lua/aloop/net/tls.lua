-- TLS glue (API.md §12): what ssl= means for the connection calls and servers, and start_tls.
-- The TLS itself runs in C as a filter of the stream transport (src/tls/); this file picks the
-- context, wraps a transport once per connection, and makes the connection call return only
-- after the handshake, raising its error (SSLCertVerificationError, a timeout, a lost peer).
local core = require "aloop.core"

local tls = {}

local await = core.await_future
local Loop = core.Loop

local default_client -- ssl = true on the client side: one context per Lua state, made on first use

-- The context for an ssl= value: true (the default client context) or an aio.ssl context.
function tls.context(ssl, server, what)
  if ssl == true then
    if server then
      error(("aloop.%s: ssl = true needs a certificate on a server: pass a context made by " ..
        "aio.ssl.create_default_context(\"server\") with load_cert_chain"):format(what), 3)
    end
    default_client = default_client or core.ssl.create_default_context()
    return default_client
  end
  if not core._is_sslcontext(ssl) then
    error(("aloop.%s: ssl must be true or an SSLContext, got %s"):format(what, type(ssl)), 3)
  end
  if ssl.server_side ~= server then
    error(("aloop.%s: ssl needs a %s-side context (aio.ssl.create_default_context(%s))")
      :format(what, server and "server" or "client", server and '"server"' or ""), 3)
  end
  return ssl
end

-- Options for core._tls_wrap from the caller's opts.
local function wrap_opts(opts, hostname, extra)
  local w = { server_hostname = hostname, ssl_handshake_timeout = opts.ssl_handshake_timeout,
    ssl_shutdown_timeout = opts.ssl_shutdown_timeout }
  for k, v in pairs(extra) do w[k] = v end
  return w
end

-- The name a client checks: server_hostname, else the host it connected to ("" checks none).
local function client_hostname(ctx, opts, host, what)
  local name = opts.server_hostname
  if name == nil then name = host end
  if name == nil and ctx.check_hostname then
    error(("aloop.%s: server_hostname is required with ssl= when there is no host (sock=), or " ..
      "pass server_hostname = \"\" to skip the hostname check"):format(what), 3)
  end
  return name
end

-- The error a lost transport ended with (drain() raises it), or a ConnectionResetError.
local function loss_error(tr)
  local ok, err = pcall(tr._drain, tr)
  if ok or err == nil then
    return core.ConnectionResetError("Connection lost during the TLS handshake")
  end
  return err
end

-- Waits for the handshake future; the connection's loss (whatever its cause) fails it. On an
-- error or a cancellation the transport is aborted and the error raised.
local function await_handshake(tr, fut)
  local closed = tr:_wait_closed()
  local function on_closed()
    if not fut:done() then fut:set_exception(loss_error(tr)) end
  end
  if closed then closed:add_done_callback(on_closed) else on_closed() end
  local ok, err = pcall(await, fut)
  if closed then closed:remove_done_callback(on_closed) end
  if not ok then
    tr:abort()
    error(err, 0)
  end
end

-- A client transport on the connected socket: returns once the handshake is done, when
-- protocol:connection_made has run.
function tls.connect(loop, sock, protocol, ctx, opts, host, what)
  local ok, name = pcall(client_hostname, ctx, opts, host, what)
  if not ok then
    sock:close()
    error(name, 0)
  end
  local tr = core._transport(loop, sock, {})
  local fut = core._tls_wrap(tr, ctx, false,
    wrap_opts(opts, name, { connection_made = true, waiter = true }), protocol)
  await_handshake(tr, fut)
  return tr
end

-- A server's protocol factory: each connection shakes hands first; the application's protocol
-- gets connection_made after it. A failed handshake ends that connection only, silently
-- (debug log), as asyncio.
function tls.server_factory(factory, opts, what)
  local ctx = tls.context(opts.ssl, true, what)
  local wopts = wrap_opts(opts, nil, { connection_made = true })
  return function()
    local app = factory()
    if app == nil then error("aloop: the protocol factory returned nil", 2) end
    return {
      connection_made = function(_, tr) core._tls_wrap(tr, ctx, true, wopts, app) end,
    }
  end
end

-- loop:start_tls(transport, protocol, ctx, {server_side=, server_hostname=,
-- ssl_handshake_timeout=, ssl_shutdown_timeout=}) -> transport (the same object, now TLS: the
-- bytes it already received count as ciphertext). protocol gets data_received, not
-- connection_made, as asyncio.
function Loop:start_tls(transport, protocol, ctx, opts)
  opts = opts or {}
  local server = opts.server_side and true or false
  ctx = tls.context(ctx, server, "start_tls")
  local name = not server and client_hostname(ctx, opts, nil, "start_tls") or nil
  local fut = core._tls_wrap(transport, ctx, server, wrap_opts(opts, name, { waiter = true }),
    protocol)
  await_handshake(transport, fut)
  return transport
end

-- writer:start_tls(ctx, opts): upgrades a stream pair in place (the reader keeps reading).
function tls.writer_start_tls(writer, ctx, opts)
  opts = opts or {}
  local server = opts.server_side and true or false
  ctx = tls.context(ctx, server, "StreamWriter.start_tls")
  local name = not server and client_hostname(ctx, opts, nil, "StreamWriter.start_tls") or nil
  local tr = writer.transport
  await_handshake(tr, core._tls_wrap(tr, ctx, server, wrap_opts(opts, name, { waiter = true })))
end

return tls
