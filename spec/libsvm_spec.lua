-- spec/libsvm_spec.lua: keras.data_utils.load_svmlight_file, dump_svmlight_file and LibSVMIter
-- through Lua: exact values, round trips, parts, option errors and bad input files.
local keras = require("keras")
local du = keras.data_utils
local sparse = keras.sparse

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
local DATA = here .. "data/svmlight/"

local tmpdir = require("support").mktemp_dir()

local function tpath(name) return tmpdir .. "/" .. name end

local function write(name, bytes)
  local path = tpath(name)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

local err_of = require("support").err_of

local function all_batches(it)
  local xs, ys = {}, {}
  for x, y, pad in it:batches() do
    assert.are.equal(0, pad)
    for _, r in ipairs(x:totable()) do xs[#xs + 1] = r end
    for _, v in ipairs(y:totable()) do ys[#ys + 1] = v end
  end
  return xs, ys
end

teardown(function() os.execute("rm -rf '" .. tmpdir .. "'") end)

describe("load_svmlight_file", function()
  local small_X = {{0.5, 0, -2}, {0, 1000, 0}, {0, 0, 0}, {1, 2, 3}}
  local small_y = {1, -1.5, 2.25, 7}

  it("reads the sample file (comments, blank lines, tabs, no final newline)", function()
    local X, y = du.load_svmlight_file(DATA .. "small.svm", {dtype = "float64"})
    assert.are.equal("csr", X.stype)
    assert.are.equal("float64", X.dtype)
    assert.are.same({4, 3}, X.shape)
    assert.are.same(small_X, X:totable())
    assert.are.same(small_y, y:totable())
    assert.are.same({1, 3, 2, 1, 2, 3}, X.indices:totable()) -- 1-based in Lua
    assert.are.same({1, 3, 4, 4, 7}, X.indptr:totable())
  end)

  it("reads .gz files transparently and defaults to float32 (labels: float64)", function()
    local X, y = du.load_svmlight_file(DATA .. "small.svm.gz")
    assert.are.equal("float32", X.dtype)
    assert.are.equal("float64", y.dtype)
    assert.are.same(small_X, X:totable())
    assert.are.same(small_y, y:totable())
  end)

  it("decides zero_based='auto' over the whole file, and honours true/false", function()
    local X = du.load_svmlight_file(DATA .. "zero_based.svm")
    assert.are.same({{0, 0, 3, 0, 5}, {1, 2, 0, 0, 0}}, X:totable())
    X = du.load_svmlight_file(DATA .. "zero_based.svm", {zero_based = true})
    assert.are.same({2, 5}, X.shape)
    local p = write("onebased.svm", "1 1:1 3:2\n")
    assert.are.same({{1, 0, 2}}, du.load_svmlight_file(p):totable())
    assert.are.same({{0, 1, 0, 2}}, du.load_svmlight_file(p, {zero_based = true}):totable())
    assert.are.same({{1, 0, 2}}, du.load_svmlight_file(p, {zero_based = false}):totable())
  end)

  it("pads to n_features", function()
    local X = du.load_svmlight_file(DATA .. "small.svm", {n_features = 6})
    assert.are.same({4, 6}, X.shape)
    assert.are.same({0.5, 0, -2, 0, 0, 0}, X:totable()[1])
  end)

  it("returns qid when asked (int64), nil for a file without qid", function()
    local X, y, q = du.load_svmlight_file(DATA .. "qid.svm", {query_id = true})
    assert.are.same({3, 2}, X.shape)
    assert.are.same({3, 2, 1}, y:totable())
    assert.are.equal("int64", q.dtype)
    assert.are.same({1, 1, -2}, q:totable())
    local _, _, q2 = du.load_svmlight_file(DATA .. "small.svm", {query_id = true})
    assert.is_nil(q2)
    assert.are.equal(2, select("#", du.load_svmlight_file(DATA .. "qid.svm")))
  end)
end)

describe("dump_svmlight_file", function()
  local function check_roundtrip(X, y, name, opts, load_opts)
    local p = tpath(name)
    du.dump_svmlight_file(X, y, p, opts)
    local X2, y2 = du.load_svmlight_file(p, load_opts)
    assert.are.equal("csr", X2.stype)
    assert.are.same(X.shape, X2.shape)
    assert.are.same(X:totable(), X2:totable()) -- bit-identical values
    assert.are.equal("float64", y2.dtype)       -- labels load as float64: y's values back
    assert.are.same(y:totable(), keras.array(y2, {dtype = y.dtype}):totable())
    return p
  end

  for _, dtype in ipairs({"float32", "float64"}) do
    it("round-trips random CSR data bit-identically (" .. dtype .. ", plain and .gz, both bases)", function()
      for seed = 1, 4 do
        local X = sparse.rand({17, 9}, "csr", 0.3, {seed = seed, dtype = dtype})
        local y = keras.random.normal({17}, {dtype = dtype, seed = seed})
        local lo = {n_features = 9, dtype = dtype}
        check_roundtrip(X, y, "rt" .. seed .. ".svm", nil, lo)
        check_roundtrip(X, y, "rt" .. seed .. ".svm.gz", nil, lo)
        local p = check_roundtrip(X, y, "rt" .. seed .. "z.svm", {zero_based = true},
          {n_features = 9, dtype = dtype, zero_based = true})
        -- a zero-based dump reloads the same with "auto" when some index 0 is present
        local has0 = false
        for _, j in ipairs(X.indices:totable()) do if j == 1 then has0 = true end end
        if has0 then
          assert.are.same(X:totable(), du.load_svmlight_file(p, {n_features = 9, dtype = dtype}):totable())
        end
      end
    end)
  end

  it("writes one-based indices by default, zero-based when asked, and empty rows", function()
    local X = sparse.csr_matrix({{0, 1.5, 0}, {0, 0, 0}, {2, 0, -3}})
    local y = keras.array({1, 0, -1})
    local p = tpath("fmt.svm")
    du.dump_svmlight_file(X, y, p)
    local f = io.open(p)
    local text = f:read("a")
    f:close()
    assert.are.equal("1 2:1.5\n0\n-1 1:2 3:-3\n", text)
    du.dump_svmlight_file(X, y, p, {zero_based = true})
    f = io.open(p)
    text = f:read("a")
    f:close()
    assert.are.equal("1 1:1.5\n0\n-1 0:2 2:-3\n", text)
  end)

  it("takes a dense X and a Lua list for y", function()
    local X = keras.array({{0, 2}, {3, 0}}, {dtype = "float64"})
    local p = tpath("dense.svm")
    du.dump_svmlight_file(X, {5, 6}, p)
    local X2, y2 = du.load_svmlight_file(p, {dtype = "float64"})
    assert.are.same({{0, 2}, {3, 0}}, X2:totable())
    assert.are.same({5, 6}, y2:totable())
  end)

  it("refuses bad arguments", function()
    local X = sparse.csr_matrix({{1, 0}})
    local y = keras.array({1})
    assert.are.equal("dump_svmlight_file: X must be a tensor (CSR or dense 2-d). Received: table",
      err_of(du.dump_svmlight_file, {{1}}, y, tpath("e.svm")))
    assert.are.equal("dump_svmlight_file: y must be a tensor or a list of numbers. Received: number",
      err_of(du.dump_svmlight_file, X, 3, tpath("e.svm")))
    assert.are.equal("dump_svmlight_file: path must be a non-empty string. Received: path=nil",
      err_of(du.dump_svmlight_file, X, y))
    assert.are.equal("dump_svmlight_file: unknown option 'zero'",
      err_of(du.dump_svmlight_file, X, y, tpath("e.svm"), {zero = true}))
    assert.are.equal("dump_svmlight_file: zero_based must be true or false. Received: zero_based=1",
      err_of(du.dump_svmlight_file, X, y, tpath("e.svm"), {zero_based = 1}))
    assert.are.equal("dump_svmlight_file: y has 2 rows, X has 1",
      err_of(du.dump_svmlight_file, X, keras.array({1, 2}), tpath("e.svm")))
    assert.matches("dump_svmlight_file: .*nodir/e.svm",
      err_of(du.dump_svmlight_file, X, y, tpath("nodir/e.svm")))
  end)
end)

describe("LibSVMIter", function()
  -- N lines whose label is the line number, so that coverage can be checked by label.
  local N = 103
  local lines = {}
  for i = 1, N do
    local l = tostring(i)
    if i % 7 ~= 0 then l = l .. " " .. (i % 5 + 1) .. ":" .. (i / 4) end
    if i % 3 == 0 then l = l .. " 6:" .. i end
    lines[i] = l
  end
  local text = table.concat(lines, "\n") .. "\n# trailing comment\n"

  local function check_cover(path, zero_based)
    local X, y = du.load_svmlight_file(path, {n_features = 6, dtype = "float64", zero_based = zero_based})
    local Xt, yt = X:totable(), y:totable()
    for num_parts = 1, 4 do
      local seen = {}
      for part = 1, num_parts do
        local it = du.LibSVMIter{path = path, n_features = 6, batch_size = 8, num_parts = num_parts,
          part_index = part, dtype = "float64", zero_based = zero_based}
        for x, yb in it:batches() do
          assert.is_true(x.shape[1] >= 1 and x.shape[1] <= 8)
          assert.are.equal("csr", x.stype)
          local xr, yr = x:totable(), yb:totable()
          for r = 1, #yr do
            local label = yr[r]
            assert.is_nil(seen[label], "line " .. label .. " seen twice")
            seen[label] = true
            assert.are.same(Xt[label], xr[r])
          end
        end
        it:close()
      end
      for i = 1, N do assert.is_true(seen[i], "line " .. i .. " missing with " .. num_parts .. " parts") end
      assert.are.equal(N, #yt)
    end
  end

  it("parts 1..num_parts cover each line exactly once (num_parts 1 to 4)", function()
    check_cover(write("cover.svm", text))
  end)

  it("covers each line once in a .gz file and in a zero-based file", function()
    local p = write("cover.svm", text)
    os.execute("gzip -c '" .. p .. "' > '" .. tpath("cover.svm.gz") .. "'")
    check_cover(tpath("cover.svm.gz"))
    local ztext = text:gsub("(%d+):", function(k) return (tonumber(k) - 1) .. ":" end)
    check_cover(write("coverz.svm", ztext), true)
    check_cover(tpath("coverz.svm"), "auto") -- it has an index 0, so auto finds zero-based
  end)

  it("streams the same rows as load_svmlight_file; each batches() is a new pass", function()
    local X, y = du.load_svmlight_file(DATA .. "small.svm")
    local it = du.LibSVMIter{path = DATA .. "small.svm", n_features = 3, batch_size = 3}
    assert.are.equal(3, it.n_features)
    assert.is_nil(it.num_samples)
    for _ = 1, 2 do
      local xs, ys = all_batches(it)
      assert.are.same(X:totable(), xs)
      assert.are.same(y:totable(), ys)
    end
    assert.are.equal(4, it.num_samples)
    -- batches kept by Lua stay valid while later ones are read
    local kept = {}
    for x in it:batches() do kept[#kept + 1] = x end
    assert.are.same({{0.5, 0, -2}, {0, 1000, 0}, {0, 0, 0}}, kept[1]:totable())
    assert.are.same({{1, 2, 3}}, kept[2]:totable())
  end)

  it("next/reset as MXNet's DataIter, close is idempotent, <close> works", function()
    local it = du.LibSVMIter{path = DATA .. "small.svm.gz", n_features = 3, batch_size = 2}
    local x1 = it:next()
    assert.are.same({2, 3}, x1.shape)
    it:next()
    assert.is_nil(it:next())
    it:reset()
    assert.are.same(x1:totable(), it:next():totable())
    it:close()
    it:close()
    assert.are.equal("LibSVMIter:batches: the iterator is closed", err_of(it.batches, it))
    assert.are.equal("LibSVMIter:next: the iterator is closed", err_of(it.next, it))
    do
      local it2 <close> = du.LibSVMIter{path = DATA .. "small.svm", n_features = 3, batch_size = 2}
      assert.is_not_nil(it2:next())
    end
  end)

  it("a part without lines gives no batch", function()
    local p = write("one.svm", "1 1:1\n")
    local it = du.LibSVMIter{path = p, n_features = 2, batch_size = 4, num_parts = 4, part_index = 4}
    local n = 0
    for _ in it:batches() do n = n + 1 end
    assert.are.equal(0, n)
    assert.are.equal(0, it.num_samples)
  end)

  it("validates every option", function()
    local p = DATA .. "small.svm"
    local cases = {
      {{path = p, n_features = 3}, "LibSVMIter: batch_size is required (a positive integer)"},
      {{path = p, batch_size = 3}, "LibSVMIter: n_features is required (a positive integer)"},
      {{n_features = 3, batch_size = 3}, "LibSVMIter: path must be a non-empty string. Received: path=nil"},
      {{path = "", n_features = 3, batch_size = 3}, "LibSVMIter: path must be a non-empty string. Received: path=''"},
      {{path = p, n_features = 0, batch_size = 3}, "LibSVMIter: n_features must be a positive integer. Received: n_features=0"},
      {{path = p, n_features = 2.5, batch_size = 3}, "LibSVMIter: n_features must be a positive integer. Received: n_features=2.5"},
      {{path = p, n_features = "3", batch_size = 3}, "LibSVMIter: n_features must be a positive integer. Received: n_features='3'"},
      {{path = p, n_features = 3, batch_size = -1}, "LibSVMIter: batch_size must be a positive integer. Received: batch_size=-1"},
      {{path = p, n_features = 3, batch_size = 3, num_parts = 0}, "LibSVMIter: num_parts must be a positive integer. Received: num_parts=0"},
      {{path = p, n_features = 3, batch_size = 3, part_index = 0}, "LibSVMIter: part_index must be a positive integer. Received: part_index=0"},
      {{path = p, n_features = 3, batch_size = 3, num_parts = 2, part_index = 3}, "LibSVMIter: part_index must be in [1, num_parts=2]. Received: part_index=3"},
      {{path = p, n_features = 3, batch_size = 3, part_index = 2}, "LibSVMIter: part_index must be in [1, num_parts=1]. Received: part_index=2"},
      {{path = p, n_features = 3, batch_size = 3, zero_based = 1}, "LibSVMIter: zero_based must be 'auto', true or false. Received: zero_based=1"},
      {{path = p, n_features = 3, batch_size = 3, zero_based = "yes"}, "LibSVMIter: zero_based must be 'auto', true or false. Received: zero_based='yes'"},
      {{path = p, n_features = 3, batch_size = 3, dtype = "int64"}, "LibSVMIter: dtype must be 'float32' or 'float64'. Received: dtype='int64'"},
      {{path = p, n_features = 3, batch_size = 3, shuffle = true}, "LibSVMIter: unknown option 'shuffle'"},
      {{path = p, n_features = 3, batch_size = 3, [1] = 2}, "LibSVMIter: unknown option '1'"},
      {{path = tpath("missing.svm"), n_features = 3, batch_size = 3}, "LibSVMIter: " .. tpath("missing.svm") .. ":0: cannot open: No such file or directory"},
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], err_of(du.LibSVMIter, c[1])) end
    assert.are.equal("LibSVMIter: expected an options table {path=, n_features=, batch_size=, ...}",
      err_of(du.LibSVMIter, p))
  end)
end)

describe("load_svmlight_file options", function()
  it("validates every option", function()
    local p = DATA .. "small.svm"
    local f = du.load_svmlight_file
    local cases = {
      {{p, {n_features = 0}}, "load_svmlight_file: n_features must be a positive integer. Received: n_features=0"},
      {{p, {n_features = -2}}, "load_svmlight_file: n_features must be a positive integer. Received: n_features=-2"},
      {{p, {n_features = 1.5}}, "load_svmlight_file: n_features must be a positive integer. Received: n_features=1.5"},
      {{p, {zero_based = "true"}}, "load_svmlight_file: zero_based must be 'auto', true or false. Received: zero_based='true'"},
      {{p, {zero_based = 0}}, "load_svmlight_file: zero_based must be 'auto', true or false. Received: zero_based=0"},
      {{p, {dtype = "float16"}}, "load_svmlight_file: dtype must be 'float32' or 'float64'. Received: dtype='float16'"},
      {{p, {dtype = "int64"}}, "load_svmlight_file: dtype must be 'float32' or 'float64'. Received: dtype='int64'"},
      {{p, {query_id = 1}}, "load_svmlight_file: query_id must be true or false. Received: query_id=1"},
      {{p, {nfeatures = 3}}, "load_svmlight_file: unknown option 'nfeatures'"},
      {{p, 3}, "load_svmlight_file: options must be a table (got number)"},
      {{nil}, "load_svmlight_file: path must be a non-empty string. Received: path=nil"},
      {{42}, "load_svmlight_file: path must be a non-empty string. Received: path=42"},
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], err_of(f, table.unpack(c[1], 1, 2))) end
  end)
end)

-- Bad input files: every one gives "fn: path:line: what", for the loader and the iterator.
-- {name, bytes, options of the loader, message after "path:"}.
local BAD = {
  {"empty.svm", "", nil, "1: no data (the file is empty)"},
  {"comments.svm", "# only\n\n# comments\n", nil, "3: no data (only blank and comment lines)"},
  {"blank.svm", "\n\n   \n\t\n", nil, "4: no data (only blank and comment lines)"},
  {"word.svm", "1 1:1\n1 abc\n", nil, "2: expected index:value, got 'abc'"},
  {"word_first.svm", "1 abc 2:1\n", nil, "1: expected index:value, got 'abc'"},
  {"novalue.svm", "1 3:\n", nil, "1: missing value after '3:'"},
  {"novalue_mid.svm", "1 1:1 3: 4:1\n", nil, "1: missing value after '3:'"},
  {"noindex.svm", "1 1:2\n\n1 :3\n", nil, "3: missing index before ':' in ':3'"},
  {"nocolon.svm", "1 3\n", nil, "1: expected index:value, got '3'"},
  {"bare_colon.svm", "1 :\n", nil, "1: missing index before ':' in ':'"},
  {"negidx.svm", "1 -3:1\n", nil, "1: negative index -3"},
  {"negidx_zb.svm", "1 0:1 1:1\n1 -1:2\n", {zero_based = true}, "2: negative index -1"},
  {"zero1.svm", "1 1:1\n2 0:1 2:2\n", {zero_based = false}, "2: index 0 in a one-based file"},
  {"zero1_first.svm", "1 0:1\n", {zero_based = false}, "1: index 0 in a one-based file"},
  {"past1.svm", "1 1:1\n1 4:1\n", {n_features = 3, zero_based = false}, "2: index 4 past n_features=3"},
  {"past0.svm", "1 3:1\n", {n_features = 3, zero_based = true}, "1: index 3 past n_features=3"},
  {"pastauto.svm", "1 5:1\n", {n_features = 3}, "1: index 5 past n_features=3"},
  {"pastzb.svm", "1 0:1\n1 3:1\n1 1:1\n", {n_features = 3},
    "2: index 3 past n_features=3 (the file is zero-based: it has an index 0)"},
  {"nf_small.svm", "1 1:1 2:2 3:3\n", {n_features = 2, zero_based = false}, "1: index 3 past n_features=2"},
  {"huge.svm", "1 2:1\n1 100000000000000000000:1\n", nil, "2: index 100000000000000000000 out of range (too large)"},
  {"huge19.svm", "1 9999999999999999999:1\n", nil, "1: index 9999999999999999999 out of range (too large)"},
  {"int64max.svm", "1 9223372036854775807:1\n", nil, "1: index 9223372036854775807 out of range (too large)"},
  {"badlabel.svm", "abc 1:1\n", nil, "1: bad label 'abc'"},
  {"label155.svm", "1 1:1\n1.5.5 1:1\n", nil, "2: bad label '1.5.5'"},
  {"label_x.svm", "1x 1:1\n", nil, "1: bad label '1x'"},
  {"label_empty_exp.svm", "1e 1:1\n", nil, "1: bad label '1e'"},
  {"label_colon.svm", " :1\n", nil, "1: bad label ':1'"},
  {"label_idx.svm", "3:1 4:1\n", nil, "1: bad label '3:1'"},
  {"labelrange.svm", "1e400 1:1\n", nil, "1: label '1e400' out of range"},
  {"value155.svm", "1 1:1.5.5\n", nil, "1: bad value '1:1.5.5'"},
  {"valuex.svm", "1 3:x\n", nil, "1: bad value '3:x'"},
  {"value_trailing.svm", "1 3:1.0abc\n", nil, "1: bad value '3:1.0abc'"},
  {"value_hex_garbage.svm", "1 3:0x\n", nil, "1: bad value '3:0x'"},
  {"twocolons.svm", "1 3:1:2\n", nil, "1: bad value '3:1:2'"},
  {"overflow.svm", "1 1:1e999\n", nil, "1: value '1:1e999' out of range"},
  {"negoverflow.svm", "1 1:-1e999\n", nil, "1: value '1:-1e999' out of range"},
  {"f32range.svm", "1 1:1e39\n", {dtype = "float32"}, "1: value '1:1e39' out of range"},
  {"idx_float.svm", "1 1.5:2\n", nil, "1: expected index:value, got '1.5:2'"},
  {"idx_plus.svm", "1 +x:2\n", nil, "1: expected index:value, got '+x:2'"},
  {"idx_word.svm", "1 a:2\n", nil, "1: expected index:value, got 'a:2'"},
  {"idx_space.svm", "1 2 :3\n", nil, "1: expected index:value, got '2'"},
  {"unsorted.svm", "1 1:1\n1 3:1 2:1\n", nil, "2: indices not in increasing order (2 after 3)"},
  {"dup.svm", "1 2:1 2:5\n", nil, "1: duplicate index 2"},
  {"dup_far.svm", "1 1:1\n1 1:1\n1 4:1 4:1\n", nil, "3: duplicate index 4"},
  {"qidsome.svm", "1 qid:1 1:1\n\n2 2:1\n", nil,
    "3: no qid here, but line 1 has one (qid on some lines but not others)"},
  {"qidlate.svm", "1 1:1\n2 qid:3 2:1\n", nil,
    "2: qid here, but line 1 has none (qid on some lines but not others)"},
  {"qidpos.svm", "1 1:1 qid:2\n", nil, "1: qid must directly follow the label: 'qid:2'"},
  {"qidbad.svm", "1 qid:x 1:1\n", nil, "1: bad qid 'qid:x'"},
  {"qidempty.svm", "1 qid: 1:1\n", nil, "1: bad qid 'qid:'"},
  {"qidhuge.svm", "1 qid:99999999999999999999 1:1\n", nil, "1: bad qid 'qid:99999999999999999999'"},
  {"qidfloat.svm", "1 qid:1.5 1:1\n", nil, "1: bad qid 'qid:1.5'"},
  {"crlf.svm", "1 1:1\r\n\r\n# c\r\n1 x:1\r\n", nil, "4: expected index:value, got 'x:1'"},
  {"hashtok.svm", "1 1:1\n1 2:3#c\n1 3:#\n", nil, "3: missing value after '3:'"},
  {"lonecr.svm", "1 1:1\r2 1:1\n", nil, "1: expected index:value, got '2'"},
  {"nul.svm", "1 1:1\n1 2:\0 3\n", nil, "2: NUL byte at column 5"},
  {"nulc.svm", "1 1:1 # a\0b\n2 1:1\n", nil, "1: NUL byte at column 10"},
  {"nullast.svm", "1 1:1\n2 1:1\0", nil, "2: NUL byte at column 6"},
  {"nulonly.svm", "\0\0\0\0", nil, "1: NUL byte at column 1"},
  {"garbage.svm", "\xff\xfe\x80abc\x01 1:1\n", nil, "1: bad label '\\xff\\xfe\\x80abc\\x01'"},
  {"binary.svm", "\x7fELF\x02\x01\x01\0\0\0\0\0", nil, "1: NUL byte at column 8"},
  {"garbage_line3.svm", "1 1:1\n2 2:2\n\x89PNG\r\n\x1a\n", nil, "3: bad label '\\x89PNG'"},
  {"utf8.svm", "1 1:1\n1 1:\xc3\xa9\n", nil, "2: bad value '1:\\xc3\\xa9'"},
  {"lastline_bad.svm", "1 1:1\n2 2:2\n3 3:", nil, "3: missing value after '3:'"},
  {"tab_sep_bad.svm", "1\t1:1\t2:x\n", nil, "1: bad value '2:x'"},
  {"late_error.svm", string.rep("1 1:1 2:2\n", 50) .. "1 2:1 1:1\n", nil,
    "51: indices not in increasing order (1 after 2)"},
}

describe("bad LibSVM input", function()
  it("has at least 60 cases", function() assert.is_true(#BAD >= 60) end)

  for _, c in ipairs(BAD) do
    local name, bytes, opts, msg = c[1], c[2], c[3], c[4]
    it(name .. ": a clean error naming the file and line", function()
      local p = write(name, bytes)
      assert.are.equal("load_svmlight_file: " .. p .. ":" .. msg, err_of(du.load_svmlight_file, p, opts))
      -- gzipped, the same error
      os.execute("gzip -c '" .. p .. "' > '" .. p .. ".gz'")
      assert.are.equal("load_svmlight_file: " .. p .. ".gz:" .. msg,
        err_of(du.load_svmlight_file, p .. ".gz", opts))
      -- streamed, the same error (a file without samples gives no batch instead)
      if not msg:find("no data", 1, true) then
        local e = err_of(function()
          local it = du.LibSVMIter{path = p, n_features = opts and opts.n_features or 1000000,
            batch_size = 4, zero_based = opts and opts.zero_based, dtype = opts and opts.dtype}
          for _ in it:batches() do end
        end)
        assert.are.equal("LibSVMIter: " .. p .. ":" .. msg, e)
      end
    end)
  end

  it("a missing file and a directory", function()
    assert.are.equal("load_svmlight_file: " .. tpath("nope.svm") .. ":0: cannot open: No such file or directory",
      err_of(du.load_svmlight_file, tpath("nope.svm")))
    assert.are.equal("load_svmlight_file: " .. tmpdir .. ":1: read error: Is a directory",
      err_of(du.load_svmlight_file, tmpdir))
  end)

  it("a truncated .gz at many cut points", function()
    local body = {}
    for i = 1, 400 do body[i] = i .. " 1:" .. i .. " 7:" .. (i * 3) end
    local p = write("full.svm", table.concat(body, "\n") .. "\n")
    os.execute("gzip -c '" .. p .. "' > '" .. p .. ".gz'")
    local f = io.open(p .. ".gz", "rb")
    local gz = f:read("a")
    f:close()
    for _, cut in ipairs({11, 20, 64, #gz // 2, #gz - 9, #gz - 1}) do
      local q = write("cut" .. cut .. ".svm.gz", gz:sub(1, cut))
      local e = err_of(du.load_svmlight_file, q)
      assert.matches("^load_svmlight_file: " .. q:gsub("%p", "%%%0") .. ":%d+: ", e)
      assert.matches("gzip", e)
      e = err_of(function()
        for _ in du.LibSVMIter{path = q, n_features = 7, batch_size = 50, zero_based = false}:batches() do end
      end)
      assert.matches("^LibSVMIter: " .. q:gsub("%p", "%%%0") .. ":%d+: .*gzip", e)
    end
  end)
end)

describe("svmlight data interop", function()
  local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end

  it("keeps labels in float64 (scikit-learn's y): 16777217 stays 16777217", function()
    local p = write("big.svm", "16777217 1:1\n0.1 2:2.1\n")
    local X, y = du.load_svmlight_file(p)
    assert.are.equal("float32", X.dtype)
    assert.are.equal("float64", y.dtype)
    assert.are.same({16777217, 0.1}, y:totable())
    assert.are.same({{1, 0}, {0, f32(2.1)}}, X:totable())
    local _, ys = all_batches(du.LibSVMIter{path = p, n_features = 2, batch_size = 1})
    assert.are.same({16777217, 0.1}, ys)
  end)

  it("fit and evaluate take float64 labels for a float32 model (in memory and streamed)", function()
    local p = write("fit.svm", "1 1:1\n2 2:1\n3 1:1 2:1\n")
    local X, y = du.load_svmlight_file(p)
    local inp = keras.layers.Input{shape = {2}, sparse = true}
    local out = keras.layers.Dense{units = 1, use_bias = false, kernel_initializer = "zeros"}(inp)
    local m = keras.Model{inputs = inp, outputs = out}
    m:compile{optimizer = keras.optimizers.SGD{learning_rate = 0}, loss = "mse"}
    -- the predictions are 0: the loss is mean(y^2) = (1 + 4 + 9) / 3: in float32 over one
    -- batch of 3; over batches of 2 and 1, (2.5 * 2 + 9) / 3 averaged in double
    assert.are.equal(f32(14 / 3), m:evaluate(X, y, {verbose = 0}))
    local it = du.LibSVMIter{path = p, n_features = 2, batch_size = 2}
    assert.are.equal(14 / 3, m:evaluate(it))
    local h = m:fit(X, y, {epochs = 1, batch_size = 3, verbose = 0, shuffle = false})
    assert.are.equal(f32(14 / 3), h.history.loss[1])
    h = m:fit(it, nil, {epochs = 1, verbose = 0})
    assert.are.equal(14 / 3, h.history.loss[1])
  end)

  it("dumps the shortest text that reads back the same value (as scikit-learn)", function()
    local X = sparse.csr_matrix{data = {2.1, 1e-300, 0.1}, indices = {1, 2, 2}, indptr = {1, 2, 3, 4},
      shape = {3, 2}, dtype = "float64"}
    local p = tpath("short.svm")
    du.dump_svmlight_file(X, keras.array({2.1, 16777217, 1 / 3}, {dtype = "float64"}), p)
    local f = assert(io.open(p, "rb"))
    assert.are.equal("2.1 1:2.1\n16777217 2:1e-300\n0.3333333333333333 2:0.1\n", f:read("a"))
    f:close()
    -- float32 values: the fewest digits that read back as the same float32
    du.dump_svmlight_file(keras.array({{0.1, 2.1}}), {0.5}, p)
    f = assert(io.open(p, "rb"))
    assert.are.equal("0.5 1:0.1 2:2.1\n", f:read("a"))
    f:close()
    local X2, y2 = du.load_svmlight_file(p)
    assert.are.same({{f32(0.1), f32(2.1)}}, X2:totable())
    assert.are.same({0.5}, y2:totable())
  end)

  it("refuses an empty file in LibSVMIter as load_svmlight_file does", function()
    local p = write("empty_it.svm", "")
    assert.are.equal("LibSVMIter: " .. p .. ":1: no data (the file is empty)",
      err_of(du.LibSVMIter, {path = p, n_features = 2, batch_size = 1, zero_based = false}))
    assert.are.equal("load_svmlight_file: " .. p .. ":1: no data (the file is empty)",
      err_of(du.load_svmlight_file, p))
    p = write("comments_it.svm", "# only a comment\n\n")
    assert.are.equal("LibSVMIter: " .. p .. ":2: no data (only blank and comment lines)",
      err_of(du.LibSVMIter, {path = p, n_features = 2, batch_size = 1, zero_based = true}))
    assert.are.equal("LibSVMIter: " .. p .. ":2: no data (only blank and comment lines)",
      err_of(du.LibSVMIter, {path = p, n_features = 2, batch_size = 1, num_parts = 2}))
  end)

  it("reads concatenated gzip members; bytes after the gzip stream are an error", function()
    local a = write("m1.svm", "1 1:1\n")
    local b = write("m2.svm", "2 2:2\n")
    local both = tpath("both.svm.gz")
    os.execute("gzip -c '" .. a .. "' > '" .. both .. "'; gzip -c '" .. b .. "' >> '" .. both .. "'")
    local X, y = du.load_svmlight_file(both)
    assert.are.same({{1, 0}, {0, 2}}, X:totable())
    assert.are.same({1, 2}, y:totable())
    local f = assert(io.open(both, "rb"))
    local gz = f:read("a")
    f:close()
    local p = write("junk.svm.gz", gz .. "junk\n")
    local want = p .. ":3: read error: trailing bytes after the end of the gzip stream, at byte " ..
      #gz .. " of the file (not another gzip member)"
    assert.are.equal("load_svmlight_file: " .. want, err_of(du.load_svmlight_file, p))
    assert.are.equal("LibSVMIter: " .. want, err_of(function()
      for _ in du.LibSVMIter{path = p, n_features = 2, batch_size = 1, zero_based = false}:batches() do end
    end))
  end)

  it("names other compressions as unsupported formats", function()
    for _, c in ipairs({{"bz2", "BZh91AY&SY", "bzip2"}, {"xz", "\xfd7zXZ\0\0\4", "xz"},
                        {"zst", "\x28\xb5\x2f\xfd\0\0", "zstd"}, {"zip", "PK\3\4\20\0", "zip"}}) do
      local p = write("data.svm." .. c[1], c[2])
      local why = p .. ":0: " .. c[3] .. "-compressed files are not supported (keras-lua reads plain " ..
        "text and gzip; decompress it first)"
      assert.are.equal("load_svmlight_file: " .. why, err_of(du.load_svmlight_file, p))
      assert.are.equal("LibSVMIter: " .. why,
        err_of(du.LibSVMIter, {path = p, n_features = 2, batch_size = 1, zero_based = false}))
    end
  end)
end)
