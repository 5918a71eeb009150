-- Appended to wrk_report.lua by benchmarks/scale_bench.py: each request asks for
-- one "host path" line of BENCH_PATHS (every asset of the install, shuffled),
-- chosen uniformly, or with BENCH_ZIPF=1 Zipf-like (s = 1): the line of rank
-- floor(N^u), u uniform in [0, 1), so that rank r is asked about 1/r as often.
local paths_file = os.getenv("BENCH_PATHS")
local zipf = os.getenv("BENCH_ZIPF") == "1"
local counter = 0
local hosts, paths, count = {}, {}, 0

setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  for line in io.lines(paths_file) do
    local host, path = line:match("^(%S+) (.+)$")
    count = count + 1
    hosts[count], paths[count] = host, path
  end
end

request = function()
  local index
  if zipf then
    index = math.floor(count ^ math.random())
  else
    index = math.random(1, count)
  end
  return wrk.format("GET", paths[index], {Host = hosts[index]})
end
