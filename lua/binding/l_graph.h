/* l_graph.h: the graph and plan userdata shared by l_graph.c and l_plan.c. */
#ifndef KL_L_GRAPH_H
#define KL_L_GRAPH_H
#include "kl/graph.h"
#include "kl/layers.h"
#include "lbind.h"

#define KL_GRAPH_MT "keras.Graph"
#define KL_PLAN_MT "keras.Plan"
#define KL_OPTIMIZER_MT "keras.Optimizer"

/* A graph userdata; g == NULL when closed. */
typedef struct kl_lua_graph {
  kl_graph *g;
} kl_lua_graph;

/* The open graph at idx, or a Lua error naming fn. */
kl_graph *kl_lua_checkgraph(lua_State *L, int idx, const char *fn);
/* The 0-based node id of the 1-based handle at idx (a Lua error when out of range). */
int kl_lua_checknode(lua_State *L, int idx, const kl_graph *g, const char *fn, const char *what);
/* Registers keras.Graph and keras.Plan, core.graph_new, core.plan_new, core.metric_resolve
 * into the module table at the stack top (called from core.c's opener list). */
void kl_lua_open_graph(lua_State *L);
/* The open plan at idx (borrowed), or a Lua error naming fn. */
kl_plan *kl_lua_checkplan(lua_State *L, int idx, const char *fn);
/* l_plan.c: keras.Plan and core.plan_new (called by kl_lua_open_graph). */
void kl_lua_open_plan(lua_State *L);
/* l_metric.c: reads the metric spec at idx, a canonical name ("auc") or a table {metric =
 * name, param = k, key = name}, and pushes its key (the name unless key is given). */
void kl_lua_check_metric(lua_State *L, int idx, const char *fn, kl_metric *m, int64_t *param);
/* The metric state of the keras.MetricAcc at idx, NULL if idx holds something else. */
kl_metric_acc *kl_lua_to_metric_acc(lua_State *L, int idx, const char *fn);
/* Reads opts.metric_params (n integers >= 0: AUC's num_thresholds, top-k's k; 0: the
 * default) into out; NULL when the option is absent. */
const int64_t *kl_lua_metric_params(lua_State *L, int opts, const char *fn, int n, int64_t *out);
#endif
