-- keras-lua-scm-1.rockspec: `luarocks make` in a clone builds the C core with CMake and
-- installs keras (keras/*.lua and keras/core.so) into the luarocks tree, where lua5.4 finds
-- it (`eval "$(luarocks path)"` for a user tree). Needs the Debian packages of the Makefile's
-- DEPS (cmake, liblua5.4-dev, libopenblas-dev, zlib1g-dev, gcc).
rockspec_format = "3.0"
package = "keras-lua"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "A sparse-first deep-learning engine in C11 with the Keras API for Lua 5.4",
  detailed = [[
CSR and row_sparse tensors with MXNet's storage-type inference, sparse kernels, lazy
optimizers, the Keras model API (compile / fit / evaluate / predict with the training loop in
C), LibSVM data in and out, and model files in the safetensors layout.]],
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    KL_INSTALL_LMOD = "$(LUADIR)",
    KL_INSTALL_CMOD = "$(LIBDIR)",
    KL_TESTS = "OFF",
  },
}
