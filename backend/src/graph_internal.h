/* graph_internal.h: the node layout shared by graph.c and the plan's files (plan*.c). */
#ifndef KL_GRAPH_INTERNAL_H
#define KL_GRAPH_INTERNAL_H
#include "kl/graph.h"

/* One node. Ops keep their inputs in inputs[nin]; reshape, dropout and cast in in0. */
typedef struct kl_node {
  kl_node_kind kind;
  kl_meta meta;        /* -1 marks a dim that follows the batch size */
  char *name;          /* owned, may be NULL */
  kl_tensor *value;    /* variable/constant: one reference */
  int trainable;
  kl_op op;            /* KL_NODE_OP */
  kl_attrs attrs;
  int *inputs;         /* owned */
  int nin;
  int in0;             /* reshape, dropout */
  int rs_ndim;         /* reshape target (may hold one -1) */
  int64_t rs_shape[KL_MAX_NDIM];
  double rate;         /* dropout */
  uint64_t seed;
} kl_node;

struct kl_graph {
  kl_node *nodes;
  int n, cap;
  int refs; /* references: the creator's, one per plan (kl_graph_retain / kl_graph_free) */
};

/* The node with id (borrowed), NULL when out of range. */
const kl_node *kl_graph_node(const kl_graph *g, int id);
/* The inputs of a node: a pointer to nin ids (NULL, 0 for leaves). */
static inline const int *kl_node_inputs(const kl_node *nd, int *nin) {
  if (nd->kind == KL_NODE_OP) {
    *nin = nd->nin;
    return nd->inputs;
  }
  if (nd->kind == KL_NODE_RESHAPE || nd->kind == KL_NODE_DROPOUT || nd->kind == KL_NODE_CAST) {
    *nin = 1;
    return &nd->in0;
  }
  *nin = 0;
  return NULL;
}
/* Resolves a reshape target (one -1 allowed) for numel elements into out[ndim]. */
kl_status kl_reshape_resolve(const char *fn, int64_t numel, int ndim, const int64_t *target,
                             int64_t *out);
/* Infers op's result meta over graph nodes with the batch dim unknown. */
kl_status kl_graph_infer_op(const kl_graph *g, kl_op op, const int *inputs, int nin,
                            const kl_attrs *a, kl_meta *out);
#endif
