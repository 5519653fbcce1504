-- A JSON API server: a small todo list (GET /todos, POST /todos, GET/DELETE /todos/<id:int>),
-- JSON in with req:json(), out with http.json, errors as HTTPError. The example calls it with
-- aloop's client and prints each exchange.
local aio = require "aloop"
local http = require "aloop.http"
io.stdout:setvbuf("line")

local todos, next_id = {}, 1
local app = http.App {}

app:get("/todos", function()
  local list = aio.json.array()
  for id = 1, next_id - 1 do if todos[id] then list[#list + 1] = todos[id] end end
  return http.json(list)
end)

app:post("/todos", function(req)
  local body = req:json()
  if type(body) ~= "table" or type(body.title) ~= "string" then
    error(http.HTTPError(422, "a title is needed"))
  end
  local todo = { id = next_id, title = body.title, done = false }
  todos[next_id], next_id = todo, next_id + 1
  return http.json(todo, 201)
end)

app:get("/todos/<id:int>", function(req, id)
  return http.json(todos[id] or error(http.HTTPError(404, "no todo " .. id)))
end)

app:delete("/todos/<id:int>", function(req, id)
  if not todos[id] then error(http.HTTPError(404, "no todo " .. id)) end
  todos[id] = nil
  return http.Response { status = 204 }
end)

aio.run(function()
  local srv <close> = http.serve(app, "127.0.0.1", 0)
  local s <close> = http.Session { base_url = ("http://127.0.0.1:%d/"):format(srv:port()) }
  local function show(what, r)
    print(("%-22s %d %s"):format(what, r.status, r:read()))
  end
  show("GET /todos", s:get("/todos"))
  show("POST /todos", s:post("/todos", { json = { title = "write the spec" } }))
  show("POST /todos", s:post("/todos", { json = { title = "run it" } }))
  show("POST /todos (bad)", s:post("/todos", { json = { nope = 1 } }))
  show("DELETE /todos/1", s:delete("/todos/1"))
  show("GET /todos/1", s:get("/todos/1"))
  show("GET /todos", s:get("/todos"))
end)
