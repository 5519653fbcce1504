-- Helpers of the TLS specs: a throwaway PKI made with the `openssl` command the first time a
-- spec asks for it (no private key is committed; the directory goes when the Lua state closes),
-- and real peers (openssl s_server / s_client, Python's ssl module) started on a loopback port
-- the OS picks and stopped after.
local aio = require "aloop"
local H = require "spec.helper"

local T = { root = H.root }

local dir -- the PKI directory, once made

-- Peers and tools run without the sanitizer runtime the ASan pass preloads into aloop.
local function sh(cmd)
  local out, code = H.sh("env -u LD_PRELOAD " .. cmd)
  if code ~= 0 then error("tls_helper: `" .. cmd .. "` failed:\n" .. out, 2) end
  return out
end

-- A key: "ec" (P-256) or "rsa" (2048 bits).
local function newkey(kind)
  return kind == "rsa" and "-newkey rsa:2048" or "-newkey ec -pkeyopt ec_paramgen_curve:P-256"
end

-- A certificate NAME.pem + NAME.key for subject CN, with SANs (e.g. "DNS:localhost,IP:127.0.0.1"),
-- signed by the CA CA (or self-signed when ca is nil), valid `days` days (-1: already expired).
local function cert(name, cn, san, opts)
  opts = opts or {}
  local p = dir .. "/" .. name
  if not opts.ca then
    sh(("openssl req -x509 %s -nodes -keyout %s.key -out %s.pem -days %d -subj %s %s"):format(
      newkey(opts.key), p, p, opts.days or 2, H.q("/CN=" .. cn),
      opts.is_ca and "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign"
        or ("-addext " .. H.q("subjectAltName=" .. san))))
    return
  end
  local ca = dir .. "/" .. opts.ca
  local ext = p .. ".ext"
  local f = assert(io.open(ext, "w"))
  f:write("subjectAltName=", san, "\nbasicConstraints=CA:FALSE\n")
  if opts.client then f:write("extendedKeyUsage=clientAuth\n") end
  f:close()
  sh(("openssl req -new %s -nodes -keyout %s.key -out %s.csr -subj %s"):format(
    newkey(opts.key), p, p, H.q("/CN=" .. cn .. "/O=aloop tests")))
  sh(("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -out %s.pem " ..
    "-days %d -extfile %s"):format(p, ca, ca, p, opts.days or 2, ext))
end

-- T.pki() -> directory holding:
--   ca.pem              the test CA (ECDSA P-256)
--   server.pem/.key     CN=localhost, SAN DNS:localhost + IP:127.0.0.1, ECDSA, signed by ca
--   rsa.pem/.key        the same names with an RSA key
--   expired.pem/.key    DNS:localhost, expired yesterday
--   other.pem/.key      DNS:other.example only (wrong hostname, and no IP SAN)
--   alt.pem/.key        DNS:alt.test (what SNI picks)
--   client.pem/.key     a client certificate signed by ca
--   rogue_ca.pem, rogue.pem/.key   a server certificate from a CA nobody trusts
function T.pki()
  if dir then return dir end
  dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -m 700 " .. H.q(dir))
  -- removed when the Lua state closes (the end of the busted run)
  T._cleanup = setmetatable({}, { __gc = function() os.execute("rm -rf " .. H.q(dir)) end })
  cert("ca", "aloop test CA", nil, { is_ca = true })
  cert("rogue_ca", "rogue CA", nil, { is_ca = true })
  cert("server", "localhost", "DNS:localhost,IP:127.0.0.1", { ca = "ca" })
  cert("rsa", "localhost", "DNS:localhost,IP:127.0.0.1", { ca = "ca", key = "rsa" })
  cert("expired", "localhost", "DNS:localhost,IP:127.0.0.1", { ca = "ca", days = -1 })
  cert("other", "other.example", "DNS:other.example", { ca = "ca" })
  cert("alt", "alt.test", "DNS:alt.test", { ca = "ca" })
  cert("client", "aloop client", "DNS:client.test", { ca = "ca", client = true })
  cert("rogue", "localhost", "DNS:localhost,IP:127.0.0.1", { ca = "rogue_ca" })
  return dir
end

function T.path(name) return T.pki() .. "/" .. name end

-- A client context trusting the test CA.
function T.client_ctx()
  local ctx = aio.ssl.create_default_context()
  ctx:load_verify_locations(T.path("ca.pem"))
  return ctx
end

-- A server context with certificate NAME (default "server").
function T.server_ctx(name)
  name = name or "server"
  local ctx = aio.ssl.create_default_context("server")
  ctx:load_cert_chain(T.path(name .. ".pem"), T.path(name .. ".key"))
  return ctx
end

-- T.spawn(argv) inside a task: a process with stdout piped (stderr merged) and stdin piped.
-- T.wait_line(proc, pattern): reads stdout lines until one matches; returns the captures.
function T.spawn(argv)
  local args = { "env", "-u", "LD_PRELOAD", table.unpack(argv) }
  args[#args + 1] = {
    stdin = aio.subprocess.PIPE, stdout = aio.subprocess.PIPE, stderr = aio.subprocess.STDOUT }
  return aio.create_subprocess_exec(table.unpack(args))
end

function T.wait_line(proc, pattern)
  local seen = {}
  for _ = 1, 200 do
    local line = proc.stdout:readline()
    if line == "" then
      error("peer ended before printing " .. pattern .. ":\n" .. table.concat(seen), 2)
    end
    seen[#seen + 1] = line
    local caps = table.pack(line:match(pattern))
    if caps[1] then return table.unpack(caps, 1, caps.n) end
  end
  error("peer never printed " .. pattern, 2)
end

-- Stops a peer process: kill, then wait (no zombie, no fd left).
function T.stop(proc)
  if proc.returncode == nil then pcall(proc.kill, proc) end
  proc:wait()
  if proc.stdin then proc.stdin:close() end
end

-- openssl s_server on 127.0.0.1:<OS port> with extra args (a list); returns proc, port.
function T.s_server(args)
  local argv = { "openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local proc = T.spawn(argv)
  local port = T.wait_line(proc, "^ACCEPT 127%.0%.0%.1:(%d+)")
  return proc, tonumber(port)
end

-- A Python script (source text) run with args; returns the process (stdout piped).
function T.python(src, ...)
  local path = H.tmpfile(src)
  local proc = T.spawn({ "python3", "-u", path, ... })
  T._scripts = T._scripts or {}
  T._scripts[#T._scripts + 1] = path
  return proc
end

-- T.it_fds(it [, timeout]): like spec.net_helper's it_fds (a task on a fresh loop, no socket left
-- open afterwards) with a longer timeout: handshakes are slow under ASan on a loaded machine.
function T.it_fds(it, timeout)
  local N = require "spec.net_helper"
  local ab = require "aloop.busted"
  return function(name, fn)
    it(name, function()
      local before = N.socket_count()
      ab.run(fn, { allow_reports = true, allow_pending = true, timeout = timeout or 60 })
      local after = N.socket_count()
      if after ~= before then
        error(("sockets left open: %d before, %d after"):format(before, after), 0)
      end
    end)
  end
end

-- A random payload of n bytes (deterministic: the same for the same n).
function T.payload(n)
  local parts, chunk = {}, {}
  for i = 1, 256 do chunk[i] = string.char((i * 7 + 3) % 256) end
  chunk = table.concat(chunk)
  for i = 1, n // 256 do parts[i] = chunk end
  return (table.concat(parts) .. chunk):sub(1, n)
end

return T
