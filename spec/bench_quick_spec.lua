-- spec/bench_quick_spec.lua: `bench/run --quick --no-peers` (tiny sizes) keeps working: every
-- workload script runs and lands in the results table. No timing is asserted.
describe("bench/run --quick", function()
  local build = os.getenv("KL_BUILD_DIR") or "build"

  local function slurp(path)
    local f = assert(io.open(path))
    local s = f:read("a")
    f:close()
    return s
  end

  it("runs every workload and writes a results table", function()
    local cmd = string.format("BUILD='%s' bench/run --quick --no-peers >bench/out/quick-spec.log 2>&1", build)
    os.execute("mkdir -p bench/out")
    local ok, how, code = os.execute(cmd)
    assert.is_true(ok, "bench/run failed (" .. tostring(how) .. " " .. tostring(code) .. "):\n" ..
      slurp("bench/out/quick-spec.log"))
    local md = slurp("bench/out/quick/results.md")
    assert.truthy(md:find("Produced by `bench/run --quick --no-peers", 1, true))
    for _, wl in ipairs({"W1-b64", "W1-b1024", "W2-tutorial", "W3-V1e3", "W3-V1e5",
                         "W4a-csr.dense", "W4b-csrT.dense", "W4c-rcv1.dense", "W5-logreg",
                         "W6-load_svmlight", "W7-epoch"}) do
      assert.truthy(md:find("| " .. wl .. " |", 1, true), wl .. " missing from:\n" .. md)
    end
    -- the memory section: peak RSS measured for W1 and W3
    assert.truthy(md:find("## Memory", 1, true))
    assert.truthy(md:find("| W1-b64 | keras-lua |", 1, true))
  end)

  it("runs the data-parallel case (np = 2 under mpirun) when MPI is there", function()
    local f = io.open(build .. "/lua/keras/distributed_mpi.so")
    if f then f:close() end
    if not f or not os.execute("command -v mpirun >/dev/null 2>&1") then
      -- bench/run says so in its log and leaves the DP rows out
      assert.truthy(slurp("bench/out/quick-spec.log"):find("DP skipped", 1, true))
      pending("no mpirun or no keras.distributed_mpi in " .. build .. ": DP skipped")
      return
    end
    local md = slurp("bench/out/quick/results.md")
    for _, wl in ipairs({"DP-W3-V1e3-np2", "DP-W1-b64-np2"}) do
      assert.truthy(md:find("| " .. wl .. " |", 1, true), wl .. " missing from:\n" .. md)
    end
    -- the exchange table: bytes per step from the hook's counters, both ranks' shares gathered
    assert.truthy(md:find("## Data-parallel gradient exchange", 1, true), md)
    local n = 0
    for line in io.lines("bench/out/quick/raw.txt") do
      local np, sent, recv = line:match("^XCHG DP%-%S+ keras%-lua (%d+) (%S+) (%S+)")
      if np then
        n = n + 1
        assert.equal(2, tonumber(np))
        assert.is_true(tonumber(sent) > 0 and tonumber(recv) > 0, line)
      end
    end
    assert.equal(2, n)
  end)

  it("runs the sharded-Embedding case (SHARD: np = 1 and 2 under mpirun) when MPI is there", function()
    local f = io.open(build .. "/lua/keras/distributed_mpi.so")
    if f then f:close() end
    if not f or not os.execute("command -v mpirun >/dev/null 2>&1") then
      assert.truthy(slurp("bench/out/quick-spec.log"):find("SHARD skipped", 1, true))
      pending("no mpirun or no keras.distributed_mpi in " .. build .. ": SHARD skipped")
      return
    end
    local md = slurp("bench/out/quick/results.md")
    for _, wl in ipairs({"SHARD-W3-V1e3-np1", "SHARD-W3-V1e3-np2"}) do
      assert.truthy(md:find("| " .. wl .. " |", 1, true), wl .. " missing from:\n" .. md)
    end
    assert.truthy(md:find("## Sharded Embedding", 1, true), md)
    -- a peak RSS for every rank of every run, and the exchange of both np = 2 runs; the
    -- sharded one's counters equal the bytes counted from the ids
    local rss, x = {}, {}
    for line in io.lines("bench/out/quick/raw.txt") do
      local wl, impl, np, rk, peak = line:match("^RSS (SHARD%S+) (%S+) (%d+) (%d+) (%S+)")
      if wl then
        assert.is_true(tonumber(peak) > 0, line)
        rss[impl .. "/" .. np .. "/" .. rk] = true
      end
      local ximpl, sent, recv = line:match("^SXCHG SHARD%S+ (%S+) 2 (%S+) (%S+)")
      if ximpl then
        assert.is_true(tonumber(sent) > 0 and tonumber(recv) > 0, line)
        x[ximpl] = line
      end
    end
    for _, k in ipairs({"keras-lua/1/0", "keras-lua-sharded/2/0", "keras-lua-sharded/2/1",
                        "keras-lua-replicated/2/0", "keras-lua-replicated/2/1"}) do
      assert.is_true(rss[k], "no RSS line for " .. k)
    end
    assert.truthy(x["keras-lua-sharded"] and x["keras-lua-sharded"]:find("equal the ids' count", 1, true),
      tostring(x["keras-lua-sharded"]))
    assert.truthy(x["keras-lua-replicated"])
  end)

  it("report.lua --seed gives back the lines a report was made from", function()
    local raw, out, raw2, cmds, cmds2 = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
    local f = assert(io.open(raw, "w"))
    f:write("RESULT W3-V1e4 keras-lua 1 0.00123456 5 ours note\n",
            "RESULT W3-V1e4 pytorch 1 0.0098765 5 peer note\n",
            "XCHG DP-W3-V1e6-np2 keras-lua 2 700000 690000 256000260 gather=5 allreduce=0\n",
            "RSS SHARD-W3-V8e6-np1 keras-lua 1 0 6000000000 5900000000 np1 floor\n",
            "RSS SHARD-W3-V8e6-np2 keras-lua-sharded 2 0 3000000000 2950000000 np2 floor\n",
            "RSS SHARD-W3-V8e6-np2 keras-lua-sharded 2 1 3900000000 2950000000 np2 floor\n",
            "SXCHG SHARD-W3-V8e6-np2 keras-lua-sharded 2 1331277 1331277 665760 665760 2048000260 ids\n")
    f:close()
    f = assert(io.open(cmds, "w"))
    f:write("bench/run --full\n")
    f:close()
    assert.is_true(os.execute(string.format("lua5.4 bench/report.lua '%s' '%s' '%s' full", raw, out, cmds)))
    assert.is_true(os.execute(string.format("lua5.4 bench/report.lua --seed '%s' '%s' '%s'", out, raw2, cmds2)))
    assert.equal(slurp(raw), slurp(raw2))
    assert.equal("bench/run --full\n", slurp(cmds2))
    -- the SHARD section: each rank's peak against np = 1 (target <= 0.6x), the exchange
    local full = slurp(out)
    assert.truthy(full:find("| SHARD-W3-V8e6-np2 | keras-lua-sharded | 2 | 0 | 2.79 GiB | 2.75 GiB | 1.02 | 0.50 | <= 0.6x | yes | np2 floor |", 1, true), full)
    assert.truthy(full:find("| 2 | 1 | 3.63 GiB | 2.75 GiB | 1.32 | 0.65 | <= 0.6x | **no** |", 1, true), full)
    assert.truthy(full:find("| SHARD-W3-V8e6-np2 | keras-lua-sharded | 2 | 1.27 MiB | 1.27 MiB | 650.2 KiB | 650.2 KiB | 1.91 GiB | 1.91 GiB | ids |", 1, true), full)
    -- a report without the raw block (older): read back from its table, printing the same
    local md = slurp(out):gsub("\n<!%-%- raw lines.*$", "\n")
    f = assert(io.open(out, "w"))
    f:write(md)
    f:close()
    assert.is_true(os.execute(string.format("lua5.4 bench/report.lua --seed '%s' '%s' '%s'", out, raw2, cmds2)))
    local out2 = os.tmpname()
    assert.is_true(os.execute(string.format("lua5.4 bench/report.lua '%s' '%s' '%s' full", raw2, out2, cmds2)))
    local row = "| W3-V1e4 | pytorch | 1 | 9.88 ms | 1.23 ms | 8.00 | >= 5x | yes | 5/5 | peer: peer note; ours: ours note |"
    assert.truthy(md:find(row, 1, true), md)
    assert.truthy(slurp(out2):find(row, 1, true), slurp(out2))
    for _, p in ipairs({raw, out, raw2, cmds, cmds2, out2}) do os.remove(p) end
  end)

  it("the raw lines carry positive times", function()
    local n = 0
    for line in io.lines("bench/out/quick/raw.txt") do
      local t = line:match("^RESULT %S+ %S+ %d+ (%S+)")
      if t then
        n = n + 1
        assert.is_true(tonumber(t) > 0, line)
      end
    end
    assert.is_true(n >= 10)
  end)

  it("report.lua: a later line of the same row (bench/run --append) replaces the earlier", function()
    local raw, out, cmds = os.tmpname(), os.tmpname(), os.tmpname()
    local f = assert(io.open(raw, "w"))
    f:write("RESULT W3-V1e4 keras-lua 1 0.002 5 first\n",
            "RESULT W3-V1e4 pytorch 1 0.010 5 peer\n",
            "MEM W3-V1e4 keras-lua 1000000 3000000 first floor\n",
            "RESULT W3-V1e4 keras-lua 1 0.001 5 second\n",
            "MEM W3-V1e4 keras-lua 1000000 1100000 second floor\n")
    f:close()
    f = assert(io.open(cmds, "w"))
    f:write("bench/run --full\n", "bench/run --full --only W3,Mem --append\n")
    f:close()
    local ok = os.execute(string.format("lua5.4 bench/report.lua '%s' '%s' '%s' full", raw, out, cmds))
    assert.is_true(ok)
    local md = slurp(out)
    os.remove(raw); os.remove(out); os.remove(cmds)
    assert.truthy(md:find("then `bench/run --full --only W3,Mem --append`", 1, true), md)
    -- one timing row, the second run's (ratio 10x: target met), and one memory row (1.10x)
    assert.truthy(md:find("| W3-V1e4 | pytorch | 1 | 10.00 ms | 1.00 ms | 10.00 | >= 5x | yes |", 1, true), md)
    assert.falsy(md:find("2.00 ms", 1, true), md)
    assert.truthy(md:find("| 1.10 | yes | second floor |", 1, true), md)
    assert.falsy(md:find("first floor", 1, true), md)
  end)

  it("refuses an unknown mode", function()
    local ok = os.execute("bench/run --bogus >/dev/null 2>&1")
    assert.is_falsy(ok)
  end)
end)
