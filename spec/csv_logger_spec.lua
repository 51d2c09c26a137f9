-- spec/csv_logger_spec.lua: keras.callbacks.CSVLogger (keras/csv_logger.lua): Keras 2's
-- columns and number format, append, separators, quoting, NA, errors.
local keras = require("keras")
local csv_logger = require("keras.csv_logger")
local CSVLogger = csv_logger.install(keras.callbacks)

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".csv"
end

local support = require("support")
local slurp, err_of = support.slurp, support.err_of

-- Drives the callback as fit does, with a stand-in model.
local function run(logger, epochs)
  local model = {stop_training = false}
  logger:set_model(model)
  logger:on_train_begin({})
  for i, logs in ipairs(epochs) do
    logger:on_epoch_begin(i)
    logger:on_epoch_end(i, logs)
  end
  logger:on_train_end({})
end

describe("CSVLogger number format", function()
  it("writes floats as Python's repr and integers as integers", function()
    local f = csv_logger.format_number
    local cases = {
      {0.1, "0.1"}, {1.0, "1.0"}, {-2.0, "-2.0"}, {0.5, "0.5"}, {1e-5, "1e-05"}, {0.0001, "0.0001"},
      {1e16, "1e+16"}, {1234567890123456.0, "1234567890123456.0"}, {123456789.0, "123456789.0"},
      {1 / 3, "0.3333333333333333"}, {0.1 + 0.2, "0.30000000000000004"}, {2.5e-7, "2.5e-07"},
      {-0.0, "-0.0"}, {0.0, "0.0"}, {1e22, "1e+22"}, {1.5e300, "1.5e+300"}, {5e-324, "5e-324"},
      {0.6931471824645996, "0.6931471824645996"}, {100.25, "100.25"}, {3, "3"}, {-7, "-7"},
      {0 / 0, "nan"}, {math.huge, "inf"}, {-math.huge, "-inf"}, {12.0, "12.0"},
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], f(c[1])) end
  end)

  it("reads back the same number", function()
    local x = 0.123
    for _ = 1, 200 do
      x = (x * 7919.123 + 0.37) % 1000 / (x + 0.1)
      assert.are.equal(x, tonumber(csv_logger.format_number(x)))
    end
  end)
end)

describe("CSVLogger", function()
  it("is installed as keras.callbacks.CSVLogger and is a Callback", function()
    assert.are.equal(CSVLogger, keras.callbacks.CSVLogger)
    assert.is_true(keras.callbacks.is_callback(CSVLogger{filename = tmpname()}))
  end)

  it("writes epoch then the sorted log keys, one row per epoch (epochs from 1)", function()
    local p = tmpname()
    run(CSVLogger{filename = p}, {
      {loss = 0.5, accuracy = 0.75, val_loss = 0.25, val_accuracy = 1.0},
      {loss = 0.125, accuracy = 0.875, val_loss = 0.2, val_accuracy = 0.5},
    })
    assert.are.equal("epoch,accuracy,loss,val_accuracy,val_loss\n" ..
      "1,0.75,0.5,1.0,0.25\n" ..
      "2,0.875,0.125,0.5,0.2\n", slurp(p))
    os.remove(p)
  end)

  it("overwrites by default; append=true keeps rows and writes no second header", function()
    local p = tmpname()
    run(CSVLogger{filename = p}, {{loss = 1.0}})
    run(CSVLogger{filename = p}, {{loss = 2.0}})
    assert.are.equal("epoch,loss\n1,2.0\n", slurp(p))
    run(CSVLogger{filename = p, append = true}, {{loss = 3.0}, {loss = 4.0}})
    assert.are.equal("epoch,loss\n1,2.0\n1,3.0\n2,4.0\n", slurp(p))
    os.remove(p)
    -- append to a missing or empty file writes the header
    run(CSVLogger{filename = p, append = true}, {{loss = 1.5}})
    assert.are.equal("epoch,loss\n1,1.5\n", slurp(p))
    io.open(p, "w"):close()
    run(CSVLogger{filename = p, append = true}, {{loss = 1.5}})
    assert.are.equal("epoch,loss\n1,1.5\n", slurp(p))
    os.remove(p)
  end)

  it("takes a separator, quotes fields that need it, writes NA for missing keys", function()
    local p = tmpname()
    run(CSVLogger{filename = p, separator = ";"}, {
      {loss = 0.5, note = "a;b", lr = 0.01},
      {loss = 0.25, note = 'say "hi"'},
      {loss = 0.125, lr = {1, 2.5}, note = "x"},
    })
    assert.are.equal("epoch;loss;lr;note\n" ..
      '1;0.5;0.01;"a;b"\n' ..
      '2;0.25;NA;"say ""hi"""\n' ..
      "3;0.125;[1, 2.5];x\n", slurp(p))
    os.remove(p)
  end)

  it("flushes each row (readable during training) and can be reused for a new fit", function()
    local p = tmpname()
    local cb = CSVLogger{filename = p}
    cb:set_model({})
    cb:on_train_begin()
    cb:on_epoch_end(1, {loss = 0.5})
    assert.are.equal("epoch,loss\n1,0.5\n", slurp(p))
    cb:on_train_end()
    run(cb, {{mse = 2.0}})
    assert.are.equal("epoch,mse\n1,2.0\n", slurp(p))
    os.remove(p)
  end)

  it("validates its options", function()
    assert.are.equal("CSVLogger: filename must be a non-empty string. Received: filename=nil",
      err_of(CSVLogger, {}))
    assert.are.equal("CSVLogger: filename must be a non-empty string. Received: filename=",
      err_of(CSVLogger, {filename = ""}))
    assert.are.equal("CSVLogger: unknown option 'sep'", err_of(CSVLogger, {filename = "a", sep = ";"}))
    assert.are.equal("CSVLogger: separator must be a non-empty string without quotes or line " ..
      "breaks. Received: separator=", err_of(CSVLogger, {filename = "a", separator = ""}))
    assert.are.equal("CSVLogger: separator must be a non-empty string without quotes or line " ..
      "breaks. Received: separator=1", err_of(CSVLogger, {filename = "a", separator = 1}))
    assert.are.equal("CSVLogger: append must be true or false. Received: append=yes",
      err_of(CSVLogger, {filename = "a", append = "yes"}))
    assert.are.equal("CSVLogger: expected an options table {filename=, separator=, append=}",
      err_of(CSVLogger, 3))
    assert.are.equal("log.csv", CSVLogger("log.csv").filename)
  end)

  it("reports a file it cannot open", function()
    local cb = CSVLogger{filename = "/nonexistent-dir/x.csv"}
    assert.matches("^CSVLogger: cannot open '/nonexistent%-dir/x.csv': ", err_of(cb.on_train_begin, cb))
  end)
end)
