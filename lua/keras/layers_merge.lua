-- keras/layers_merge.lua: the merge layers Add, Subtract, Multiply, Dot (factorization
-- machines, two-tower models), with Keras 2's shape rules, and GlobalAveragePooling1D,
-- GlobalMaxPooling1D (masked after Embedding{mask_zero}); axes are
-- 1-based and count the batch axis (Dot{axes = 2} on (batch, d) inputs is Keras' axes=1).
-- install(layers, h) defines them into keras.layers (h: layers.lua's helpers).
local K = require("keras.backend")
local S = require("keras.symbolic")
local A = require("keras.argcheck")

return function(layers, h)
  local define, fail, repr, shape_str = layers.define, A.fail, A.repr, S.shape_str

  -- ---------------------------------------------------------- elementwise merges
  -- Keras' _compute_elemwise_op_output_shape on the non-batch dims (-1: unknown).
  local function merge_shape(self, s1, s2)
    local a, b = {}, {}
    for i = 2, #s1 do a[#a + 1] = s1[i] end
    for i = 2, #s2 do b[#b + 1] = s2[i] end
    if #a < #b then a, b = b, a end
    local out, off = {}, #a - #b
    for i = 1, off do out[i] = a[i] end
    for i = 1, #b do
      local x, y = a[off + i], b[i]
      if x < 0 or y < 0 then out[off + i] = -1
      elseif x == 1 then out[off + i] = y
      elseif y == 1 or x == y then out[off + i] = x
      else
        fail("%s: layer '%s': operands could not be broadcast together with shapes %s %s", self.class_name,
          self.name, shape_str(s1), shape_str(s2))
      end
    end
    return out
  end

  local function merge_build(self, shapes)
    local n = rawlen(shapes)
    if self.exactly and n ~= self.exactly then
      fail("%s: layer '%s' should be called on exactly %d inputs, got %d", self.class_name, self.name,
        self.exactly, n)
    elseif n < 2 then
      fail("%s: layer '%s' should be called on a list of at least 2 inputs, got %d", self.class_name, self.name, n)
    end
    local s = shapes[1]
    for i = 2, n do
      local full = merge_shape(self, s, shapes[i])
      s = {-1}
      for _, d in ipairs(full) do s[#s + 1] = d end
    end
  end

  -- x with rank r: Keras inserts axes after the batch axis ((b, 3) against (b, 2, 3) is
  -- (b, 1, 3)); numpy's broadcasting then lines up the rest.
  local function to_rank(self, x, r)
    if x.ndim == r then return x end
    if x.stype ~= "default" then
      fail("%s: layer '%s': a sparse input of rank %d cannot be merged with one of rank %d", self.class_name,
        self.name, x.ndim, r)
    end
    local shape = {-1}
    for _ = x.ndim + 1, r do shape[#shape + 1] = 1 end
    for i = 2, x.ndim do
      if x.shape[i] < 0 then fail("%s: layer '%s' needs known dimensions, got %s", self.class_name, self.name,
        shape_str(x.shape)) end
      shape[#shape + 1] = x.shape[i]
    end
    return S.new_node(x.gs, x.gs.g:reshape(x.id, shape), {x})
  end

  local function merge_call(op)
    return function(self, xs)
      local shapes = {}
      for i, x in ipairs(xs) do shapes[i] = x.shape end
      merge_build(self, shapes) -- again: a shared layer's later calls
      local r = 0
      for _, x in ipairs(xs) do r = math.max(r, x.ndim) end
      local y = to_rank(self, xs[1], r)
      for i = 2, #xs do y = K._apply(op, {y, to_rank(self, xs[i], r)}, nil, self.class_name) end
      return y
    end
  end

  local function merge_layer(cls, op, exactly)
    local c = define(cls, {}, function(self)
      self.multi_input = true
      self.exactly = exactly
    end)
    c.build = merge_build
    c.call = merge_call(op)
    return c
  end
  -- Add{}, Multiply{}: 2 or more inputs; Subtract{}: exactly 2 (x1 - x2).
  merge_layer("Add", "add")
  merge_layer("Subtract", "subtract", 2)
  merge_layer("Multiply", "multiply")

  -- ---------------------------------------------------------- Dot
  local function axis_of(self, v)
    local a = A.toint(v)
    if a == nil or a == 0 then
      fail("Dot: axes must be a non-zero integer or a pair of them. Received: axes=%s", repr(self.axes))
    end
    return a
  end

  -- Dot{axes =, normalize = false}: the batchwise dot product of 2 inputs over axes (one for
  -- both, or {a1, a2}); normalize: each input l2-normalized along its axis first (cosine).
  local Dot = define("Dot", {[1] = true, axes = true, normalize = true}, function(self, o)
    local ax = o.axes
    if ax == nil then ax = o[1] end
    if ax == nil then fail("Dot: axes is required (e.g. Dot{axes = -1})") end
    self.axes = ax
    if type(ax) == "table" then
      if rawlen(ax) ~= 2 or getmetatable(ax) ~= nil then
        fail("Dot: axes must be a non-zero integer or a pair of them. Received: axes=%s", repr(ax))
      end
      self.axes_pair = {axis_of(self, ax[1]), axis_of(self, ax[2])}
      self.axes = {self.axes_pair[1], self.axes_pair[2]} -- not the caller's table
    else
      local a = axis_of(self, ax)
      self.axes_pair = {a, a}
    end
    self.normalize = h.opt_bool("Dot", "normalize", o.normalize, false)
    self.multi_input = true
  end)

  -- The 1-based axes of the two shapes, checked as Keras does.
  local function dot_axes(self, s1, s2)
    local ax = {}
    for i, s in ipairs({s1, s2}) do
      local a = self.axes_pair[i]
      local r = a < 0 and #s + 1 + a or a
      if r < 2 or r > #s then
        fail("Dot: layer '%s': axes %d is out of range for input %d of shape %s (axis 1 is the batch)",
          self.name, a, i, shape_str(s))
      end
      ax[i] = r
    end
    if s1[ax[1]] >= 0 and s2[ax[2]] >= 0 and s1[ax[1]] ~= s2[ax[2]] then
      fail("Dot: layer '%s': dimension incompatibility %d ~= %d. Layer shapes: %s, %s", self.name, s1[ax[1]],
        s2[ax[2]], shape_str(s1), shape_str(s2))
    end
    return ax
  end

  function Dot:build(shapes)
    if rawlen(shapes) ~= 2 then
      fail("Dot: layer '%s' should be called on a list of 2 inputs, got %d", self.name, rawlen(shapes))
    end
    local s1, s2 = shapes[1], shapes[2]
    if #s1 < 2 or #s1 > 3 or #s2 < 2 or #s2 > 3 then
      fail("Dot: layer '%s' takes inputs of rank 2 or 3 (batch included), got %s and %s", self.name,
        shape_str(s1), shape_str(s2))
    end
    local ax = dot_axes(self, s1, s2)
    if #s1 == 3 and #s2 == 3 and ax[1] == 2 and ax[2] == 3 then
      fail("Dot: layer '%s': axes {2, 3} of two 3-d inputs is not supported (swap the inputs: axes {3, 2} " ..
        "gives the transposed result)", self.name)
    end
  end

  local function reshape(x, shape) return S.new_node(x.gs, x.gs.g:reshape(x.id, shape), {x}) end

  -- x / sqrt(max(sum(x^2, axis), 1e-12)), as Keras' l2_normalize.
  local function l2_normalize(x, axis)
    local ss = K.sum(K.square(x), axis, true)
    ss = K._apply("maximum_scalar", {ss}, {scalar = 1e-12}, "Dot")
    return x / K.sqrt(ss)
  end

  -- (b, d) . (b, d) -> (b, 1); with a 3-d input the contraction runs on a product
  -- broadcast to rank 4 at most ((b, n, 1, d) * (b, 1, m, d), summed over d).
  function Dot:call(xs)
    local a, b = xs[1], xs[2]
    local ax = dot_axes(self, a.shape, b.shape)
    if self.normalize then a, b = l2_normalize(a, ax[1]), l2_normalize(b, ax[2]) end
    local sa, sb = a.shape, b.shape
    if #sa == 2 and #sb == 2 then return K.sum(a * b, 2, true) end
    if #sa == 2 then -- (b, d) with (b, d, m) or (b, m, d)
      if ax[2] == 2 then return K.sum(reshape(a, {-1, sa[2], 1}) * b, 2) end
      return K.sum(reshape(a, {-1, 1, sa[2]}) * b, 3)
    elseif #sb == 2 then
      if ax[1] == 2 then return K.sum(a * reshape(b, {-1, sb[2], 1}), 2) end
      return K.sum(a * reshape(b, {-1, 1, sb[2]}), 3)
    end
    if ax[1] == 3 and ax[2] == 3 then
      return K.sum(reshape(a, {-1, sa[2], 1, sa[3]}) * reshape(b, {-1, 1, sb[2], sb[3]}), 4)
    elseif ax[1] == 3 then -- (b, n, d) . (b, d, m)
      return K.sum(reshape(a, {-1, sa[2], sa[3], 1}) * reshape(b, {-1, 1, sb[2], sb[3]}), 3)
    end -- (b, d, n) . (b, d, m)
    return K.sum(reshape(a, {-1, sa[2], sa[3], 1}) * reshape(b, {-1, sb[2], 1, sb[3]}), 2)
  end

  -- ---------------------------------------------------------- global 1-d poolings
  -- cls over the steps of (batch, steps, features): op over all of them (nil: the masked op
  -- with no mask), or after Embedding{mask_zero=true} masked_op over the steps whose id is
  -- not 0 (0 when none).
  local function pool1d(cls, op, masked_op)
    local c = define(cls, {}, function() end)
    local function check(self, shape)
      if #shape ~= 3 then
        fail("%s: layer '%s' expects a 3-d input (batch, steps, features), got %s", cls, self.name,
          shape_str(shape))
      end
    end
    c.check_input, c.build = check, check
    function c.call(_, x)
      local m = rawget(x, "_keras_mask")
      if m then return K._apply(masked_op, {x, m}, nil, cls) end
      if op then return op(x) end
      return K._apply(masked_op, {x}, nil, cls)
    end
  end
  pool1d("GlobalAveragePooling1D", function(x) return K.mean(x, 2) end, "masked_mean")
  -- (Keras 2's GlobalMaxPooling1D refuses a mask)
  pool1d("GlobalMaxPooling1D", nil, "global_max_pool")
end
