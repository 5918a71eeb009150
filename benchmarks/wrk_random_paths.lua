-- Appended to wrk_report.lua for the "miss" case: each request asks for one of
-- BENCH_FILES paths (/f/00000.txt …), chosen at random, so that with a cache of a
-- few dozen entries nearly every request misses and goes to the database.
local files = tonumber(os.getenv("BENCH_FILES") or "20000")
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

request = function()
  return wrk.format("GET", string.format("/f/%05d.txt", math.random(0, files - 1)))
end
