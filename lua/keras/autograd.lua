-- keras/autograd.lua: keras.autograd: imperative gradients (MXNet's autograd.record,
-- attach_grad, backward) by recording eager ops into a graph and running a plan on it.
local core = require("keras.core")
local S = require("keras.symbolic")
local A = require("keras.argcheck")

local autograd = {}

-- record(fn, ...): runs fn(...) while recording eager ops and returns what it returns.
function autograd.record(fn, ...)
  if type(fn) ~= "function" then
    error("autograd.record: expected a function (got " .. type(fn) .. ")", 0)
  end
  local prev = S.begin_record()
  local res = table.pack(pcall(fn, ...))
  S.end_record(prev)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- is_recording(): whether eager ops are being recorded now.
function autograd.is_recording() return S.recording() ~= nil end

-- pause(fn, ...): runs fn(...) without recording (MXNet's autograd.pause).
function autograd.pause(fn, ...)
  local prev = S.recording()
  S.end_record(nil)
  local res = table.pack(pcall(fn, ...))
  S.end_record(prev)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local grad_stypes = {default = true, row_sparse = true}

-- t's device as a device table (t.device is its name: "cpu(0)", "gpu(1)").
local function device_of(t)
  local kind, id = tostring(t.device):match("^(%a+)%((%d+)%)$")
  return {device_type = kind or "cpu", device_id = math.tointeger(tonumber(id or 0))}
end

-- t:attach_grad{stype="default"|"row_sparse"}: t's gradient is written to t.grad by a later
-- loss:backward(); t.grad starts as zeros of that stype.
local function attach_grad(t, opts)
  if not core.is_tensor(t) then
    A.fail("attach_grad: expects a keras.Tensor (t:attach_grad{...}). Received: t=%s", A.repr(t))
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("attach_grad: options must be a table (got " .. type(opts) .. ")", 0)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "stype" and k ~= "grad_req" then
      error("attach_grad: unknown option '" .. tostring(k) .. "'", 0)
    end
  end
  local st = opts.stype or "default"
  if not grad_stypes[st] then
    error("attach_grad: stype must be 'default' or 'row_sparse'. Received: stype=" .. tostring(st), 0)
  end
  if opts.grad_req ~= nil and opts.grad_req ~= "write" then
    error("attach_grad: only grad_req='write' is supported. Received: grad_req=" ..
      tostring(opts.grad_req), 0)
  end
  if t.dtype ~= "float32" and t.dtype ~= "float64" then
    error("attach_grad: gradients need a float tensor. Received: a tensor of dtype " .. tostring(t.dtype), 0)
  end
  if t.stype == "csr" then
    error("attach_grad: a csr tensor cannot have a gradient (it is data; differentiate a dense " ..
      "or row_sparse tensor, e.g. t:tostype(\"default\"))", 0)
  end
  t._grad_stype = st
  local grad
  if st == "row_sparse" then
    grad = core.sparse_zeros("row_sparse", t.shape, {dtype = t.dtype})
  else
    grad = core.zeros(t.shape, {dtype = t.dtype})
  end
  local dev = device_of(t)
  if dev.device_type ~= "cpu" then grad = grad:to(dev) end -- the gradient lives with t
  t.grad = grad
  return t
end

-- loss:backward(): gradients of loss (summed when not a scalar, as MXNet's head gradient of
-- ones) into .grad of every attached tensor used while recording (overwritten).
local function backward(loss)
  if not core.is_tensor(loss) then
    A.fail("backward: expects a keras.Tensor (loss:backward()). Received: loss=%s", A.repr(loss))
  end
  local rec, id = loss._ag_rec, loss._ag_id
  if not rec then
    error("backward: this tensor was not computed while recording " ..
      "(compute it inside keras.autograd.record)", 0)
  end
  local g = rec.gs.g
  local m = g:meta(id)
  if m.ndim ~= 0 then id = g:op("sum", {id}, {}) end
  local weights, stypes, tensors = {}, {}, {}
  local dev
  for _, t in ipairs(rec.leaf_list) do
    if t._grad_stype then
      tensors[#tensors + 1] = t
      weights[#weights + 1] = rec.leaves[t]
      stypes[#stypes + 1] = t._grad_stype
      if dev and t.device ~= dev then
        error(string.format("backward: the tensors with attach_grad() are on different devices " ..
          "(%s and %s)", dev, t.device), 0)
      end
      dev = t.device
    end
  end
  if #weights == 0 then
    error("backward: no tensor with attach_grad() was used in the recorded computation", 0)
  end
  -- the backward runs where the attached tensors live (a device plan copies the others there)
  local p = core.plan_new(g, {feeds = {}, outputs = {}, loss = id, weights = weights,
    grad_stypes = stypes, device = device_of(tensors[1])})
  p:forward({}, true)
  local grads = p:backward()
  for k, t in ipairs(tensors) do t.grad = grads[k] end
end

core.tensor_methods.attach_grad = attach_grad
core.tensor_methods.backward = backward
autograd.attach_grad = attach_grad
autograd.backward = backward

return autograd
