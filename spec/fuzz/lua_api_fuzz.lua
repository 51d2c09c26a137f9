-- spec/fuzz/lua_api_fuzz.lua: a seeded random-call fuzzer of the public Lua API: every call
-- with nasty arguments must return or raise a non-empty string error; the process must survive.
--
-- Usage (paths to the build come from LUA_PATH_5_4 / LUA_CPATH_5_4, as under ctest):
--   lua5.4 spec/fuzz/lua_api_fuzz.lua run SEED [CALLS [LOG [MODE]]]
--       one seed in this process; writes the last calls to LOG before each runs. MODE "all"
--       (default) draws every target; "lifecycle" only the lifecycle sequences (objects
--       closed, collected and reused, also inside fit's callbacks; see "lc:" below) and the
--       plain close / collect / fit targets.
--       Exit 0 clean, 2 a non-string/empty error, 3 state corrupted (a valid call failed).
--   lua5.4 spec/fuzz/lua_api_fuzz.lua drive FIRST LAST [CALLS [TIMEOUT_S [STRICT [MODE]]]]
--       each seed FIRST..LAST in a child process (cd'd into a scratch dir, run under
--       `timeout`): a crash, sanitizer report, hang or bad error is reported with the seed
--       and the last calls. Environment: LUA_FUZZ_LUA (the interpreter, default lua5.4),
--       LUA_FUZZ_ULIMIT_KB (address-space limit of a child, default 3000000; 0 = none),
--       LUA_FUZZ_DIR (scratch dir). STRICT=1 also fails on internal Lua errors
--       ("attempt to index a nil value"...), which are otherwise only counted.
-- As a module (require): M.drive(first, last, calls, timeout_s, strict, mode) -> ok, report.

local M = {}
local LOG_KEEP = 60            -- calls kept in the log file

-- ------------------------------------------------------------ deterministic generator
-- 64-bit LCG (wrapping integer arithmetic is defined in Lua 5.4); high bits out.
local function rng_new(seed)
  local s = seed * 2654435761 + 12345
  local r = {}
  function r.next()
    s = s * 6364136223846793005 + 1442695040888963407
    return (s >> 33)
  end
  function r.int(n) return r.next() % n + 1 end       -- 1..n
  function r.chance(p) return (r.next() % 1000000) < p * 1000000 end
  function r.pick(list) return list[r.int(#list)] end
  return r
end

-- ------------------------------------------------------------ the child: one seed

local function run_seed(seed, ncalls, logpath, mode)
  local keras = require("keras")
  local K, sparse, core = keras.backend, keras.sparse, keras.core
  local R = rng_new(seed)
  local names = setmetatable({}, {__mode = "k"})   -- pool object -> its name in the log
  local tmpdir = os.getenv("LUA_FUZZ_SCRATCH") or "."

  -- ---------------------------------------------------------- the call log
  local ring, nring = {}, 0
  local logf
  local function log_reopen()
    if not logpath then return end
    if logf then logf:close() end
    logf = io.open(logpath, "w")
    if not logf then return end
    logf:write(string.format("# lua_api_fuzz seed %d: last calls, oldest first\n", seed))
    local first = math.max(1, nring - LOG_KEEP + 1)
    for i = first, nring do logf:write(ring[i % LOG_KEEP + 1], "\n") end
    logf:flush()
  end
  local function log(line)
    nring = nring + 1
    ring[nring % LOG_KEEP + 1] = line
    if logf then
      if nring % 500 == 0 then log_reopen() else logf:write(line, "\n"); logf:flush() end
    end
  end

  local function describe(v, depth)
    depth = depth or 0
    if names[v] then return names[v] end
    local tv = type(v)
    if tv == "number" then
      if math.type(v) == "integer" then return tostring(v) end
      if v ~= v then return "0/0" end
      return string.format("%.17g", v)
    elseif tv == "string" then
      if #v > 40 then return string.format("%q..(%d bytes)", v:sub(1, 40), #v) end
      return string.format("%q", v)
    elseif tv == "table" then
      if depth > 1 then return "{...}" end
      local parts, n = {}, 0
      for i = 1, 8 do
        local x = rawget(v, i)
        if x == nil then break end
        n = n + 1; parts[n] = describe(x, depth + 1)
      end
      local keys = {}
      for k in next, v do
        if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
        if #keys > 12 then break end
      end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do
        parts[#parts + 1] = "[" .. describe(k, 2) .. "]=" .. describe(rawget(v, k), depth + 1)
      end
      return "{" .. table.concat(parts, ", ") .. "}"
    end
    return tv
  end

  -- ---------------------------------------------------------- the pool of nasty values
  local BIG = {math.maxinteger, math.mininteger, (1 << 53) + 1, 2.0 ^ 53 + 2, 1 << 31, 1 << 32,
    1 << 40, 1e300, -1e300, math.huge, -math.huge, 0 / 0, -(1 << 31), 2 ^ 62}
  local SMALL = {0, 1, 2, 3, 4, -1, -2, -0.0, 0.5, 1.5, -0.5, 1e-300, 5e-324, 1.0, 2.0, 7}
  local STRINGS = {"", "a", "csr", "row_sparse", "default", "float32", "float64", "int64", "int32",
    "relu", "softmax", "sigmoid", "tanh", "linear", "mse", "mae", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "accuracy", "sgd", "adam",
    "adagrad", "rmsprop", "ftrl", "glorot_uniform", "zeros", "normal", "pad", "discard",
    "roll_over", "auto", "loss", "val_loss", "min", "max", "\0", "%s%d%n", string.rep("x", 300),
    "fz_out.bin", "fz_model.klm", "fz_log.csv", "fz_{epoch:02d}.klm", "fz_data.svm",
    "fz_data.svm.gz", "/nonexistent/dir/file", tmpdir, "1", "-1", "nan", "cpu(0)", "dense_1",
    "transpose_a", "units"}
  local OPT_KEYS = {"dtype", "shape", "stype", "sparse", "name", "units", "activation",
    "use_bias", "sparse_weight", "kernel_initializer", "bias_initializer", "input_dim",
    "output_dim", "input_length", "sparse_grad", "embeddings_initializer", "rate", "axis",
    "optimizer", "loss", "metrics", "batch_size", "epochs", "verbose", "shuffle",
    "validation_data", "validation_split", "callbacks", "learning_rate", "momentum", "nesterov",
    "weight_decay", "clipvalue", "rescale_grad", "lazy_update", "beta_1", "beta_2", "epsilon",
    "mean", "stddev", "low", "high", "seed", "transpose_a", "transpose_b", "keepdims", "data",
    "label", "last_batch_handle", "path", "n_features", "zero_based", "num_parts", "part_index",
    "filename", "filepath", "monitor", "patience", "min_delta", "restore_best_weights",
    "save_best_only", "mode", "schedule", "inputs", "outputs", "layers", "device", "value",
    "indices", "indptr", "row", "col", "density", "bogus_key", 1, 2}
  -- plausible values per option key (smart calls draw these most of the time)
  local OPT_VALS = {
    dtype = {"float32", "float64", "int64", "int8"}, stype = {"default", "csr", "row_sparse", "coo"},
    sparse = {true, false}, units = {1, 2, 3, 0, -3, 2.5}, activation = {"relu", "softmax",
    "sigmoid", "tanh", "linear", "bogus"}, use_bias = {true, false}, sparse_weight = {true, false},
    input_dim = {1, 5, 10, 0}, output_dim = {1, 4, 0}, input_length = {3, 1, 0}, sparse_grad = {true, false},
    rate = {0, 0.5, 1, 1.5, -0.1}, axis = {-1, 1, 2, 3, 0, -3}, optimizer = {"sgd", "adam", "ftrl",
    "adagrad", "rmsprop", "nope"}, loss = {"mse", "mae", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge"},
    metrics = {{"accuracy"}, {"mae", "mse"}, {"sparse_categorical_accuracy"}, {"nope"}, {}},
    batch_size = {1, 2, 3, 4, 32, 0, -1}, epochs = {0, 1, 2, -1}, verbose = {0, 1, 2},
    shuffle = {true, false, "batch"}, validation_split = {0, 0.25, 0.5, 1, -0.5},
    learning_rate = {0.1, 0, -1, 1e300}, momentum = {0, 0.9, 1.5}, nesterov = {true, false},
    weight_decay = {0, 0.01}, clipvalue = {0.5, 0, -1}, lazy_update = {true, false},
    transpose_a = {true, false}, transpose_b = {true, false}, keepdims = {true, false},
    last_batch_handle = {"pad", "discard", "roll_over", "keep"}, zero_based = {true, false, "auto"},
    num_parts = {1, 2, 0}, part_index = {1, 2, 3}, n_features = {3, 5, 0}, density = {0, 0.3, 1, 2},
    mean = {0, 1}, stddev = {1, 0, -1}, low = {0, 1}, high = {1, 0}, seed = {1, 2, -1},
    monitor = {"loss", "val_loss", "nope"}, patience = {0, 1, 2}, mode = {"min", "max", "auto", "x"},
    save_best_only = {true, false}, restore_best_weights = {true, false}, min_delta = {0, 0.1},
  }
  -- keys whose huge values would be a legitimate very long run, not a bug
  local SMALL_ONLY = {epochs = true, patience = true, num_parts = true, steps_per_epoch = true,
    steps = true, validation_steps = true}
  -- The options and names of the issue 14-16 APIs: new losses and metrics, merge layers (Dot's
  -- axes / normalize), Embedding{mask_zero, weights, sharded}, regularizers, trainable,
  -- ReduceLROnPlateau, optimizer decay and Ftrl's Keras names, sample / class weights,
  -- label_map / label_offset, several outputs (loss_weights), compile{distributed},
  -- load_model's resume, metric objects, keras.distributed's op, to_categorical.
  for _, s in ipairs({"hinge", "squared_hinge", "poisson", "huber", "huber_loss", "auc", "precision",
      "recall", "top_k_categorical_accuracy", "val_auc", "l1", "l2", "l1_l2", "sum", "mean",
      "fz_foreign.safetensors", "fz_resume.klm"}) do
    STRINGS[#STRINGS + 1] = s
  end
  for _, k in ipairs({"mask_zero", "weights", "sharded", "kernel_regularizer", "bias_regularizer",
      "embeddings_regularizer", "trainable", "axes", "normalize", "factor", "min_lr", "cooldown",
      "decay", "l1_regularization_strength", "l2_regularization_strength", "learning_rate_power",
      "initial_accumulator_value", "lamda1", "sample_weight", "class_weight", "label_map",
      "label_offset", "loss_weights", "distributed", "resume", "num_thresholds", "k", "fn", "op",
      "l1", "l2", "initial_epoch", "validation_freq", "validation_steps", "steps", "num_classes",
      "foreign"}) do
    OPT_KEYS[#OPT_KEYS + 1] = k
  end
  local function user_loss(a, b) return K.mean(K.square(a - b)) end
  local function user_metric(a, b) return K.mean(K.abs(a - b)) end
  local NEW_VALS = {
    mask_zero = {true, false, 1}, sharded = {true, false, "yes"}, trainable = {true, false, 0},
    axes = {1, 2, -1, 0, 3, {1, 2}, {2, 2}, {1}, {0 / 0, 1}, "1"}, normalize = {true, false, 1},
    factor = {0.5, 0.1, 0, 1, 2, -0.5, 0 / 0}, min_lr = {0, 1e-4, -1, 0 / 0}, cooldown = {0, 1, -1, 2.5},
    decay = {0, 0.01, 1, -1, 0 / 0, math.huge}, l1_regularization_strength = {0, 0.01, -1, 0 / 0},
    l2_regularization_strength = {0, 0.01, -1, math.huge}, learning_rate_power = {-0.5, 0, 0.5, 1, 0 / 0},
    initial_accumulator_value = {0.1, 0, -1, 0 / 0}, lamda1 = {0, 0.01, -1},
    label_offset = {0, 1, -1, 0.5, 0 / 0, math.huge, math.mininteger},
    label_map = {{[-1] = 0}, {[0] = 1, [1] = 2}, {[1] = 0 / 0}, {x = 1}, {[-1] = "a"}, {}, {[1.5] = 1},
      {[1] = math.maxinteger}},
    class_weight = {{[1] = 1, [2] = 2}, {[0] = 1, [1] = 3}, {[1] = 0 / 0}, {[1] = -1}, {x = 1}, {},
      {[math.maxinteger] = 1}, {[1] = math.huge}, {[2] = 1, [3] = 0}},
    loss_weights = {{1, 0.5}, {1}, {0 / 0, 1}, {-1, 1}, {a = 1}, 2, {o1 = 1, o2 = 2}},
    distributed = {true, false, {deterministic = true}, {deterministic = "x"}, {bogus = 1}, 1},
    resume = {true, false, 1, "yes"}, num_thresholds = {2, 200, 1, 0, -1, 2.5, 4097},
    k = {1, 2, 5, 0, -1}, op = {"sum", "mean", "max", "min", "prod", 1},
    l1 = {0, 0.01, -1, 0 / 0, math.huge}, l2 = {0, 0.01, -1, 0 / 0}, initial_epoch = {0, 1, 5, -1},
    validation_freq = {1, 2, 0, -1}, validation_steps = {1, 2, 0, -1}, steps = {1, 2, 0, -1},
    num_classes = {1, 2, 3, 0, -1, 2.5}, foreign = {true, false, 1},
    kernel_regularizer = {keras.regularizers.l2(0.01), keras.regularizers.l1_l2{l1 = 0.01, l2 = 0.1},
      "l1", "l2", "l1_l2", "nope", {l1 = 1}},
    fn = {user_metric, function() return nil end, function() error("fuzz: boom from a metric fn") end},
  }
  NEW_VALS.bias_regularizer = NEW_VALS.kernel_regularizer
  NEW_VALS.embeddings_regularizer = NEW_VALS.kernel_regularizer
  for k, v in pairs(NEW_VALS) do OPT_VALS[k] = v end
  for _, l in ipairs({"squared_hinge", "poisson", "huber", user_loss, {"mse", "mae"}, {o1 = "mse"}}) do
    OPT_VALS.loss[#OPT_VALS.loss + 1] = l
  end
  for _, m in ipairs({{"auc"}, {"precision", "recall"}, {"top_k_categorical_accuracy"},
      {user_metric}, {keras.metrics.AUC{num_thresholds = 20}}, {{"mae"}, {"accuracy"}},
      {keras.metrics.TopKCategoricalAccuracy{k = 1}, "auc"}}) do
    OPT_VALS.metrics[#OPT_VALS.metrics + 1] = m
  end
  for _, o in ipairs({"Ftrl", keras.optimizers.SGD{learning_rate = 0.1, decay = 0.01}}) do
    OPT_VALS.optimizer[#OPT_VALS.optimizer + 1] = o
  end

  local tensors, sparse_tensors, objects, funcs = {}, {}, {}, {}
  local function add(list, v, name) if v ~= nil then list[#list + 1] = v; names[v] = name end end
  local function closet(t) pcall(getmetatable(t).__close, t) end

  local function nested(depth)
    local t = {}
    local cur = t
    for _ = 1, depth do local n = {}; cur[1] = n; cur = n end
    cur[1] = 1
    return t
  end

  local function build_pool()
    keras.random.seed(seed)
    local T = tensors
    local function mk(name, f, ...)
      local ok, v = pcall(f, ...)
      if ok and keras.is_tensor(v) then add(T, v, name) end
      return ok and v or nil
    end
    local dts = {"float32", "float64", "int64"}
    local shapes = {{}, {0}, {3}, {2, 3}, {2, 0}, {0, 3}, {2, 2, 2}, {1, 1, 1, 1}, {4, 1}, {1}}
    for _, dt in ipairs(dts) do
      for _, sh in ipairs(shapes) do
        mk(string.format("T[%s %s]", dt, table.concat(sh, "x")), keras.random.uniform, sh,
          {dtype = dt ~= "int64" and dt or nil, low = -2, high = 2})
      end
    end
    mk("T[int64 2x3 range]", function() return keras.range(1, 6, 1, {dtype = "int64"}):reshape{2, 3} end)
    mk("T[nan 2x2]", keras.full, {2, 2}, 0 / 0)
    mk("T[inf 3]", keras.full, {3}, math.huge)
    mk("T[labels 4]", keras.array, {1, 2, 1, 3})
    mk("X[6x3]", keras.random.uniform, {6, 3})
    mk("Y[6x1]", keras.random.uniform, {6, 1})
    mk("Y[6 labels]", keras.array, {1, 2, 2, 1, 1, 2})
    mk("Y[6x2 onehot]", keras.array, {{1, 0}, {0, 1}, {0, 1}, {1, 0}, {1, 0}, {0, 1}})
    mk("X[6x3 ids]", keras.array, {{1, 2, 0}, {9, 9, 9}, {0, 0, 0}, {3, 4, 5}, {10, 1, 1}, {11, -1, 2}})
    mk("X[6x1 ids]", keras.array, {{1}, {2}, {0}, {9}, {3}, {4}})
    mk("Y[6x1 -1/+1]", keras.array, {{-1}, {1}, {1}, {-1}, {1}, {-1}})
    mk("W[6]", keras.array, {1, 2, 0, 1, 0.5, 1})
    mk("W[6 nan,-1,inf]", keras.array, {1, 0 / 0, -1, 1, math.huge, 1})
    mk("W[6x1]", keras.array, {{1}, {2}, {0}, {1}, {0.5}, {1}})
    mk("W[4 int64]", keras.array, {1, 2, 3, 4}, {dtype = "int64"})
    local c65 = mk("X[6x5 csr]", sparse.rand, {6, 5}, "csr", 0.5, {seed = seed})
    if c65 then sparse_tensors[#sparse_tensors + 1] = c65 end
    mk("T[labels int64]", keras.array, {1, 2, 3, 2}, {dtype = "int64"})
    for _, dt in ipairs({"float32", "float64"}) do
      for _, st in ipairs({"csr", "row_sparse"}) do
        for _, sh in ipairs({{4, 5}, {3, 3}, {0, 0}, {3, 0}, {0, 4}, {5, 2}}) do
          local t = mk(string.format("S[%s %s %s]", st, dt, table.concat(sh, "x")), sparse.rand,
            sh, st, 0.4, {seed = seed, dtype = dt})
          if t then sparse_tensors[#sparse_tensors + 1] = t end
        end
        local z = mk("S[zeros " .. st .. " " .. dt .. "]", sparse.zeros, st, {3, 4}, {dtype = dt})
        if z then sparse_tensors[#sparse_tensors + 1] = z end
      end
    end
    -- closed tensors, and views of closed tensors
    for i, src in ipairs({"T[float32 2x3]", "S[csr float32 4x5]", "S[row_sparse float64 4x5]"}) do
      for _, t in ipairs(T) do
        if names[t] == src then
          local c = mk("closed" .. i, t.copy, t)
          if c then closet(c) end
          local base = mk("parent" .. i, t.copy, t)
          if base then
            mk("view" .. i .. "-of-closed", base.slice, base, 1, 1)
            closet(base)
          end
        end
      end
    end
    -- a tensor with a gradient
    local g = mk("T[with grad]", keras.random.normal, {3, 2})
    if g then pcall(g.attach_grad, g) end

    -- symbolic things, layers, models, optimizers, iterators, callbacks
    local O = objects
    local function mko(name, f, ...)
      local ok, v = pcall(f, ...)
      if ok and v ~= nil then add(O, v, name) end
      return ok and v or nil
    end
    local L = keras.layers
    local inp = mko("Input(3)", L.Input, {shape = {3}})
    local sinp = mko("Input(5,sparse)", L.Input, {shape = {5}, sparse = true})
    mko("placeholder(-1,3)", K.placeholder, {shape = {-1, 3}})
    mko("placeholder(2,2,sparse)", K.placeholder, {shape = {2, 2}, sparse = true})
    local dense = mko("Dense(2)", L.Dense, {units = 2})
    mko("Dense(1,relu,sparse_weight)", L.Dense, {units = 1, activation = "relu", sparse_weight = true})
    mko("Embedding(10,4)", L.Embedding, {input_dim = 10, output_dim = 4})
    mko("Flatten", L.Flatten, {})
    mko("Dropout(0.5)", L.Dropout, {rate = 0.5})
    mko("Concatenate", L.Concatenate, {})
    mko("GAP1D", L.GlobalAveragePooling1D, {})
    mko("Lambda(square)", L.Lambda, K.square)
    mko("Activation(tanh)", L.Activation, "tanh")
    if inp and dense then mko("node Dense(Input3)", function() return dense(inp) end) end
    local function model(name, build, compile)
      return mko(name, function()
        local m = build()
        if compile then m:compile(compile) end
        return m
      end)
    end
    model("seq(uncompiled)", function() return keras.Sequential{L.Dense{units = 2}} end)
    model("seq(Input3,Dense1,mse,sgd)", function()
      return keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}} end,
      {optimizer = "sgd", loss = "mse", metrics = {"mae"}})
    model("model(csr5->Dense2 softmax, adam)", function()
      local x = L.Input{shape = {5}, sparse = true}
      return keras.Model{inputs = x, outputs = L.Dense{units = 2, activation = "softmax"}(x)} end,
      {optimizer = "adam", loss = "sparse_categorical_crossentropy", metrics = {"accuracy"}})
    model("seq(Embedding,GAP,Dense)", function()
      return keras.Sequential{L.Input{shape = {3}}, L.Embedding{input_dim = 10, output_dim = 4,
        sparse_grad = true}, L.GlobalAveragePooling1D{}, L.Dense{units = 1, activation = "sigmoid"}} end,
      {optimizer = keras.optimizers.SGD{learning_rate = 0.1, momentum = 0.9},
       loss = "binary_crossentropy", metrics = {"binary_accuracy"}})
    if sinp then
      model("model(sinp, uncompiled)", function()
        return keras.Model{inputs = sinp, outputs = L.Dense{units = 1, sparse_weight = true}(sinp)} end)
    end
    for _, cls in ipairs({"SGD", "Adam", "Adagrad", "RMSprop", "Ftrl"}) do
      mko("opt " .. cls, keras.optimizers[cls], {})
    end
    local x = keras.random.uniform({6, 3})
    local y = keras.random.uniform({6, 1})
    mko("ArrayIterator(6x3)", keras.data_utils.ArrayIterator,
      {data = x, label = y, batch_size = 4, last_batch_handle = "roll_over"})
    mko("CB Callback", keras.callbacks.Callback, {})
    mko("CB EarlyStopping", keras.callbacks.EarlyStopping, {patience = 1})
    mko("CB History", keras.callbacks.History)
    mko("CB LRScheduler", keras.callbacks.LearningRateScheduler,
      {schedule = function(e, lr) return lr end})
    mko("CB ProgbarLogger", keras.callbacks.ProgbarLogger, {verbose = 2, out = io.open("/dev/null", "w")})
    mko("CB LambdaCallback", keras.callbacks.LambdaCallback, {on_epoch_end = function() end})
    mko("CB CSVLogger", keras.callbacks.CSVLogger, {filename = "fz_log.csv"})
    mko("CB ModelCheckpoint", keras.callbacks.ModelCheckpoint, {filepath = "fz_{epoch:02d}.klm"})
    mko("keras.cpu()", keras.cpu)
    -- issue 14-16 objects: merge layers, GlobalMaxPooling1D, Embedding{mask_zero, sharded},
    -- regularizers, metric objects, ReduceLROnPlateau, models with several outputs, merged
    -- inputs, new losses / metrics / decay, compile{distributed} (a world of one)
    mko("Add", L.Add, {})
    mko("Subtract", L.Subtract, {})
    mko("Multiply", L.Multiply, {})
    mko("Dot(axes=1)", L.Dot, {axes = 1})
    mko("Dot(axes=2,normalize)", L.Dot, {axes = 2, normalize = true})
    mko("GMP1D", L.GlobalMaxPooling1D, {})
    mko("Embedding(mask_zero)", L.Embedding, {input_dim = 10, output_dim = 4, mask_zero = true})
    mko("Embedding(sharded)", L.Embedding, {input_dim = 10, output_dim = 4, sharded = true, sparse_grad = true})
    mko("Dense(2,l2,weights)", L.Dense, {units = 2, kernel_regularizer = keras.regularizers.l2(0.01),
      weights = {keras.ones({3, 2}), keras.zeros({2})}})
    mko("reg l2", keras.regularizers.l2, 0.01)
    mko("reg l1_l2", keras.regularizers.l1_l2, {l1 = 0.01, l2 = 0.02})
    mko("metric AUC", keras.metrics.AUC, {num_thresholds = 50})
    mko("metric TopK", keras.metrics.TopKCategoricalAccuracy, {k = 2})
    mko("metric fn", keras.metrics.MeanMetricWrapper, {fn = function(a, b) return K.mean(K.abs(a - b)) end,
      name = "mfn"})
    mko("CB ReduceLROnPlateau", keras.callbacks.ReduceLROnPlateau, {monitor = "loss", patience = 0,
      factor = 0.5, min_lr = 1e-4})
    mko("CB TerminateOnNaN", keras.callbacks.TerminateOnNaN)
    model("model(2 outputs: mse, scce)", function()
      local i = L.Input{shape = {3}}
      local h = L.Dense{units = 4, activation = "relu"}(i)
      return keras.Model{inputs = i, outputs = {L.Dense{units = 1, name = "o1"}(h),
        L.Dense{units = 2, activation = "softmax", name = "o2"}(h)}} end,
      {optimizer = "adam", loss = {"mse", "sparse_categorical_crossentropy"}, loss_weights = {1, 0.5},
       metrics = {o1 = {"mae"}, o2 = {"accuracy"}}})
    model("model(Add of 2 inputs, hinge, auc)", function()
      local a, b = L.Input{shape = {3}}, L.Input{shape = {3}}
      local s = L.Add{}{L.Dense{units = 2}(a), L.Dense{units = 2}(b)}
      return keras.Model{inputs = {a, b}, outputs = L.Dense{units = 1, activation = "sigmoid"}(s)} end,
      {optimizer = keras.optimizers.Adam{learning_rate = 0.01, decay = 0.01}, loss = "hinge",
       metrics = {"auc", "precision", "recall"}})
    model("seq(Embedding mask_zero l2,GMP1D,Dense) ftrl", function()
      return keras.Sequential{L.Input{shape = {3}}, L.Embedding{input_dim = 12, output_dim = 4,
        mask_zero = true, embeddings_regularizer = keras.regularizers.l2(0.01)},
        L.GlobalMaxPooling1D{}, L.Dense{units = 1, kernel_regularizer = "l1"}} end,
      {optimizer = keras.optimizers.Ftrl{l1_regularization_strength = 0.01, learning_rate_power = -0.5},
       loss = "poisson", metrics = {keras.metrics.AUC{num_thresholds = 10}}})
    model("seq(Dense,Dense) distributed", function()
      return keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 2, activation = "tanh"},
        L.Dense{units = 1}} end,
      {optimizer = "sgd", loss = "huber", metrics = {function(a, b) return K.mean(K.abs(a - b)) end},
       distributed = {deterministic = true}})
    model("model(Dot of 2 Embeddings)", function()
      local a, b = L.Input{shape = {1}}, L.Input{shape = {1}}
      local ea = L.Flatten{}(L.Embedding{input_dim = 10, output_dim = 3, sharded = true,
        sparse_grad = true}(a))
      local eb = L.Flatten{}(L.Embedding{input_dim = 10, output_dim = 3}(b))
      return keras.Model{inputs = {a, b}, outputs = L.Dot{axes = 2, normalize = true}{ea, eb}} end,
      {optimizer = "rmsprop", loss = "squared_hinge"})
    -- a LibSVM file to read
    local f = io.open("fz_data.svm", "w")
    if f then f:write("1 1:0.5 3:2\n0 2:1\n1 1:1 2:1 3:1\n-1\n"); f:close() end
    mko("LibSVMIter", keras.data_utils.LibSVMIter, {path = "fz_data.svm", n_features = 3,
      batch_size = 2})
    local closed_file = io.open("fz_closed.txt", "w")
    if closed_file then closed_file:close(); add(O, closed_file, "closed file") end

    -- functions handed to callbacks, Lambda layers, schedules
    local fl = funcs
    add(fl, function(...) return ... end, "fn(identity)")
    add(fl, function() error("fuzz: boom from a user function") end, "fn(error)")
    add(fl, function() return nil end, "fn(nil)")
    add(fl, function() return 0 / 0 end, "fn(nan)")
    add(fl, function() return {} end, "fn({})")
    add(fl, function(...)
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        if keras.is_tensor(v) then closet(v) end
      end
    end, "fn(closes tensor args)")
    add(fl, function() collectgarbage(); collectgarbage() end, "fn(gc)")
    add(fl, function() coroutine.yield(1) end, "fn(yield)")
    add(fl, K.square, "K.square")
  end

  local draw_any   -- forward
  local function draw_number()
    if R.chance(0.35) then return R.pick(BIG) end
    return R.pick(SMALL)
  end
  local function draw_shape()
    local r = R.int(12)
    if r == 1 then return {} end
    if r == 2 then return {0} end
    if r == 3 then return {-1} end
    if r == 4 then return {R.pick(BIG)} end
    if r == 5 then return {2, R.pick(BIG)} end
    if r == 6 then return {1, 1, 1, 1, 1, 1, 1, 1, 1} end
    if r == 7 then return {0.5, 2} end
    if r == 8 then return {"2", 3} end
    if r == 9 then return {[1] = 2, [3] = 3} end
    if r == 10 then return {2, 3, x = 1} end
    return {R.int(4) - 1, R.int(4) - 1}
  end
  local function csr_fields(kind)
    local f
    if kind == "row_sparse" then
      f = {data = {{1, 2}, {3, 4}}, indices = {1, 3}, shape = {4, 2}}
    elseif kind == "coo" then
      f = {data = {1, 2, 3}, row = {1, 2, 2}, col = {2, 1, 2}, shape = {2, 2}}
    else
      f = {data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4}, shape = {3, 5}}
    end
    local mut = R.int(16)
    local keys = {}
    for k in pairs(f) do keys[#keys + 1] = k end
    table.sort(keys)
    local k = R.pick(keys)
    if mut == 1 then f[k] = nil
    elseif mut == 2 then f[k] = draw_any()
    elseif mut == 3 and type(f[k]) == "table" then f[k][R.int(#f[k])] = draw_number()
    elseif mut == 4 and type(f[k]) == "table" then f[k][#f[k] + 1] = draw_number()
    elseif mut == 5 and type(f[k]) == "table" then f[k][#f[k]] = nil
    elseif mut == 6 then f.shape = draw_shape()
    elseif mut == 7 then f.dtype = R.pick(STRINGS)
    elseif mut == 8 then f.indptr = {1, 2, 1, 4}
    elseif mut == 9 then f.indices = {3, 1, 2}
    elseif mut == 10 then
      local ok, t = pcall(keras.array, f[k], {dtype = R.pick({"float32", "float64", "int64"})})
      if ok then f[k] = t end
    elseif mut == 11 then f[k] = R.pick(tensors)
    elseif mut == 12 then f.bogus = 1
    end
    return f
  end
  local function draw_opts(keys)
    local o = {}
    for _ = 1, R.int(4) do
      local key = (keys and R.chance(0.95)) and R.pick(keys) or R.pick(OPT_KEYS)
      local vals = OPT_VALS[key]
      local v
      if vals and R.chance(0.8) then v = R.pick(vals)
      elseif key == "shape" then v = R.chance(0.7) and {R.int(4), R.int(4)} or draw_shape()
      elseif key == "data" or key == "label" or key == "indices" or key == "validation_data" or
          key == "weights" or key == "sample_weight" then
        v = R.chance(0.5) and R.pick(tensors) or {R.pick(tensors), R.pick(tensors)}
      else v = draw_any(1) end
      if SMALL_ONLY[key] and type(v) == "number" and math.abs(v) > 4 and v == v then v = 3 end
      o[key] = v
    end
    return o
  end
  local function draw_table()
    local r = R.int(22)
    if r == 1 then return {} end
    if r == 2 then return nested(R.chance(0.5) and 40 or 300) end
    if r == 3 then local t = {1, 2}; t[3] = t; return t end   -- a cycle
    if r == 4 then return {1, 2, nil, 4} end
    if r == 5 then return {{1, 2}, {3}} end
    if r == 6 then return {{1, 2}, {3, 4}} end
    if r == 7 then return {0 / 0, math.huge, -0.0} end
    if r == 8 then return {1, "x", true} end
    if r == 9 then return {math.maxinteger, math.mininteger} end
    if r == 10 then return draw_shape() end
    if r == 11 then return csr_fields(R.pick({"csr", "row_sparse", "coo"})) end
    if r == 12 then return setmetatable({}, {__index = function() error("fuzz: __index boom") end}) end
    -- a lying __len (a huge one would be a legitimate near-endless loop over "elements")
    if r == 13 then
      local n = R.pick({0, 1, 5, -1, 2.5, "x", 1e300, 0 / 0})
      return setmetatable({1, 2}, {__len = function() return n end})
    end
    if r == 14 then return {R.pick(tensors), R.pick(tensors)} end
    if r == 15 then return {R.pick(objects)} end
    if r == 16 then return {{{1}}, {{2}}} end
    -- an option table
    local o = {}
    for _ = 1, R.int(4) do
      local key = R.pick(OPT_KEYS)
      local v = draw_any(1)
      if SMALL_ONLY[key] and type(v) == "number" and math.abs(v) > 4 and v == v then v = 3 end
      o[key] = v
    end
    return o
  end
  -- a smart call draws plausible arguments: tensors, small integers, names, option tables
  local smart = false
  local SMART_STR = {"csr", "row_sparse", "default", "float32", "float64", "int64", "relu", "mse", "sgd"}
  local function draw_smart()
    local r = R.int(100)
    if r <= 40 then return R.pick(tensors) end
    if r <= 60 then return R.int(5) - 2 end
    if r <= 68 then return R.pick(SMART_STR) end
    if r <= 80 then return draw_opts() end
    if r <= 88 then return R.pick(objects) end
    if r <= 94 then return {R.int(4), R.int(4)} end
    return draw_any(1)
  end
  function draw_any(depth)
    depth = depth or 0
    if smart and depth == 0 then return draw_smart() end
    local r = R.int(100)
    if r <= 6 then return nil end
    if r <= 10 then return R.chance(0.5) end
    if r <= 30 then return draw_number() end
    if r <= 42 then return R.pick(STRINGS) end
    if r <= 65 then return R.pick(tensors) end
    if r <= 75 then return R.pick(objects) end
    if r <= 79 then return R.pick(funcs) end
    if r <= 80 then
      local co = coroutine.create(function() end)
      if R.chance(0.5) then coroutine.resume(co) end
      return co
    end
    if depth > 1 then return R.pick(SMALL) end
    return draw_table()
  end

  -- ---------------------------------------------------------- the targets
  local targets = {}
  local function target(name, fn, weight)
    for _ = 1, (weight or 1) do targets[#targets + 1] = {name = name, fn = fn} end
  end
  local function funcs_of(prefix, tbl, weight)
    local keys = {}
    for k, v in pairs(tbl) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and (type(v) == "function" or
          (type(v) == "table" and getmetatable(v) and getmetatable(v).__call)) then
        keys[#keys + 1] = k
      end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do target(prefix .. k, tbl[k], weight) end
  end
  local skip_keras = {core = true, version = true}
  do
    local keys = {}
    for k, v in pairs(keras) do if type(v) == "function" and not skip_keras[k] then keys[#keys + 1] = k end end
    table.sort(keys)
    -- keras.range over 1e7..1e10 elements is a legitimate long fill (9 s under ASan for
    -- range(1, 2^31, 3)), not a bug: such calls are skipped; larger counts fail fast and run
    local function range(first, last, step, ...)
      local f, l = tonumber(first), tonumber(last)
      local st = type(step) == "number" and step or 1
      if f and l and st == st and st ~= 0 then
        local count = math.abs((l - f) / st)
        if count >= 1e7 and count <= 1e10 then return nil end
      end
      return keras.range(first, last, step, ...)
    end
    for _, k in ipairs(keys) do target("keras." .. k, k == "range" and range or keras[k], 2) end
  end
  funcs_of("keras.random.", keras.random, 2)
  funcs_of("sparse.", sparse, 3)
  funcs_of("K.", K, 2)
  funcs_of("layers.", keras.layers, 2)
  funcs_of("models.", keras.models)
  funcs_of("optimizers.", keras.optimizers)
  funcs_of("data_utils.", keras.data_utils, 2)
  funcs_of("autograd.", keras.autograd)
  funcs_of("callbacks.", keras.callbacks)
  funcs_of("initializers.", keras.initializers)
  funcs_of("losses.", keras.losses)
  funcs_of("metrics.", keras.metrics)
  funcs_of("saving.", keras.saving)
  local core_skip = {tensor_methods = true, tensor_mt = true, version = true}
  do
    local keys = {}
    for k, v in pairs(core) do if type(v) == "function" and not core_skip[k] then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do target("core." .. k, core[k]) end
  end
  -- tensor methods and metamethods (the receiver mostly a pool tensor)
  local function recv() return R.chance(0.9) and R.pick(tensors) or draw_any() end
  do
    local keys = {}
    for k in pairs(core.tensor_methods) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      target("t:" .. k, function(...) local t = recv(); return t[k](t, ...) end, 3)
    end
  end
  local binops = {
    ["+"] = function(a, b) return a + b end, ["-"] = function(a, b) return a - b end,
    ["*"] = function(a, b) return a * b end, ["/"] = function(a, b) return a / b end,
    ["=="] = function(a, b) return a == b end, ["<"] = function(a, b) return a < b end,
    [".."] = function(a, b) return a .. b end, ["%"] = function(a, b) return a % b end,
  }
  for _, op in ipairs({"+", "-", "*", "/", "==", "<", "..", "%"}) do
    target("t" .. op .. "x", function(x) return binops[op](recv(), x) end, 2)
    target("x" .. op .. "t", function(x) return binops[op](x, recv()) end, 2)
  end
  target("-t", function() return -recv() end, 2)
  target("#t", function() return #recv() end)
  target("tostring(t)", function() return tostring(recv()) end)
  target("t[k]", function(k) return recv()[k] end, 3)
  target("t[k]=v", function(k, v) recv()[k] = v end, 3)
  target("t()", function(...) return recv()(...) end)
  target("close(t)", function() local t = recv(); return getmetatable(t).__close(t) end)
  target("gc(t)", function() local t = recv(); return getmetatable(t).__gc(t) end)
  -- methods of layers, models, optimizers, iterators, callbacks, nodes
  local METHODS = {"compile", "fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
    "predict_on_batch", "summary", "get_weights", "set_weights", "save", "save_weights",
    "load_weights", "get_layer", "add", "get_config", "count_params", "build", "call",
    "compute_output_shape", "create_state", "update", "get", "set", "get_learning_rate",
    "set_learning_rate", "batches", "reset", "next", "num_batches", "close", "on_train_begin",
    "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end",
    "set_model", "set_params", "pop", "check_input", "add_weight", "kind", "to_json", "penalty"}
  local function obj_call(mname)
    return function(...)
      local o = R.chance(0.9) and R.pick(objects) or draw_any()
      local m = o[mname]          -- may raise: that is a clean error too
      if type(m) ~= "function" then return nil end
      return m(o, ...)
    end
  end
  for _, mn in ipairs(METHODS) do target("obj:" .. mn, obj_call(mn), 2) end
  target("obj(...)", function(...) return R.pick(objects)(...) end, 4)
  -- a layer called on a node or a tensor (smart draws make these mostly plausible)
  target("layer(node)", function(x, ...)
    local l = R.pick(objects)
    if type(l) ~= "table" then return nil end
    return l(x, ...)
  end, 4)
  -- a fresh model trained on pool data with random options
  target("model:fit(fresh)", function(x, y, opts)
    local L = keras.layers
    local units = R.pick({1, 2})
    local inp = R.chance(0.5) and L.Input{shape = {3}} or L.Input{shape = {5}, sparse = true}
    local mid = R.chance(0.5) and L.Dense{units = 4, activation = R.pick({"relu", "tanh"}),
      sparse_weight = R.chance(0.3)}(inp) or inp
    local m = keras.Model{inputs = inp, outputs = L.Dense{units = units,
      activation = R.pick({"softmax", "sigmoid", "linear"})}(mid)}
    m:compile{optimizer = R.pick({"sgd", "adam", "adagrad", "rmsprop", "ftrl"}),
      loss = R.pick({"mse", "mae", "binary_crossentropy", "categorical_crossentropy",
      "sparse_categorical_crossentropy"}), metrics = {R.pick({"accuracy", "mae", "mse"})}}
    if type(opts) == "table" then opts.epochs = math.min(tonumber(opts.epochs) or 1, 2) end
    return m:fit(x, y, opts)
  end, 4)
  target("obj[k]", function(k) return R.pick(objects)[k] end)
  target("autograd.record(fn)", function(...)
    local args = table.pack(...)
    return keras.autograd.record(function()
      local t = R.pick(tensors)
      pcall(t.attach_grad, t)
      local ok, y = pcall(K.sum, K.square(t))
      if ok then return y:backward() end
      return args[1]
    end)
  end, 2)

  local X_POOL, Y_POOL, W_POOL = {}, {}, {}   -- filled after build_pool

  -- ---------------------------------------------------------- issue 14-16 APIs
  -- keras.utils, keras.regularizers and keras.distributed join the registered tables;
  -- keras.distributed only in its world of one (never under an MPI launcher, which would
  -- start MPI) and without abort (it ends the process: os.exit).
  funcs_of("utils.", keras.utils)
  funcs_of("regularizers.", keras.regularizers)
  local launched = false
  for _, v in ipairs({"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"}) do
    local s = os.getenv(v)
    if s and s ~= "" then launched = true end
  end
  if not launched then
    local d = {}
    for k, v in pairs(keras.distributed) do if k ~= "abort" then d[k] = v end end
    funcs_of("distributed.", d, 2)
  end

  -- A node of some shape for the merge layers, with the Inputs it needs and data for them.
  local function some_node(n)
    local L = keras.layers
    local r = R.int(7)
    if r == 1 or r == 2 then
      local w = r == 1 and 3 or R.pick({1, 2, 4})
      local i = L.Input{shape = {w}}
      return i, {i}, {keras.random.uniform({n, w})}
    elseif r == 3 then
      local i = L.Input{shape = {5}, sparse = true}
      return i, {i}, {sparse.rand({n, 5}, "csr", 0.4, {seed = R.int(100)})}
    elseif r == 4 then
      local i = L.Input{shape = {3}}
      local e = L.Embedding{input_dim = 10, output_dim = R.pick({3, 4}), mask_zero = R.chance(0.5)}(i)
      local ids = {}
      for k = 1, n do ids[k] = {R.int(10) - 1, R.int(10) - 1, R.int(10) - 1} end
      return e, {i}, {keras.array(ids)}
    elseif r == 5 then
      local i = L.Input{shape = {3}}
      return L.Dense{units = 3}(i), {i}, {keras.random.uniform({n, 3})}
    elseif r == 6 then
      local o = R.pick(objects)
      return o, {}, {}
    end
    return draw_any(), {}, {}
  end

  -- a merge layer (Add, Subtract, Multiply, Dot, Concatenate) on 0-3 nodes of any shapes,
  -- then half the time a model on it trained and run
  target("merge(nodes)", function(opts)
    local L = keras.layers
    local cls = R.pick({"Add", "Subtract", "Multiply", "Dot", "Dot", "Concatenate"})
    local o = opts
    if R.chance(0.7) then
      o = cls == "Dot" and {axes = R.pick(OPT_VALS.axes), normalize = R.chance(0.5)} or {}
    end
    local layer = L[cls](o)
    local n = R.pick({1, 5, 6})
    local ins, inputs, data = {}, {}, {}
    local same = R.chance(0.5) and R.pick({1, 3, 4})   -- every input Input{shape = {same}}
    for i = 1, R.pick({0, 1, 2, 2, 2, 3}) do
      local node, its, d
      if same then
        node = L.Input{shape = {same}}
        its, d = {node}, {keras.random.uniform({n, same})}
      else
        node, its, d = some_node(n)
      end
      ins[i] = node
      for k, v in ipairs(its) do inputs[#inputs + 1] = v; data[#inputs] = d[k] end
    end
    local out = layer(R.chance(0.95) and ins or draw_any())
    if R.chance(0.5) and #inputs > 0 and type(out) == "table" and type(out.shape) == "table" then
      local m = keras.Model{inputs = inputs, outputs = out}
      m:compile{optimizer = R.pick({"sgd", "adam"}), loss = R.pick({"mse", "huber", "poisson"})}
      local ysh = {n}
      for k = 2, #out.shape do ysh[k] = out.shape[k] end
      local y = keras.random.uniform(ysh)
      local x = #data == 1 and data[1] or data
      local r = R.int(4)
      if r == 1 then return m:fit(x, y, {epochs = 1, batch_size = R.pick({2, 4}), verbose = 0}) end
      if r == 2 then return m:train_on_batch(x, y) end
      if r == 3 then return m:evaluate(x, y) end
      return m:predict(x)
    end
    return out
  end, 3)

  -- labels for a loss: y for an output of `units` units on n rows
  local function labels_for(loss, n, units)
    if loss == "sparse_categorical_crossentropy" then
      local l = {}
      for k = 1, n do l[k] = R.int(units) end
      return keras.array(l)
    elseif loss == "categorical_crossentropy" then
      local l = {}
      for k = 1, n do l[k] = R.int(units) end
      return keras.utils.to_categorical(l, units)
    elseif loss == "binary_crossentropy" or loss == "hinge" or loss == "squared_hinge" then
      local l, neg = {}, (loss ~= "binary_crossentropy" and R.chance(0.5)) and -1 or 0
      for k = 1, n do
        l[k] = {}
        for j = 1, units do l[k][j] = R.chance(0.5) and 1 or neg end
      end
      return keras.array(l)
    end
    return keras.random.uniform({n, units})
  end
  local function pick_or_draw(key) return R.chance(0.85) and R.pick(OPT_VALS[key]) or draw_any(1) end

  -- a fresh model with the issue 14-16 features (Embedding mask_zero / sharded /
  -- regularizers / weights, the poolings, merged inputs, several outputs, Dense
  -- regularizers, new losses and metrics, decay, Ftrl's names, distributed) fit with
  -- sample / class weights and ReduceLROnPlateau, then evaluated, run, configured,
  -- serialized and reloaded
  target("model:fit(fresh, issue 14-16)", function(fopts)
    local L = keras.layers
    -- most calls are valid throughout (to reach the training loop and what follows); a
    -- nasty one swaps each choice for a drawn value with probability 1/4
    local nasty = R.chance(0.35)
    local function v(valid, key)
      if nasty and R.chance(0.25) then return pick_or_draw(key) end
      return valid
    end
    local n = R.pick({6, 7, 16})
    local units = R.pick({1, 1, 2, 3})
    local loss = R.pick({"mse", "mae", "hinge", "squared_hinge", "poisson", "huber", "binary_crossentropy",
      "categorical_crossentropy", "sparse_categorical_crossentropy"})
    local kind = R.int(4)
    local m, X, Y
    local act = ({poisson = "sigmoid", binary_crossentropy = "sigmoid",
      categorical_crossentropy = "softmax", sparse_categorical_crossentropy = "softmax"})[loss]
    act = act or R.pick({"linear", "tanh"})
    local function reg()
      if R.chance(0.6) then return nil end
      return v(R.pick({keras.regularizers.l2(0.01), keras.regularizers.l1(0.001), "l1", "l2",
        keras.regularizers.l1_l2{l1 = 0.001, l2 = 0.01}}), "kernel_regularizer")
    end
    if kind == 1 then
      local inp = L.Input{shape = {3}}
      local e = L.Embedding{input_dim = 10, output_dim = 4, mask_zero = v(R.chance(0.5), "mask_zero"),
        sharded = v(R.chance(0.3), "sharded"), sparse_grad = R.chance(0.5), embeddings_regularizer = reg(),
        weights = R.chance(0.2) and v({keras.random.normal({10, 4})}, "weights") or nil}(inp)
      local p = (R.chance(0.5) and L.GlobalMaxPooling1D or L.GlobalAveragePooling1D){}(e)
      m = keras.Model{inputs = inp, outputs = L.Dense{units = units, activation = act}(p)}
      local ids = {}
      for k = 1, n do ids[k] = {R.int(10) - 1, R.int(10) - 1, (nasty and R.chance(0.1)) and 10 or R.int(10) - 1} end
      X = keras.array(ids, {dtype = R.chance(0.3) and "int64" or nil})
    elseif kind == 2 then
      local a, b = L.Input{shape = {3}}, L.Input{shape = {3}}
      local cls = R.pick({"Add", "Subtract", "Multiply", "Concatenate", "Dot"})
      local s = L[cls](cls == "Dot" and {axes = v(R.pick({2, -1, {2, 2}}), "axes"), normalize = R.chance(0.5)} or {}){
        L.Dense{units = 2, kernel_regularizer = reg()}(a), L.Dense{units = 2}(b)}
      m = keras.Model{inputs = {a, b}, outputs = L.Dense{units = units, activation = act}(s)}
      X = {keras.random.uniform({n, 3}), keras.random.uniform({n, 3})}
    elseif kind == 3 then
      local x = L.Input{shape = {3}}
      local h = L.Dense{units = 4, activation = "relu", bias_regularizer = reg()}(x)
      m = keras.Model{inputs = x, outputs = {L.Dense{units = units, activation = act, name = "o1"}(h),
        L.Dense{units = 1, name = "o2"}(h)}}
      X = keras.random.uniform({n, 3})
    else
      local sp = R.chance(0.5)
      local x = sp and L.Input{shape = {5}, sparse = true} or L.Input{shape = {3}}
      local d = L.Dense{units = units, activation = act, sparse_weight = sp and R.chance(0.5),
        kernel_regularizer = reg(), bias_regularizer = reg(), trainable = v(R.chance(0.9), "trainable"),
        weights = R.chance(0.2) and v({keras.ones({sp and 5 or 3, units}), keras.zeros({units})}, "weights") or nil}
      m = keras.Model{inputs = x, outputs = d(x)}
      X = sp and sparse.rand({n, 5}, "csr", 0.4, {seed = R.int(100)}) or keras.random.uniform({n, 3})
    end
    Y = labels_for(loss, n, units)
    if kind == 3 then Y = {Y, keras.random.uniform({n, 1})} end
    local metrics
    if loss == "binary_crossentropy" then
      metrics = R.pick({{"auc"}, {"precision", "recall"}, {"accuracy"},
        {keras.metrics.AUC{num_thresholds = R.pick({2, 7, 200})}}, {"auc", "binary_accuracy", user_metric}})
    elseif loss == "categorical_crossentropy" then
      metrics = R.pick({{"top_k_categorical_accuracy"}, {keras.metrics.TopKCategoricalAccuracy{k = R.int(3)}},
        {"accuracy", user_metric}})
    elseif loss == "sparse_categorical_crossentropy" then
      metrics = R.pick({{"accuracy"}, {"sparse_categorical_accuracy"}, nil})
    else
      metrics = R.pick({{"mae"}, {user_metric}, {"mse", keras.metrics.MeanMetricWrapper{fn = user_metric,
        name = "um"}}, nil})
    end
    if kind == 3 then metrics = {o1 = metrics, o2 = {"mae"}} end
    local opt = R.pick({"sgd", "adam", "adagrad", "rmsprop", "ftrl"})
    if R.chance(0.4) then
      local cls = R.pick({"SGD", "Adam", "Adagrad", "RMSprop", "Ftrl"})
      local oo = {learning_rate = 0.05, decay = R.pick({0, 0.01, 0.5})}
      if cls == "Ftrl" then
        oo.l1_regularization_strength, oo.l2_regularization_strength = R.pick({0, 0.01}), R.pick({0, 0.1})
        oo.learning_rate_power, oo.initial_accumulator_value = R.pick({-0.5, 0, -1}), R.pick({0.1, 1})
        if R.chance(0.3) then oo.lamda1, oo.l1_regularization_strength = 0.01, nil end
      end
      if nasty then oo = draw_opts({"learning_rate", "decay", "l1_regularization_strength",
        "l2_regularization_strength", "learning_rate_power", "initial_accumulator_value", "lamda1"}) end
      opt = keras.optimizers[cls](oo)
    end
    local copts = {optimizer = v(opt, "optimizer"), loss = kind == 3 and {loss, "mse"} or v(loss, "loss"),
      metrics = v(metrics, "metrics")}
    if kind == 3 and R.chance(0.5) then copts.loss_weights = v(R.pick({{1, 0.5}, {o1 = 2}}), "loss_weights") end
    if R.chance(0.3) then copts.distributed = v(R.pick({true, false, {deterministic = true}}), "distributed") end
    m:compile(copts)
    local o = {epochs = R.int(2), batch_size = R.pick({2, 4, 32}), verbose = 0, shuffle = R.chance(0.5)}
    if R.chance(0.4) then
      o.sample_weight = v(R.chance(0.8) and keras.random.uniform({n}) or keras.ones({n, 1}), "sample_weight")
    end
    if R.chance(0.3) and loss:find("entropy") or loss:find("hinge") then
      o.class_weight = v(R.pick({{[1] = 1, [2] = 2}, {[0] = 0.5, [1] = 2}, {[-1] = 1, [1] = 3},
        {[1] = 1, [2] = 1, [3] = 0.5}}), "class_weight")
    end
    if R.chance(0.4) then
      o.callbacks = {keras.callbacks.ReduceLROnPlateau(nasty and
        draw_opts({"monitor", "factor", "patience", "cooldown", "min_lr", "min_delta", "mode", "verbose"}) or
        {monitor = R.pick({"loss", "val_loss", "auc"}), patience = R.int(2) - 1, factor = R.pick({0.5, 0.1}),
         cooldown = R.int(2) - 1, min_lr = R.pick({0, 1e-3})})}
    end
    if R.chance(0.2) then o.validation_data = {X, Y} end
    if nasty and type(fopts) == "table" then
      for k, fv in pairs(fopts) do
        if k == "epochs" then fv = math.min(tonumber(fv) or 1, 2) end
        o[k] = fv
      end
    end
    local h = m:fit(X, Y, o)
    -- afterwards: one of the other entry points, with the new arguments
    local r = R.int(9)
    if r == 1 then return m:evaluate(X, Y, R.chance(0.5) and {sample_weight = o.sample_weight} or nil) end
    if r == 2 then return m:predict(X) end
    if r == 3 then
      return m:train_on_batch(X, Y, R.chance(0.5) and {sample_weight = o.sample_weight,
        class_weight = o.class_weight} or o.sample_weight)
    end
    if r == 4 then return m:test_on_batch(X, Y, o.sample_weight) end
    if r == 5 then return keras.models.model_from_json(m:to_json()) end
    if r == 6 then return keras.models.model_from_config(m:get_config()) end
    if r == 7 then
      m:save("fz_resume.klm")
      local m2 = keras.models.load_model("fz_resume.klm", {resume = R.chance(0.7) or draw_any(1)})
      return m2:fit(X, Y, {epochs = (m2.epoch or 0) + 1, initial_epoch = m2.epoch, verbose = 0})
    end
    if r == 8 then m:save_weights("fz_w.klm"); return m:load_weights("fz_w.klm") end
    return h
  end, 5)

  -- ---- text mutations (JSON architectures, random states)
  local NASTY_LIT = {"1e999", "-1", "0", "9223372036854775807", "-9223372036854775808", "1.5", "null",
    "NaN", "[]", "{}", '"x"', "true", "1e308", "-0", "4294967297", "[[[[[[[[1]]]]]]]]", '""'}
  local CLASS_NAMES = {"Dense", "Dot", "Add", "Subtract", "Multiply", "Embedding", "InputLayer", "Model",
    "Sequential", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Concatenate", "Lambda", "L1L2", "nope"}
  local function mutate_text(s)
    for _ = 1, R.int(3) do
      local r = R.int(9)
      local len = #s
      local pos = len > 0 and R.int(len) or 1
      if r == 1 then s = s:sub(1, pos - 1)
      elseif r == 2 then
        -- a number replaced
        local hits = {}
        for a, b in s:gmatch("()%-?%d+%.?%d*[eE]?[%-+]?%d*()") do hits[#hits + 1] = {a, b} end
        if #hits > 0 then
          local h = R.pick(hits)
          s = s:sub(1, h[1] - 1) .. R.pick(NASTY_LIT) .. s:sub(h[2])
        end
      elseif r == 3 then
        -- a string value replaced by a class name or a nasty literal
        local hits = {}
        for a, b in s:gmatch('()"[%w_]+"()') do hits[#hits + 1] = {a, b} end
        if #hits > 0 then
          local h = R.pick(hits)
          s = s:sub(1, h[1] - 1) .. (R.chance(0.6) and ('"' .. R.pick(CLASS_NAMES) .. '"') or R.pick(NASTY_LIT)) ..
            s:sub(h[2])
        end
      elseif r == 4 then s = s:sub(1, pos - 1) .. s:sub(pos + 1)
      elseif r == 5 then s = s:sub(1, pos - 1) .. string.char(R.int(256) - 1) .. s:sub(pos)
      elseif r == 6 then s = s:sub(1, pos - 1) .. string.rep("[", 300) .. s:sub(pos)
      elseif r == 7 then s = s:gsub("true", "false", 1)
      elseif r == 8 then
        -- a bracketed part doubled
        local a = s:find("[%[{]", pos)
        if a then
          local b = s:find("[%]}]", a)
          if b then s = s:sub(1, b) .. "," .. s:sub(a, b) .. s:sub(b + 1) end
        end
      else s = s .. R.pick(NASTY_LIT) end
    end
    return s
  end
  local function pool_models()
    local l = {}
    for _, o in ipairs(objects) do
      if type(o) == "table" and type(rawget(o, "compiled")) == "boolean" then l[#l + 1] = o end
    end
    return l
  end
  local function mutate_table(t, depth)
    if type(t) ~= "table" or depth > 6 then return end
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    if #keys == 0 then return end
    local k = R.pick(keys)
    -- into plain tables only: a value an earlier mutation put there may be a pool object
    if type(t[k]) == "table" and getmetatable(t[k]) == nil and R.chance(0.7) then
      return mutate_table(t[k], depth + 1)
    end
    local r = R.int(4)
    if r == 1 then t[k] = nil
    elseif r == 2 then t[k] = draw_any(1)
    elseif r == 3 then t[k] = R.pick(CLASS_NAMES)
    else t[k] = R.pick(BIG) end
  end

  -- model_from_json of a pool model's architecture, mutated; model_from_config of a mutated config
  target("models.model_from_json(mutated)", function()
    local ms = pool_models()
    local m = R.pick(ms)
    local ok, js = pcall(m.to_json, m)
    if not ok or type(js) ~= "string" then js = '{"class_name":"Sequential","config":{"layers":[]}}' end
    js = mutate_text(js)
    local m2 = keras.models.model_from_json(js)
    if R.chance(0.5) and type(m2) == "table" then
      m2:compile{optimizer = "sgd", loss = "mse"}
      return m2:predict(R.pick(X_POOL))
    end
    return m2
  end, 3)
  target("models.model_from_config(mutated)", function()
    local m = R.pick(pool_models())
    local cfg = keras.saving.architecture(m)   -- {class_name =, config = get_config()}
    for _ = 1, R.int(3) do mutate_table(cfg, 0) end
    return keras.models.model_from_config(cfg)
  end, 2)

  -- keras.random.set_state of a mutated state, then draws from the generator
  target("random.set_state(mutated)", function()
    local s = keras.random.get_state()
    local r = R.int(7)
    if r >= 6 then
      -- a valid state: one hex digit changed, or the state itself after other draws
      if r == 6 then
        local pos = R.int(16)
        s = s:sub(1, pos - 1) .. string.format("%x", R.int(16) - 1) .. s:sub(pos + 1)
      end
      keras.random.normal({R.int(5)})
    elseif r == 1 then s = mutate_text(s)
    elseif r == 2 then s = s:gsub("%x", "0")
    elseif r == 3 then s = s:gsub("%x", "f")
    elseif r == 4 then s = s:sub(1, R.int(#s))
    else s = draw_any(1) end
    keras.random.set_state(s)
    local t = keras.random.uniform({R.int(4), R.int(4)})
    if R.chance(0.5) then return K.dot(sparse.rand({3, 4}, "csr", 0.5), keras.random.normal({4, 2})) end
    return t
  end, 2)

  -- ---- safetensors files: foreign (as Python's safetensors writes them) and keras-lua's
  -- own with their checksums recomputed after a mutation (the training metadata's epoch and
  -- random state for load_model{resume = true})
  local CRC = {}
  for i = 0, 255 do
    local c = i
    for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
    CRC[i] = c
  end
  local function crc32(s)
    local c = 0xFFFFFFFF
    for i = 1, #s do c = CRC[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
    return c ~ 0xFFFFFFFF
  end
  local function writefile(path, bytes)
    local f = io.open(path, "wb")
    if f then f:write(bytes); f:close() end
  end
  local function readfile(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
  end
  local ST_TAGS = {"F32", "F64", "F16", "BF16", "I32", "I64", "U8", "BOOL", "I8", "F8_E4M3", "X", ""}
  local ST_SIZE = {F32 = 4, F64 = 8, F16 = 2, BF16 = 2, I32 = 4, I64 = 8, U8 = 1, BOOL = 1, I8 = 1, F8_E4M3 = 1}
  -- a safetensors file for the weights {name, shape} list, each entry possibly mutated
  local function foreign_file(specs)
    local ents, blobs, off = {}, {}, 0
    local clean = R.chance(0.4)   -- a well-formed file (F16 / BF16 / F64 entries still widened or cast)
    local function chance(p) return not clean and R.chance(p) end
    for _, sp in ipairs(specs) do
      local tag = (clean or R.chance(0.75)) and R.pick({"F32", "F32", "F64", "F16", "BF16"}) or R.pick(ST_TAGS)
      local shape = {table.unpack(sp.shape)}
      if chance(0.1) then shape[R.int(#shape + 1)] = R.pick({0, 1, 7, -1, 1 << 40, math.maxinteger}) end
      local numel = 1
      for _, d in ipairs(shape) do numel = numel * math.max(0, math.min(d, 64)) end
      local nb = numel * (ST_SIZE[tag] or 4)
      if chance(0.08) then nb = math.max(0, nb + R.pick({-1, 1, -4, 8})) end
      local bytes = {}
      for k = 1, nb do
        bytes[k] = string.char((clean or R.chance(0.9)) and ((k % 4 == 0) and 0x3f or 0) or R.int(256) - 1)
      end
      local b = table.concat(bytes)
      local o1, o2 = off, off + #b
      if chance(0.05) then o1, o2 = R.pick({o2, -1, 0, math.maxinteger}), R.pick({o1, 1e30, -8}) end
      ents[#ents + 1] = string.format('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%s,%s]}',
        not chance(0.05) and sp.name or R.pick({"", "x/y", sp.name .. "\0"}), tag,
        table.concat(shape, ","), tostring(o1), tostring(o2))
      off = off + #b
      blobs[#blobs + 1] = b
    end
    if R.chance(0.5) then
      table.insert(ents, R.int(#ents + 1), clean and '"__metadata__":{"format":"pt"}' or
        R.pick({'"__metadata__":{"format":"pt"}', '"__metadata__":{}',
        '"__metadata__":{"kl.header_crc32":"00000000"}', '"__metadata__":5', '"__metadata__":{"a":1}'}))
    end
    if chance(0.1) and #ents > 0 then ents[#ents + 1] = ents[R.int(#ents)] end   -- a duplicate name
    local h = "{" .. table.concat(ents, ",") .. "}"
    if chance(0.15) then h = mutate_text(h) end
    h = h .. string.rep(" ", (8 - #h % 8) % 8)
    local hl = #h
    if chance(0.05) then hl = R.pick({0, 1, #h + 1, 1 << 40, -1, 7}) end
    local bytes = string.pack("<i8", hl) .. h .. table.concat(blobs)
    if chance(0.1) then bytes = bytes:sub(1, R.int(#bytes)) end
    return bytes
  end
  target("load_weights(foreign safetensors)", function()
    local L = keras.layers
    local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 2, name = "fa"},
      L.Dense{units = 1, name = "fb"}}
    local specs = {{name = "fa/kernel", shape = {3, 2}}, {name = "fa/bias", shape = {2}},
      {name = "fb/kernel", shape = {2, 1}}, {name = "fb/bias", shape = {1}}}
    if R.chance(0.3) then table.remove(specs, R.int(#specs)) end
    if R.chance(0.3) then specs[#specs + 1] = {name = "step", shape = {R.int(3)}} end
    writefile("fz_foreign.safetensors", foreign_file(specs))
    local r = R.int(6)
    if r <= 3 then
      m:load_weights("fz_foreign.safetensors")
      return m:predict(keras.random.uniform({2, 3}))
    elseif r == 4 then return core.load_tensors("fz_foreign.safetensors", R.chance(0.8) and
      {foreign = true, fn = "load_weights"} or draw_opts({"foreign", "fn"}))
    elseif r == 5 then return keras.models.load_model("fz_foreign.safetensors")
    end
    local pm = R.pick(pool_models())
    return pm:load_weights("fz_foreign.safetensors")
  end, 3)

  -- a keras-lua model file whose metadata (training epoch and random state, compile, the
  -- architecture) is mutated with the header checksum recomputed, loaded with resume
  target("load_model(mutated metadata, resume)", function()
    local L = keras.layers
    local m = keras.Sequential{L.Input{shape = {3}}, L.Dense{units = 1}}
    m:compile{optimizer = R.pick({"sgd", "adam", "ftrl"}), loss = "mse"}
    local X, Y = keras.random.uniform({4, 3}), keras.random.uniform({4, 1})
    m:fit(X, Y, {epochs = 1, verbose = 0, batch_size = 2})
    m:save("fz_resume.klm")
    local b = readfile("fz_resume.klm")
    if not b or #b < 8 then return nil end
    local hl = string.unpack("<i8", b)
    local h, rest = b:sub(9, 8 + hl), b:sub(9 + hl)
    local key = R.pick({"training", "compile", "architecture", "format"})
    -- the value of "key" in __metadata__ is a JSON string holding JSON: mutate inside it
    local a, e = h:find('"' .. key .. '":"', 1, true)
    if a then
      local stop = e + 1
      while stop <= #h do
        local ch = h:sub(stop, stop)
        if ch == "\\" then stop = stop + 2
        elseif ch == '"' then break
        else stop = stop + 1 end
      end
      local inner = h:sub(e + 1, stop - 1)
      local r = R.int(4)
      if r == 1 then inner = mutate_text(inner)
      elseif r == 2 then inner = inner:gsub('rng_state\\":\\"[^\\]*', 'rng_state\\":\\"' ..
        R.pick({"", "0 0 0 0 0 0", "zz", "ffffffffffffffff ffffffffffffffff", string.rep("9", 200)}))
      elseif r == 3 then inner = inner:gsub('epoch\\":%-?%d+', 'epoch\\":' .. R.pick(NASTY_LIT))
      else inner = R.pick({"x", "{}", "[]", "null", "1", ""}) end
      inner = inner:gsub('([^\\])"', '%1\\"')
      h = h:sub(1, e) .. inner .. h:sub(stop)
    end
    h = h:gsub("%s+$", "")
    h = h .. string.rep(" ", (8 - #h % 8) % 8)
    local ca, ce = h:find('"kl.header_crc32":"', 1, true)
    if ca then
      h = h:sub(1, ce) .. "00000000" .. h:sub(ce + 9)
      h = h:sub(1, ce) .. string.format("%08x", crc32(h)) .. h:sub(ce + 9)
    end
    writefile("fz_resume.klm", string.pack("<i8", #h) .. h .. rest)
    local m2 = keras.models.load_model("fz_resume.klm", {resume = R.chance(0.8)})
    if R.chance(0.7) then
      return m2:fit(X, Y, {epochs = math.min((tonumber(m2.epoch) or 0) + 1, 3),
        initial_epoch = math.min(tonumber(m2.epoch) or 0, 2), verbose = 0, shuffle = true})
    end
    return keras.random.uniform({3})
  end, 2)

  -- Argument kinds per target for hinted calls (half the calls): T tensor, X/Y matched
  -- training data, I small integer, N number, S stype, D dtype, H small shape, O options,
  -- L list of tensors, B boolean, F csr fields, R row_sparse fields, C coo fields, P a path.
  local HINTS = {
    ["t:tostype"] = "S", ["t:astype"] = "D", ["t:slice"] = "I I", ["t:get"] = "I I", ["t:reshape"] = "H",
    ["t:copyto"] = "T", ["t:attach_grad"] = "O:grad", ["t:item"] = "", ["t:backward"] = "",
    ["K.dot"] = "T T O:dot", ["sparse.dot"] = "T T O:dot", ["K.sum"] = "T I B", ["K.mean"] = "T I B",
    ["K.concatenate"] = "L I", ["K.softmax"] = "T I", ["K.variable"] = "T O:dtype", ["K.constant"] = "N O",
    ["sparse.cast_storage"] = "T S", ["sparse.retain"] = "T H", ["sparse.rand"] = "H S N O:rand",
    ["sparse.csr_matrix"] = "F", ["sparse.row_sparse_array"] = "R", ["sparse.coo_matrix"] = "C",
    ["sparse.zeros"] = "S H O:dtype", ["sparse.array"] = "T O:dtype", ["sparse.check_format"] = "T",
    ["keras.zeros"] = "H O:dtype", ["keras.ones"] = "H O:dtype", ["keras.full"] = "H N O:dtype", ["keras.range"] = "I I I",
    ["keras.array"] = "T O:dtype", ["keras.random.normal"] = "H O:random", ["keras.random.uniform"] = "H O:random",
    ["data_utils.ArrayIterator"] = "O:iter", ["data_utils.prepare_sliced_sparse_data"] = "T I",
    ["data_utils.dump_svmlight_file"] = "T T P", ["data_utils.load_svmlight_file"] = "P O:svm",
    ["obj:fit"] = "X Y O:fit", ["obj:evaluate"] = "X Y O:fit", ["obj:predict"] = "X O:fit",
    ["obj:train_on_batch"] = "X Y", ["obj:test_on_batch"] = "X Y", ["obj:predict_on_batch"] = "X",
    ["obj:check_input"] = "H", ["obj:build"] = "H", ["obj:on_epoch_end"] = "I O", ["obj:on_batch_end"] = "I O",
    ["obj:on_epoch_begin"] = "I O", ["obj:set_params"] = "O",
    ["obj:set_weights"] = "L", ["obj:update"] = "T T T", ["obj:create_state"] = "T",
    ["obj:save"] = "P", ["obj:save_weights"] = "P", ["obj:load_weights"] = "P",
    ["models.load_model"] = "P", ["layer(node)"] = "X", ["model:fit(fresh)"] = "X Y O:fit", ["obj:compile"] = "O:compile",
    ["layers.Dense"] = "O:Dense", ["layers.Embedding"] = "O:Embedding", ["layers.Input"] = "O:Input",
    ["layers.Dropout"] = "O:Dropout", ["optimizers.SGD"] = "O:optim", ["optimizers.Adam"] = "O:optim",
    ["optimizers.Ftrl"] = "O:optim", ["K.placeholder"] = "O:Input",
  }
  for _, op in ipairs({"+", "-", "*", "/"}) do HINTS["t" .. op .. "x"] = "T"; HINTS["x" .. op .. "t"] = "N" end
  -- issue 14-16 entry points (A a loss / metric name or function, W sample weights or
  -- {sample_weight =, class_weight =}, J a mutated model JSON, G a mutated model config,
  -- Z a random generator state)
  local NEW_HINTS = {
    ["K.argmax"] = "T I", ["t:argmax"] = "I", ["K.one_hot"] = "T I", ["K.minimum"] = "T T",
    ["K.maximum"] = "T N", ["K.clip"] = "T N N", ["K.pow"] = "T N", ["K.get_value"] = "T",
    ["K.set_value"] = "T T", ["utils.to_categorical"] = "T I", ["utils.plot_history"] = "O P O",
    ["metrics.AUC"] = "O:auc", ["metrics.TopKCategoricalAccuracy"] = "O:topk",
    ["metrics.MeanMetricWrapper"] = "O:mmw", ["metrics.resolve"] = "A A I", ["metrics.names"] = "O A",
    ["layers.Add"] = "O:merge", ["layers.Subtract"] = "O:merge", ["layers.Multiply"] = "O:merge",
    ["layers.Dot"] = "O:Dot", ["layers.GlobalMaxPooling1D"] = "O:merge",
    ["regularizers.l1"] = "N", ["regularizers.l2"] = "N", ["regularizers.l1_l2"] = "O:reg",
    ["regularizers.L1L2"] = "O:reg", ["regularizers.get"] = "A A A",
    ["callbacks.ReduceLROnPlateau"] = "O:rlrop", ["optimizers.Adagrad"] = "O:optim",
    ["optimizers.RMSprop"] = "O:optim", ["obj:penalty"] = "T T",
    ["models.load_model"] = "P O:load", ["saving.load_model"] = "P O:load",
    ["models.model_from_json"] = "J", ["saving.model_from_json"] = "J",
    ["models.model_from_config"] = "G", ["saving.model_from_config"] = "G",
    ["keras.random.set_state"] = "Z", ["core.random_set_state"] = "Z",
    ["core.load_tensors"] = "P O:load_tensors",
    ["distributed.allreduce"] = "T O:allreduce", ["distributed.broadcast"] = "T I",
    ["distributed.allgather"] = "T", ["data_utils.LibSVMIter"] = "O:libsvmiter",
    ["obj:train_on_batch"] = "X Y W", ["obj:test_on_batch"] = "X Y W", ["obj:evaluate"] = "X Y O:eval",
  }
  for _, l in ipairs({"hinge", "squared_hinge", "poisson", "huber", "mse", "binary_crossentropy"}) do
    NEW_HINTS["losses." .. l] = "T T"
  end
  for k, v in pairs(NEW_HINTS) do HINTS[k] = v end
  for _, u in ipairs({"transpose", "square", "sqrt", "exp", "log", "relu", "sigmoid", "tanh", "abs",
      "negative", "to_dense", "is_sparse", "int_shape"}) do HINTS["K." .. u] = "T" end
  local PATHS = {"fz_out.bin", "fz_model.klm", "fz_data.svm", "/nonexistent/dir/f", tmpdir, "",
    "fz_foreign.safetensors", "fz_resume.klm", "fz_w.klm"}
  local OPTS_FOR = {
    fit = {"batch_size", "epochs", "verbose", "shuffle", "validation_split", "validation_data",
      "sample_weight", "class_weight", "callbacks", "initial_epoch", "validation_freq", "steps_per_epoch"},
    eval = {"batch_size", "verbose", "sample_weight", "steps"},
    merge = {"name", "trainable", "dtype"}, Dot = {"axes", "normalize", "name"},
    auc = {"num_thresholds", "name"}, topk = {"k", "name"}, mmw = {"fn", "name"}, reg = {"l1", "l2"},
    rlrop = {"monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"},
    load = {"resume"}, load_tensors = {"foreign", "fn"}, allreduce = {"op"},
    libsvmiter = {"path", "n_features", "batch_size", "label_map", "label_offset", "num_parts",
      "part_index", "dtype"},
    dot = {"transpose_a", "transpose_b"}, dtype = {"dtype"}, rand = {"seed", "dtype"},
    random = {"dtype", "mean", "stddev", "low", "high", "seed"}, grad = {"stype"},
    optim = {"learning_rate", "momentum", "nesterov", "weight_decay", "clipvalue", "lazy_update",
      "beta_1", "beta_2", "epsilon", "rescale_grad", "decay", "l1_regularization_strength",
      "l2_regularization_strength", "learning_rate_power", "initial_accumulator_value", "lamda1"},
    Dense = {"units", "activation", "use_bias", "sparse_weight", "kernel_initializer", "name",
      "kernel_regularizer", "bias_regularizer", "weights", "trainable"},
    Embedding = {"input_dim", "output_dim", "input_length", "sparse_grad", "mask_zero", "weights",
      "sharded", "embeddings_regularizer"},
    Input = {"shape", "sparse", "dtype", "name"}, Dropout = {"rate", "seed"},
    iter = {"data", "label", "batch_size", "shuffle", "last_batch_handle"},
    svm = {"n_features", "zero_based", "dtype", "label_map", "label_offset"},
    compile = {"optimizer", "loss", "metrics", "loss_weights", "distributed"},
  }
  local function hinted(kind)
    local okeys = kind:match("^O:(%w+)$")
    if okeys then
      if R.chance(0.2) then return nil end
      return draw_opts(OPTS_FOR[okeys])
    end
    if kind == "T" then return R.pick(tensors)
    elseif kind == "X" then return R.chance(0.8) and R.pick(X_POOL) or R.pick(tensors)
    elseif kind == "Y" then return R.chance(0.8) and R.pick(Y_POOL) or R.pick(tensors)
    elseif kind == "I" then return R.chance(0.9) and R.int(7) - 3 or R.pick(BIG)
    elseif kind == "N" then return R.chance(0.7) and R.pick(SMALL) or R.pick(BIG)
    elseif kind == "S" then return R.pick({"default", "csr", "row_sparse", "coo", "dense"})
    elseif kind == "D" then return R.pick({"float32", "float64", "int64", "int32"})
    elseif kind == "H" then
      if R.chance(0.8) then
        local h = {}
        for i = 1, R.int(3) do h[i] = R.int(5) - 1 end
        return h
      end
      return draw_shape()
    elseif kind == "O" then return draw_opts()
    elseif kind == "L" then
      local l = {}
      for i = 1, R.int(3) do l[i] = R.pick(tensors) end
      return l
    elseif kind == "B" then return R.chance(0.5)
    elseif kind == "F" then return csr_fields("csr")
    elseif kind == "R" then return csr_fields("row_sparse")
    elseif kind == "C" then return csr_fields("coo")
    elseif kind == "P" then return R.pick(PATHS)
    elseif kind == "A" then
      return R.pick({"mse", "hinge", "huber", "poisson", "auc", "precision", "recall", "accuracy",
        "top_k_categorical_accuracy", "l1", "l2", "nope", K.square})
    elseif kind == "W" then
      if R.chance(0.5) then return R.pick(W_POOL) end
      return {sample_weight = R.chance(0.7) and R.pick(W_POOL) or draw_any(1),
        class_weight = R.chance(0.5) and R.pick(OPT_VALS.class_weight) or nil}
    elseif kind == "J" or kind == "G" then
      local m = R.pick(pool_models())
      if kind == "J" then
        local ok, js = pcall(m.to_json, m)
        return mutate_text(ok and type(js) == "string" and js or "{}")
      end
      local ok, cfg = pcall(m.get_config, m)
      if not ok then return draw_any() end
      for _ = 1, R.int(3) do mutate_table(cfg, 0) end
      return cfg
    elseif kind == "Z" then
      local st = keras.random.get_state()
      return R.chance(0.3) and st or mutate_text(st)
    end
    return draw_any()
  end
  local function hinted_args(name)
    local h = HINTS[name]
    if not h then return nil end
    local args, n = {}, 0
    for kind in h:gmatch("%S+") do
      n = n + 1
      args[n] = R.chance(0.9) and hinted(kind) or draw_any()
    end
    return args, n
  end

  -- ---------------------------------------------------------- lifecycle sequences
  -- Objects closed (`<close>`, core.close, __gc / __close called by hand, it:close()),
  -- collected and used again at random points, also from inside fit's callbacks: the
  -- training data, the validation data, a model's graph, plans and weights, an iterator
  -- and its batches, while the C batch loop runs. Any call may raise a clean string error
  -- ("... tensor is closed"); none may crash or make a sanitizer report. The actions are
  -- logged ("    lc ...") under the call that runs them, to rebuild a reproducer.
  local lc_targets = {}
  local function lc_target(name, fn, weight)
    target(name, fn, weight)
    for _ = 1, (weight or 1) do lc_targets[#lc_targets + 1] = {name = name, fn = fn} end
  end
  local function lc_log(fmt, ...) log("    lc " .. string.format(fmt, ...)) end
  -- Closes v the way `how` (1..4) says: a tensor by a <close> block, core.close, __gc or
  -- __close; another userdata (graph, plan, iterator, model file) by __close; a table with
  -- a close method (LibSVMIter) by it.
  local function close_any(v, how)
    how = how or R.int(4)
    if v == nil then return end
    if keras.is_tensor(v) then
      if how == 1 then do local _ <close> = v end
      elseif how == 2 then core.close(v)
      elseif how == 3 then getmetatable(v).__gc(v)
      else getmetatable(v).__close(v) end
    elseif type(v) == "userdata" then
      local mt = getmetatable(v)
      if type(mt) == "table" and mt.__close then mt.__close(v) end
    elseif type(v) == "table" and type(rawget(v, "close") or v.close) == "function" then
      v:close()
    end
  end
  local function model_part(m, k)
    if type(m) ~= "table" then return nil end
    if k == 1 then return type(rawget(m, "gs")) == "table" and m.gs.g or nil end
    if k == 2 then return rawget(m, "_train_plan") end
    if k == 3 then return rawget(m, "_infer_plan") end
    local ok, ws = pcall(m.get_weight_tensors, m)
    return ok and type(ws) == "table" and #ws > 0 and ws[R.int(#ws)] or nil
  end
  -- Closing a model's graph closes the graph every keras.layers.Input of its session adds to
  -- (Keras' default graph): later calls build on a fresh default graph by themselves.
  local function close_graph_of(m)
    local g = model_part(m, 1)
    if g ~= nil then close_any(g) end
  end
  -- What a callback (or the code after fit) may do; ctx: m, X, y, Xv, yv, it, last (the
  -- iterator's last batch).
  local LC_ACTIONS = {
    {"close X", function(c) close_any(c.X) end},
    {"close y", function(c) close_any(c.y) end},
    {"close X and y by <close>", function(c) close_any(c.X, 1); close_any(c.y, 1) end},
    {"close the validation data", function(c) close_any(c.Xv); close_any(c.yv) end},
    {"close the iterator's last batch", function(c) close_any(c.last) end},
    {"close the iterator", function(c) close_any(c.it) end},
    {"close the model's graph", function(c) close_graph_of(c.m) end},
    {"close the model's train plan", function(c) close_any(model_part(c.m, 2)) end},
    {"close the model's infer plan", function(c) close_any(model_part(c.m, 3)) end},
    {"close a model weight", function(c) close_any(model_part(c.m, 4)) end},
    {"close a pool tensor", function() close_any(R.pick(tensors)) end},
    {"collectgarbage", function() collectgarbage() end},
    {"collectgarbage step", function() collectgarbage("step", R.int(64)) end},
    {"drop X, y and collect", function(c) c.X, c.y = nil, nil; collectgarbage(); collectgarbage() end},
    {"predict (re-entrant)", function(c) return c.m:predict(c.X or R.pick(X_POOL)) end},
    {"evaluate (re-entrant)", function(c) return c.m:evaluate(c.X, c.y) end},
    {"train_on_batch (re-entrant)", function(c) return c.m:train_on_batch(c.X, c.y) end},
    {"fit (re-entrant)", function(c) return c.m:fit(c.X, c.y, {batch_size = 4, epochs = 1, verbose = 0}) end},
    {"get_weights", function(c) return c.m:get_weights() end},
    {"recompile", function(c) return c.m:compile{optimizer = "sgd", loss = "mse"} end},
    {"stop training", function(c) c.m.stop_training = true end},
    {"raise", function() error("fuzz: boom from a lifecycle callback", 0) end},
    -- issue 14-16: the sample weights closed, the model saved and reloaded with resume (the
    -- generator's state), its JSON rebuilt, the generator's state set back
    {"close the sample weights", function(c) close_any(c.sw) end},
    {"save + load_model(resume)", function(c)
      c.m:save("fz_lc.klm")
      return keras.models.load_model("fz_lc.klm", {resume = true})
    end},
    {"model_from_json(to_json)", function(c) return keras.models.model_from_json(c.m:to_json()) end},
    {"random.set_state(get_state)", function() keras.random.set_state(keras.random.get_state()) end},
  }
  local LC_HOOKS = {"on_batch_end", "on_batch_end", "on_batch_begin", "on_epoch_end", "on_epoch_begin",
    "on_train_end"}
  local function lc_data(sparse_in, n)
    local X = sparse_in and sparse.rand({n, 5}, "csr", 0.4, {seed = R.int(1000)}) or
      keras.random.uniform({n, 3})
    return X, keras.random.uniform({n, 1})
  end
  local function lc_model(sparse_in)
    local L = keras.layers
    local inp = sparse_in and L.Input{shape = {5}, sparse = true} or L.Input{shape = {3}}
    local h = inp
    if R.chance(0.5) then
      h = L.Dense{units = 4, activation = "relu", sparse_weight = sparse_in and R.chance(0.5)}(h)
    end
    local m = keras.Model{inputs = inp, outputs = L.Dense{units = 1}(h)}
    m:compile{optimizer = R.pick({"sgd", "adam", "adagrad"}), loss = "mse",
      metrics = R.chance(0.5) and {"mae"} or nil}
    return m
  end
  -- A Lua iterator over X, y (ctx.last: its last batch of x).
  local function lc_lua_iter(c, X, y, bs)
    return {num_data = R.chance(0.5) and X.shape[1] or nil, batches = function()
      local b, n = 0, X.shape[1]
      return function()
        if b >= n then return nil end
        local e = math.min(b + bs, n)
        c.last = X:slice(b + 1, e)
        local yb = y:slice(b + 1, e)
        b = e
        return c.last, yb
      end
    end}
  end

  -- a fresh model trained with 1..3 lifecycle actions in its callbacks, then reused
  lc_target("lc:fit with closing callbacks", function()
    local sparse_in = R.chance(0.4)
    local n = R.pick({6, 13, 32})
    local c = {}
    if R.chance(0.5) then K.clear_session() end   -- a graph of its own, or the session's
    c.m = lc_model(sparse_in)
    c.X, c.y = lc_data(sparse_in, n)
    local src = R.int(4)
    local fx, fy = c.X, c.y
    local bs = R.pick({1, 4, 8})
    if src == 2 then
      fx, fy = keras.data_utils.ArrayIterator{data = c.X, label = c.y, batch_size = bs}, nil
      c.it = fx
    elseif src == 3 then
      fx, fy = lc_lua_iter(c, c.X, c.y, bs), nil
      c.it = fx
    elseif src == 4 then
      keras.data_utils.dump_svmlight_file(c.X, c.y, "fz_lc.svm")
      fx, fy = keras.data_utils.LibSVMIter{path = "fz_lc.svm", n_features = sparse_in and 5 or 3,
        batch_size = bs}, nil
      if not sparse_in then fx = nil end   -- LibSVMIter yields csr: only for the sparse model
      c.it = fx
      if not fx then fx, fy, src = c.X, c.y, 1 end
    end
    local opts = {batch_size = bs, epochs = R.int(3), verbose = 0, shuffle = R.chance(0.5)}
    if R.chance(0.3) then
      c.Xv, c.yv = lc_data(sparse_in, 4)
      opts.validation_data = {c.Xv, c.yv}
    end
    local plan = {}
    for k = 1, R.int(3) do
      local a = R.pick(LC_ACTIONS)
      plan[k] = {hook = R.pick(LC_HOOKS), at = R.chance(0.15) and 0 or R.int(3), name = a[1], fn = a[2],
        protected = R.chance(0.7)}
    end
    local function run(hook, i)
      for _, a in ipairs(plan) do
        if a.hook == hook and (a.at == 0 or a.at == i) then
          lc_log("%s(%s): %s%s", hook, tostring(i), a.name, a.protected and " (pcall)" or "")
          if a.protected then pcall(a.fn, c) else a.fn(c) end
        end
      end
    end
    local cb = keras.callbacks.Callback{
      on_batch_begin = function(_, b) run("on_batch_begin", b) end,
      on_batch_end = function(_, b) run("on_batch_end", b) end,
      on_epoch_begin = function(_, e) run("on_epoch_begin", e) end,
      on_epoch_end = function(_, e) run("on_epoch_end", e) end,
      on_train_end = function() run("on_train_end", 1) end,
    }
    opts.callbacks = {cb}
    if src == 1 and R.chance(0.3) then
      c.sw = keras.random.uniform({n})
      opts.sample_weight = c.sw
    end
    if R.chance(0.3) then
      opts.callbacks[2] = keras.callbacks.ReduceLROnPlateau{monitor = "loss", patience = 0, factor = 0.5}
    end
    lc_log("fit: %s input, %d rows, %s, batch_size %d, epochs %d, shuffle %s, validation %s",
      sparse_in and "csr" or "dense", n, ({"in memory", "ArrayIterator", "Lua iterator", "LibSVMIter"})[src], bs, opts.epochs, tostring(opts.shuffle), tostring(c.Xv ~= nil))
    local ok, err = pcall(c.m.fit, c.m, fx, fy, opts)
    lc_log("fit -> %s", ok and "ok" or tostring(err))
    -- used again afterwards; the last action's error is the target's
    local k = R.int(3)
    for i = 1, k do
      local a = R.pick(LC_ACTIONS)
      lc_log("after fit: %s", a[1])
      if i < k then pcall(a[2], c) else return a[2](c) end
    end
  end, 6)

  -- a pool object (or a pool model's graph, plan or weight) closed, collected, used again
  lc_target("lc:close, collect, reuse", function()
    local v, what
    if R.chance(0.5) then
      v = R.pick(tensors); what = names[v]
    else
      local o = R.pick(objects)
      local k = R.int(5)
      v = k <= 4 and model_part(o, k) or o
      what = (names[o] or type(o)) .. ({" graph", " train plan", " infer plan", " weight", ""})[k]
      if k == 1 then v = {close = function() close_graph_of(o) end} end
    end
    lc_log("close %s", tostring(what))
    close_any(v)
    if R.chance(0.5) then collectgarbage() end
    if keras.is_tensor(v) then return R.chance(0.5) and v:totable() or v + 1 end
    local m = R.pick(objects)
    if type(m) == "table" and type(rawget(m, "compiled")) == "boolean" then
      lc_log("reuse %s", tostring(names[m]))
      if R.chance(0.5) then return m:predict(R.pick(X_POOL)) end
      return m:fit(R.pick(X_POOL), R.pick(Y_POOL), {epochs = 1, verbose = 0})
    end
  end, 3)

  -- views (slice, reshape, tostype, a csr row slice) of a closed parent, used after a collection
  lc_target("lc:views of a closed parent", function()
    local t = R.pick(tensors)
    for _ = 1, 8 do if not core.is_closed(t) then break end; t = R.pick(tensors) end
    local parent = t:copy()
    local views = {}
    local makers = {
      function(p) return p:slice(1, math.max(1, math.min(2, p.shape[1] or 1))) end,
      function(p) return p:reshape({-1}) end,
      function(p) return p:tostype(R.pick({"default", "csr", "row_sparse"})) end,
      function(p) return p:astype("float64") end,
    }
    for _, mk in ipairs(makers) do
      local ok, v = pcall(mk, parent)
      if ok and keras.is_tensor(v) then views[#views + 1] = v end
    end
    lc_log("%d views of a copy of %s, then close it", #views, tostring(names[t]))
    close_any(parent)
    collectgarbage(); collectgarbage()
    for i, v in ipairs(views) do
      if i < #views then pcall(v.totable, v) else return v:totable() end
    end
  end, 2)

  -- a raw plan whose graph, weight or feeds are closed, also from inside fit_epoch's on_batch
  lc_target("lc:raw plan, closed graph", function()
    local g = core.graph_new()
    local x = g:placeholder{shape = {-1, 3}, name = "x"}
    local y = g:placeholder{shape = {-1, 1}, name = "y"}
    local W = keras.random.normal({3, 1})
    local w = g:variable(W, true, "W")
    local d = g:op("dot", {x, w})
    local loss = g:op("mean_squared_error", {y, d})
    local p = core.plan_new(g, {feeds = {x, y}, outputs = {d}, loss = loss, weights = {w},
      optimizer = core.optimizer_new(R.pick({"sgd", "adam"}), {learning_rate = 0.1})})
    local X, Y = keras.random.uniform({R.pick({1, 5, 9}), 3}), nil
    Y = keras.random.uniform({X.shape[1], 1})
    local things = {g = g, W = W, X = X, Y = Y, p = p}
    local keys = {"g", "W", "X", "Y", "p", "gc"}
    local function act(where)
      local k = R.pick(keys)
      lc_log("%s: close %s", where, k)
      if k == "gc" then collectgarbage() else close_any(things[k]) end
    end
    if R.chance(0.7) then act("before") end
    if R.chance(0.5) then g = nil; things.g = nil; collectgarbage() end
    local r = R.int(4)
    if r == 1 then return p:forward({X, Y}, true), p:backward()
    elseif r == 2 then return p:train_step({X, Y})
    elseif r == 3 then return p:predict({X}, 2) end
    return p:fit_epoch({X}, Y, {batch_size = 2, shuffle = R.chance(0.5), on_batch = function(b)
      if b <= 2 then act("on_batch " .. b) end
      return false
    end})
  end, 2)

  -- a raw plan with many feeds (around the old 64-slot arrays), a feed list too short or long
  lc_target("lc:many feeds", function()
    local nf = R.pick({1, 63, 64, 65, 70, 130})
    local g = core.graph_new()
    local feeds, sum = {}, nil
    for i = 1, nf do
      feeds[i] = g:placeholder{shape = {-1, 1}}
      sum = sum and g:op("add", {sum, feeds[i]}) or feeds[i]
    end
    local y = g:placeholder{shape = {-1, 1}}
    local w = g:variable(keras.ones({1, 1}), true, "W")
    local d = g:op("dot", {sum, w})
    local loss = g:op("mean_squared_error", {y, d})
    feeds[nf + 1] = y
    local p = core.plan_new(g, {feeds = feeds, outputs = {d}, loss = loss, weights = {w},
      optimizer = core.optimizer_new("sgd", {learning_rate = 0.001})})
    local given = nf + R.pick({0, 0, 0, -1, 1, 64})
    local xs = {}
    for i = 1, math.max(given, 0) do xs[i] = keras.random.uniform({5, 1}) end
    local Y = keras.random.uniform({5, 1})
    lc_log("%d feeds, %d given", nf, given)
    local r = R.int(4)
    if r == 1 then return p:fit_epoch(xs, Y, {batch_size = 2, on_batch = function() collectgarbage() end}) end
    if r == 2 then return p:evaluate(xs, Y, {batch_size = 2}) end
    xs[#xs + 1] = Y
    if r == 3 then return p:train_step(xs) end
    return p:forward(xs, false)
  end, 1)

  -- ---------------------------------------------------------- valid calls: state checks
  local function expect(cond, what)
    if not cond then
      io.stderr:write("lua_api_fuzz: state corrupted: " .. what .. "\n")
      if logf then logf:write("# STATE CORRUPTED: " .. what .. "\n"); logf:close() end
      os.exit(3)
    end
  end
  local sanity_model
  local function sanity(where)
    local ok, err = pcall(function()
      local a = keras.array{{1, 2}, {3, 4}}
      local b = keras.array{{5, 6}, {7, 8}}
      local c = K.dot(a, b):totable()
      expect(c[1][1] == 19 and c[1][2] == 22 and c[2][1] == 43 and c[2][2] == 50, "dot " .. where)
      local s = sparse.csr_matrix{data = {7, 8, 9}, indices = {1, 3, 2}, indptr = {1, 3, 3, 4},
        shape = {3, 5}}
      expect(sparse.check_format(s) == true and K.sum(s):item() == 24, "csr sum " .. where)
      local d = K.dot(s, keras.ones{5, 1}):totable()
      expect(d[1][1] == 15 and d[2][1] == 0 and d[3][1] == 9, "csr dot " .. where)
      local r = (s:tostype("row_sparse") * 2):tostype("default"):totable()
      expect(r[1][3] == 16 and r[3][2] == 18, "row_sparse scale " .. where)
      expect(keras.zeros{2, 3}.shape[2] == 3 and keras.range(1, 4):totable()[4] == 4, "zeros/range " .. where)
      if not sanity_model then
        sanity_model = keras.Sequential{keras.layers.Input{shape = {2}},
          keras.layers.Dense{units = 1, kernel_initializer = "zeros"}}
        sanity_model:compile{optimizer = keras.optimizers.SGD{learning_rate = 0.1}, loss = "mse"}
      end
      local w = sanity_model:get_weights()
      sanity_model:set_weights{keras.zeros{2, 1}, keras.zeros{1}}
      local loss = sanity_model:train_on_batch(keras.array{{1, 0}, {0, 1}}, keras.array{{1}, {1}})
      if type(loss) == "table" then loss = loss[1] end
      expect(math.abs(loss - 1) < 1e-6, "train_on_batch loss " .. where .. " = " .. tostring(loss))
      local p = sanity_model:predict(keras.array{{1, 1}}):totable()
      expect(p[1][1] == p[1][1] and p[1][1] > 0, "predict after a step " .. where)
      assert(w)
    end)
    expect(ok, "a valid call failed " .. where .. ": " .. tostring(err))
    for _, t in ipairs(sparse_tensors) do
      if not core.is_closed(t) then
        local okf, ferr = pcall(sparse.check_format, t)
        expect(okf, names[t] .. " broke its format " .. where .. ": " .. tostring(ferr))
      end
    end
  end

  -- ---------------------------------------------------------- the loop
  log_reopen()
  build_pool()
  for _, t in ipairs(tensors) do
    local n = names[t]
    if n:find("^X%[") then X_POOL[#X_POOL + 1] = t end
    if n:find("^Y%[") then Y_POOL[#Y_POOL + 1] = t end
    if n:find("^W%[") then W_POOL[#W_POOL + 1] = t end
  end
  if #X_POOL == 0 then X_POOL = tensors end
  if #Y_POOL == 0 then Y_POOL = tensors end
  if #W_POOL == 0 then W_POOL = tensors end
  do
    -- callbacks lists for fit's options: the pool's callbacks, ReduceLROnPlateau among them
    local cbs = {}
    for _, o in ipairs(objects) do
      if keras.callbacks.is_callback(o) then cbs[#cbs + 1] = o end
    end
    OPT_VALS.callbacks = {{}, {R.pick(cbs)}, {R.pick(cbs), R.pick(cbs)}}
    for _, o in ipairs(cbs) do
      if names[o] == "CB ReduceLROnPlateau" then
        OPT_VALS.callbacks[#OPT_VALS.callbacks + 1] = {o}
        OPT_VALS.callbacks[#OPT_VALS.callbacks + 1] = {o, R.pick(cbs)}
      end
    end
    OPT_VALS.sample_weight = W_POOL
  end
  sanity("after the pool")
  if mode == "lifecycle" then
    -- the lifecycle sequences, with the plain close / collect / fit targets among them
    local keep = {["close(t)"] = true, ["gc(t)"] = true, ["model:fit(fresh)"] = true, ["obj:fit"] = true,
      ["obj:predict"] = true, ["obj:evaluate"] = true, ["t:totable"] = true, ["t:slice"] = true}
    local list = {}
    for _, t in ipairs(targets) do if keep[t.name] then list[#list + 1] = t end end
    for _, t in ipairs(lc_targets) do list[#list + 1] = t end
    targets = list
  elseif mode ~= nil and mode ~= "all" then
    error("lua_api_fuzz: unknown mode " .. tostring(mode) .. " (all or lifecycle)")
  end
  local internal = {}
  -- LUA_FUZZ_STATS=1: calls that returned / raised, per target (how deep the fuzzer gets)
  local stats = os.getenv("LUA_FUZZ_STATS") == "1" and {} or nil
  -- A keras Lua file's position in a message: a Lua runtime error inside keras ("attempt to
  -- index a nil value"), or an error() without level 0. Errors positioned in this harness
  -- (a receiver of the wrong type, `t .. x`) are Lua's own and not counted.
  local INTERNAL = {"keras/[%w_]+%.lua:%d+:"}
  for i = 1, ncalls do
    local tg = R.pick(targets)
    smart = R.chance(0.6)
    local args, nargs
    if R.chance(0.5) then args, nargs = hinted_args(tg.name) end
    if not args then
      nargs = R.int(5) - 1
      args = {}
      for j = 1, nargs do args[j] = draw_any() end
    end
    local descs = {}
    for j = 1, nargs do descs[j] = describe(args[j]) end
    log(string.format("#%d %s(%s)", i, tg.name, table.concat(descs, ", ")))
    smart = R.chance(0.6)   -- receivers and in-call draws
    local ok, err = pcall(tg.fn, table.unpack(args, 1, nargs))
    if stats then
      local st = stats[tg.name] or {0, 0}
      stats[tg.name] = st
      st[ok and 1 or 2] = st[ok and 1 or 2] + 1
      if not ok and st[2] <= 3 and os.getenv("LUA_FUZZ_STATS_ERR") == tg.name then
        io.stderr:write("lua_api_fuzz: stats-err ", tg.name, ": ", tostring(err), "\n")
      end
    end
    if not ok then
      if type(err) ~= "string" or #err == 0 then
        local msg = string.format("lua_api_fuzz: seed %d call #%d %s raised a %s error (%s)",
          seed, i, tg.name, type(err), describe(err))
        io.stderr:write(msg, "\n")
        if logf then logf:write("# BAD ERROR: ", msg, "\n"); logf:close() end
        os.exit(2)
      end
      for _, pat in ipairs(INTERNAL) do
        if err:find(pat) and not err:find("fuzz: ", 1, true) then
          local key = tg.name .. ": " .. err:gsub("0x%x+", "0x?"):gsub("%d+", "N")
          if not internal[key] then
            internal[key] = true
            io.stderr:write(string.format("lua_api_fuzz: internal error seed %d call #%d %s: %s\n",
              seed, i, tg.name, err))
          end
          break
        end
      end
    end
    args, err = nil, nil
    if i % 50 == 0 then sanity("after call #" .. i) end
    if i % 200 == 0 or R.chance(0.01) then collectgarbage() end
  end
  sanity("at the end")
  if stats then
    local ks = {}
    for k in pairs(stats) do ks[#ks + 1] = k end
    table.sort(ks)
    for _, k in ipairs(ks) do
      io.stderr:write(string.format("lua_api_fuzz: stats %-40s ok %5d  err %5d\n", k, stats[k][1], stats[k][2]))
    end
  end
  collectgarbage()
  if logf then logf:write("# done\n"); logf:close() end
  local n = 0
  for _ in pairs(internal) do n = n + 1 end
  io.stderr:write(string.format("lua_api_fuzz: seed %d: %d calls, %d internal-error kinds\n", seed, ncalls, n))
  return n
end
M.run_seed = run_seed

-- ------------------------------------------------------------ the driver: one child per seed

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_all(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function this_file()
  local src = debug.getinfo(1, "S").source
  src = src:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p:read("l"); p:close()
    src = cwd .. "/" .. src
  end
  return src
end

local function abs_paths(spec)
  -- LUA_PATH entries relative to the caller's cwd must survive the child's cd
  if not spec then return nil end
  local p = io.popen("pwd")
  local cwd = p:read("l"); p:close()
  return (spec:gsub("[^;]+", function(e)
    if e:sub(1, 1) ~= "/" and e ~= "" then return cwd .. "/" .. e end
    return e
  end))
end

-- drive(first, last, calls, timeout_s, strict) -> ok, report text
function M.drive(first, last, calls, timeout_s, strict, mode)
  calls = calls or 1000
  timeout_s = timeout_s or 60
  local lua = os.getenv("LUA_FUZZ_LUA") or "lua5.4"
  local ulimit = tonumber(os.getenv("LUA_FUZZ_ULIMIT_KB") or "3000000")
  local dir = os.getenv("LUA_FUZZ_DIR")
  if not dir then
    local p = io.popen("mktemp -d /tmp/lua_api_fuzz.XXXXXX")
    dir = p:read("l"); p:close()
  end
  os.execute("mkdir -p " .. sh_quote(dir))
  local me = this_file()
  local lpath = abs_paths(os.getenv("LUA_PATH_5_4"))
  local cpath = abs_paths(os.getenv("LUA_CPATH_5_4"))
  local env = ""
  if lpath then env = env .. "LUA_PATH_5_4=" .. sh_quote(lpath) .. " " end
  if cpath then env = env .. "LUA_CPATH_5_4=" .. sh_quote(cpath) .. " " end
  -- keras.utils.have_gnuplot / plot_history would start a shell to look for gnuplot at every
  -- call (slow under the preloaded sanitizers); the documented knob says it is absent
  env = env .. "KERAS_LUA_GNUPLOT=0 "
  local report, failed, internal_total = {}, 0, 0
  for seed = first, last do
    local sd = dir .. "/seed" .. seed
    os.execute("rm -rf " .. sh_quote(sd) .. " && mkdir -p " .. sh_quote(sd))
    local logp, errp = sd .. "/calls.log", sd .. "/stderr.txt"
    local cmd = string.format("cd %s && %s%s LUA_FUZZ_SCRATCH=%s timeout -s KILL %d %s %s run %d %d %s %s >/dev/null 2>%s",
      sh_quote(sd), (ulimit and ulimit > 0) and ("ulimit -v " .. math.floor(ulimit) .. " && ") or "",
      env, sh_quote(sd), timeout_s, lua, sh_quote(me), seed, calls, sh_quote(logp), mode or "all", sh_quote(errp))
    local _, how, code = os.execute("sh -c " .. sh_quote(cmd))
    local stderr = read_all(errp)
    local nint = 0
    for _ in stderr:gmatch("lua_api_fuzz: internal error") do nint = nint + 1 end
    internal_total = internal_total + nint
    local bad = not (how == "exit" and code == 0)
    local sanitizer = stderr:find("ERROR: AddressSanitizer") or stderr:find("runtime error:") or
      stderr:find("ERROR: LeakSanitizer")
    if bad or sanitizer or (strict and nint > 0) then
      failed = failed + 1
      local why
      if how == "signal" then why = "killed by signal " .. code
      elseif code == 137 or code == 124 then why = "hang (over " .. timeout_s .. " s)"
      elseif code == 2 then why = "non-string error"
      elseif code == 3 then why = "state corrupted"
      elseif sanitizer then why = "sanitizer report"
      elseif bad then why = "exit " .. tostring(code)
      else why = nint .. " internal errors (strict)" end
      local lines = {}
      for l in read_all(logp):gmatch("[^\n]+") do lines[#lines + 1] = l end
      local tail = table.concat(lines, "\n", math.max(1, #lines - 15))
      report[#report + 1] = string.format(
        "FAIL seed %d: %s\n  replay: cd %s && %s %s run %d %d %s %s\n--- last calls (%s):\n%s\n--- stderr tail:\n%s\n",
        seed, why, sd, lua, me, seed, calls, logp, mode or "all", logp, tail, stderr:sub(-3000))
    end
  end
  report[#report + 1] = string.format("lua_api_fuzz: %s mode, seeds %d..%d, %d calls each: %d failed, " ..
    "%d internal-error kinds; logs in %s", mode or "all", first, last, calls, failed, internal_total, dir)
  return failed == 0, table.concat(report, "\n")
end

-- ------------------------------------------------------------ command line
if arg and arg[0] and arg[0]:find("lua_api_fuzz%.lua$") and not package.loaded["lua_api_fuzz_main"] then
  package.loaded["lua_api_fuzz_main"] = true
  local mode = arg[1]
  if mode == "run" then
    local seed = math.tointeger(tonumber(arg[2])) or 1
    local n = math.tointeger(tonumber(arg[3] or "1000")) or 1000
    run_seed(seed, n, arg[4], arg[5])
    os.exit(0, true)   -- closing the state runs every __gc (closed tensors, views) under ASan
  elseif mode == "drive" then
    local ok, rep = M.drive(math.tointeger(tonumber(arg[2])) or 1, math.tointeger(tonumber(arg[3])) or 10,
      math.tointeger(tonumber(arg[4] or "1000")), math.tointeger(tonumber(arg[5] or "60")), arg[6] == "1", arg[7])
    print(rep)
    os.exit(ok and 0 or 1)
  else
    io.stderr:write("usage: lua5.4 lua_api_fuzz.lua run SEED [CALLS [LOG [MODE]]] | " ..
      "drive FIRST LAST [CALLS [TIMEOUT_S [STRICT [MODE]]]]   (MODE: all or lifecycle)\n")
    os.exit(64)
  end
end

return M
