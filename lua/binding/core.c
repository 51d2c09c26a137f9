/* core.c: luaopen_keras_core, the entry point of the C module: builds the module table. */
#include <time.h>
#include <unistd.h>

#include "lbind.h"

void kl_lua_open_graph(lua_State *L); /* l_graph.c, l_plan.c: keras.Graph, keras.Plan */
void kl_lua_open_optim(lua_State *L); /* l_optim.c: keras.Optimizer, optimizer_new */
void kl_lua_open_datautil(lua_State *L); /* l_datautil.c: take_rows */
void kl_lua_open_svmlight(lua_State *L); /* l_svmlight.c: svmlight_load/dump, keras.LibSVMIter */
void kl_lua_open_modelfile(lua_State *L); /* l_modelfile.c: save_tensors, load_tensors */
void kl_lua_open_metric(lua_State *L); /* l_metric.c: keras.MetricAcc, metric_acc */

/* The binding files, each adding its functions to the module table on the stack top.
 * Order matters only in that the tensor metatable must exist before anything else.
 * Later binding files (graph, layers, optimizers, data_utils, ...) add their opener here. */
static void (*const openers[])(lua_State *L) = {
    kl_lua_open_tensor,    /* l_tensor.c: the keras.Tensor metatable, fields, methods */
    kl_lua_open_construct, /* l_construct.c: array, zeros, ones, full, range, random_* */
    kl_lua_open_sparse,    /* l_sparse.c: csr_matrix, coo_matrix, row_sparse_array, ... */
    kl_lua_open_ops,       /* l_ops.c: op(), the arithmetic metamethods */
    kl_lua_open_mem,       /* l_mem.c: set_gc_threshold, memory_info (the collector) */
    kl_lua_open_capi,      /* l_capi.c: core._capi, the C API of companion modules */
    kl_lua_open_rng_state, /* l_rng.c: random_get_state / random_set_state */
    kl_lua_open_graph,     /* l_graph.c, l_plan.c: graph_new, plan_new, metric_resolve */
    kl_lua_open_optim,     /* l_optim.c: optimizer_new, the keras.Optimizer metatable */
    kl_lua_open_datautil,  /* l_datautil.c: take_rows (ArrayIterator) */
    kl_lua_open_svmlight,  /* l_svmlight.c: svmlight_load/dump, svmlight_iter_open */
    kl_lua_open_modelfile, /* l_modelfile.c: save_tensors, load_tensors (model files) */
    kl_lua_open_metric,    /* l_metric.c: metric_acc (a metric's running state) */
    NULL,
};

/* core.now() -> seconds on a monotonic clock (progress bars, timing in examples). */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
  return 1;
}

/* core.stdout_isatty() -> whether stdout is a terminal (the progress bar redraws with \r). */
static int l_stdout_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(STDOUT_FILENO));
  return 1;
}

int luaopen_keras_core(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; openers[i]; i++) openers[i](L);
  lua_pushcfunction(L, l_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, l_stdout_isatty);
  lua_setfield(L, -2, "stdout_isatty");
  lua_pushstring(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
