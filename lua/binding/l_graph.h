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
/* l_plan.c: keras.Plan and core.plan_new (called by kl_lua_open_graph). */
void kl_lua_open_plan(lua_State *L);
#endif
