-- The docs cannot rot: every ```lua block of README.md and docs/*.md runs with the built
-- interpreter and must exit 0; when a ```text block follows it (only prose between), the
-- snippet's stdout must be exactly that text. A block tagged ```lua busted is a spec file that
-- busted runs under the interpreter. A block tagged ```lua norun REASON is not run and must say
-- why. Also: README links every docs page, and every example is in docs/examples.md.
local H = require "spec.helper"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function ls(dir, pattern)
  local names = {}
  local p = assert(io.popen("ls " .. H.q(dir)))
  for name in p:lines() do
    if name:match(pattern) then names[#names + 1] = name end
  end
  p:close()
  return names
end

-- The fenced blocks of a markdown text, in order: {info=, body=, line=} (fences at column 0).
local function blocks(text)
  local list, open, body = {}, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local fence = line:match("^```(.*)$")
    if open then
      if fence == "" then
        list[#list + 1] = { info = open.info, line = open.line, body = table.concat(body, "\n") .. "\n" }
        open = nil
      else
        body[#body + 1] = line
      end
    elseif fence then
      open, body = { info = fence, line = n }, {}
    end
  end
  return list
end

-- The runnable snippets of a file: {line=, src=, expect=nil|text} and the skipped ones.
local function snippets(path)
  local runs, skipped = {}, {}
  local list = blocks(read(path))
  for i, b in ipairs(list) do
    local lang, rest = b.info:match("^(%S*)%s*(.*)$")
    if lang == "lua" then
      local reason = rest:match("^norun%s*(.*)$")
      if reason then
        skipped[#skipped + 1] = { line = b.line, reason = reason }
      else
        local nxt = list[i + 1]
        local expect = nxt and nxt.info == "text" and nxt.body or nil
        runs[#runs + 1] = { line = b.line, src = b.body, expect = expect, busted = rest == "busted" }
      end
    end
  end
  return runs, skipped
end

-- A snippet gets a minute. No LD_PRELOAD: under the ASan pass the interpreter is instrumented
-- itself, and the tools snippets run (openssl, redis-server, sh) must not get the sanitizer.
local RUN = "env -u LD_PRELOAD timeout -s KILL 60 "

local pages = { "README.md" }
for _, name in ipairs(ls(H.root .. "/docs", "%.md$")) do pages[#pages + 1] = "docs/" .. name end

describe("docs", function()
  for _, page in ipairs(pages) do
    local runs, skipped = snippets(H.root .. "/" .. page)
    for _, s in ipairs(runs) do
      it(page .. ":" .. s.line .. " runs" .. (s.expect and " and prints what the page shows" or ""), function()
        local out, err, code
        if s.busted then
          local path = H.tmpfile(s.src)
          out, err, code = H.capture("cd " .. H.q(H.root) .. " && " .. RUN .. "lua5.4"
            .. " /usr/bin/busted -o TAP --lua=" .. H.q(H.bin) .. " " .. H.q(path))
          os.remove(path)
        else
          out, err, code = H.capture("cd " .. H.q(H.root) .. " && " .. RUN .. H.q(H.bin) .. " -",
            s.src)
        end
        assert.are.equal(0, code, page .. ":" .. s.line .. " exited " .. code .. "\n" .. out .. err)
        if s.expect then assert.are.equal(s.expect, out) end
      end)
    end
    for _, s in ipairs(skipped) do
      it(page .. ":" .. s.line .. " (norun) says why it is not run", function()
        assert.is_true(#s.reason > 0, page .. ":" .. s.line .. ": a norun block needs a reason")
      end)
    end
  end

  it("every docs page has a runnable snippet and is linked from README.md", function()
    local readme = read(H.root .. "/README.md")
    for _, page in ipairs(pages) do
      if page ~= "README.md" then
        assert.is_truthy(readme:find("(" .. page .. ")", 1, true), page .. " is not linked from README.md")
        local runs, skipped = snippets(H.root .. "/" .. page)
        local pending = false -- a page about a feature not merged yet: "norun lands with ..."
        for _, s in ipairs(skipped) do pending = pending or s.reason:match("^lands with ") ~= nil end
        assert.is_true(#runs > 0 or pending or page == "docs/examples.md"
          or page == "docs/layout.md", page .. " has no runnable ```lua block")
      end
    end
  end)

  it("every page README.md links to exists", function()
    for page in read(H.root .. "/README.md"):gmatch("%]%((docs/[^)#]+)") do
      assert.is_truthy(io.open(H.root .. "/" .. page), page .. " is linked but missing")
    end
  end)

  it("every example is in docs/examples.md", function()
    local table_text = read(H.root .. "/docs/examples.md")
    local missing = {}
    for _, name in ipairs(ls(H.root .. "/examples", "%.lua$")) do
      if not table_text:find("examples/" .. name, 1, true) then missing[#missing + 1] = name end
    end
    assert.are.same({}, missing)
  end)
end)
