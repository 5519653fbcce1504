-- bench/callgrind's driver for typecheck.c: calls one scheme's method N times.
-- Usage: lua5.4 run.lua DIR SCHEME N   (DIR holds typecheck.so)
local dir, scheme, n = arg[1], arg[2], tonumber(arg[3])
package.cpath = dir .. "/?.so;" .. package.cpath
local obj = require "typecheck"()
local m = obj[scheme]
for _ = 1, n do m(obj) end
