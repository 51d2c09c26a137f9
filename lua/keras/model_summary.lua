-- keras/model_summary.lua: Model:summary, the Keras 2 table of a model's layers with each
-- weight's stype (installed into the Model class by models.lua).
local S = require("keras.symbolic")
local A = require("keras.argcheck")

local M = {}
local shape_str = S.shape_str

local function cell(s, w)
  s = tostring(s)
  if #s > w - 1 then s = s:sub(1, w - 1) end
  return s .. string.rep(" ", w - #s)
end

-- summary(print_fn=print): the Keras 2 table, with each weight's stype.
function M.summary(self, print_fn)
  if not M.is_model(self) then
    A.fail("Model.summary: expects a keras model (model:summary()). Received: %s", A.repr(self))
  end
  print_fn = print_fn or print
  if type(print_fn) ~= "function" then
    A.fail("Model.summary: print_fn must be a function. Received: print_fn=%s", A.repr(print_fn))
  end
  local widths = {29, 26, 12, 31}
  local total_w = 98
  local function row(a, b, c, d)
    print_fn((string.gsub(cell(a, widths[1]) .. cell(b, widths[2]) .. cell(c, widths[3]) .. d, "%s+$", "")))
  end
  print_fn('Model: "' .. self.name .. '"')
  print_fn(string.rep("_", total_w))
  row("Layer (type)", "Output Shape", "Param #", "Weights (stype)")
  print_fn(string.rep("=", total_w))
  local ls = self.built and self.layers or {}
  local total, trainable = 0, 0
  for i, l in ipairs(ls) do
    local ws = {}
    for _, w in ipairs(l:weight_records()) do
      local tr = l:_weight_trainable(w) -- the layer's flag now, as Keras' summary reads it
      local g = (tr and w.grad_stype ~= w.tensor.stype) and ("(grad " .. w.grad_stype .. ")") or ""
      local sh = w.tensor._sharded and rawget(l, "_shard")
      if sh then -- Embedding{sharded = true}: the rows this rank holds
        g = g .. string.format("(sharded over %d ranks, %d rows/rank here)", sh.n, sh.rows)
      end
      ws[#ws + 1] = w.short .. ":" .. w.tensor.stype .. g
      local c = 1
      for _, d in ipairs(w.tensor.shape) do c = c * d end
      if sh then c = sh.V * l.output_dim end
      total = total + c
      if tr then trainable = trainable + c end
    end
    local oshape = l.output_shape and shape_str(l.output_shape) or "multiple"
    if l.class_name == "InputLayer" then oshape = shape_str(l.output.shape) end
    row(l.name .. " (" .. l.class_name .. ")", oshape, tostring(l:count_params()), table.concat(ws, " "))
    print_fn(string.rep(i == #ls and "=" or "_", total_w))
  end
  if #ls == 0 then print_fn(string.rep("=", total_w)) end
  print_fn("Total params: " .. total)
  print_fn("Trainable params: " .. trainable)
  print_fn("Non-trainable params: " .. (total - trainable))
  print_fn(string.rep("_", total_w))
end


-- install(Model): Model:summary = M.summary; is_model(x) tells a model from other tables.
function M.install(Model)
  Model.summary = M.summary
  M.is_model = function(x)
    local mt = getmetatable(x)
    while type(mt) == "table" do
      if mt == Model then return true end
      local up = getmetatable(mt)
      mt = up and rawget(up, "__index")
    end
    return false
  end
end

return M
