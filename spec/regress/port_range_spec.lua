-- Port numbers wrapped: create_server(..., 70000) listened on 4464 and getaddrinfo(host, 1e10)
-- was accepted. Ports are now range-checked (0-65535) everywhere a port is read.
local aio = require "aloop"
local H = require "spec.helper"

describe("regress: port numbers out of range", function()
  it("are refused by create_server, create_connection and getaddrinfo", H.async(function(loop)
    local calls = {
      function(p) return loop:create_server(function() end, "127.0.0.1", p) end,
      function(p) return loop:create_connection(function() end, "127.0.0.1", p) end,
      function(p) return loop:getaddrinfo("127.0.0.1", p) end,
    }
    for i, call in ipairs(calls) do
      for _, port in ipairs { 70000, 1e10, -1 } do
        local ok, err = pcall(call, port)
        assert.is_false(ok, i .. " " .. port)
        assert.matches("aloop: port out of range %(0%-65535%)", tostring(err))
      end
    end
  end))
end)
