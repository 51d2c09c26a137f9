-- .luacheckrc: luacheck's settings for lua/, spec/, examples/ and bench/ (spec/luacheck_spec
-- runs `luacheck lua spec examples bench` in make test and wants it clean).
std = "lua54"
max_line_length = 130
-- callback hooks and layer methods keep Keras' signatures whether they read every argument or not
unused_args = false
ignore = {
  "512", -- `for _, v in it do first = v; break end`: the first item of an iterator
  "581", -- `not (x >= y)`: true for NaN too, on purpose (argument checks)
}
files["spec"] = {
  std = "+busted",
  max_line_length = false, -- the specs' tables of exact messages run long
  ignore = {"211/ok", "231/ok", "311"}, -- `local ok, err = pcall(...)`; `x = nil` to free before collecting
}
files["bench"] = {ignore = {"311"}} -- `xs = nil` before collectgarbage()
files["spec/terminate_on_nan_spec.lua"] = {ignore = {"122"}} -- swaps io.stdout/io.stderr to capture them
