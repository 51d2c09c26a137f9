/* graph.c: symbolic graphs: nodes, and shape/stype inference with an unknown batch dim. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"
#include "ops_internal.h"
#include "tensor_internal.h"

/* Two batch sizes substituted for -1: a dim of the result that differs between the two
 * inferences depends on the batch and is marked -1. Distinct and >= 2, so a check that
 * passes for both (equality, numpy broadcasting) passes for every batch size. */
#define KL_B1 2
#define KL_B2 3

kl_status kl_graph_new(kl_graph **out) {
  *out = NULL;
  kl_graph *g = kl_calloc(1, sizeof *g);
  if (!g) return KL_ENOMEM;
  g->refs = 1;
  *out = g;
  return KL_OK;
}

kl_graph *kl_graph_retain(kl_graph *g) {
  if (g) g->refs++;
  return g;
}

void kl_graph_free(kl_graph *g) {
  if (!g || --g->refs > 0) return;
  for (int i = 0; i < g->n; i++) {
    kl_node *nd = &g->nodes[i];
    kl_tensor_release(nd->value);
    kl_free(nd->name);
    kl_free(nd->inputs);
  }
  kl_free(g->nodes);
  kl_free(g);
}

int kl_graph_size(const kl_graph *g) { return g ? g->n : 0; }

const kl_node *kl_graph_node(const kl_graph *g, int id) {
  if (!g || id < 0 || id >= g->n) return NULL;
  return &g->nodes[id];
}

/* Appends a zeroed node and returns it (its id is g->n - 1). */
static kl_node *kl_graph_push(kl_graph *g) {
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 16;
    kl_node *nn = kl_realloc(g->nodes, (size_t)cap * sizeof *nn);
    if (!nn) return NULL;
    g->nodes = nn;
    g->cap = cap;
  }
  kl_node *nd = &g->nodes[g->n++];
  memset(nd, 0, sizeof *nd);
  return nd;
}

static char *kl_strdup_or_null(const char *s, int *fail) {
  *fail = 0;
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *c = kl_malloc(n);
  if (!c) {
    *fail = 1;
    return NULL;
  }
  memcpy(c, s, n);
  return c;
}

/* Appends a zeroed node named a copy of name (NULL: unnamed) into *nd; KL_ENOMEM leaves the
 * graph as it was. */
static kl_status kl_graph_push_named(kl_graph *g, const char *name, kl_node **nd) {
  int fail;
  char *nm = kl_strdup_or_null(name, &fail);
  if (fail) return KL_ENOMEM;
  *nd = kl_graph_push(g);
  if (!*nd) {
    kl_free(nm);
    return KL_ENOMEM;
  }
  (*nd)->name = nm;
  return KL_OK;
}

static kl_status kl_check_graph_id(const kl_graph *g, const char *fn, int id) {
  KL_CHECK(g != NULL, KL_EINVAL, "%s: graph is NULL", fn);
  KL_CHECK(id >= 0 && id < g->n, KL_EINDEX, "%s: node %d out of range for a graph of %d nodes",
           fn, id, g->n);
  return KL_OK;
}

kl_status kl_graph_placeholder(kl_graph *g, const kl_meta *meta, const char *name, int *id) {
  KL_CHECK(g && meta && id, KL_EINVAL, "placeholder: NULL argument");
  KL_CHECK(meta->ndim >= 0 && meta->ndim <= KL_MAX_NDIM, KL_ESHAPE,
           "placeholder: ndim %d out of range", meta->ndim);
  KL_CHECK(meta->dtype >= KL_FLOAT32 && meta->dtype <= KL_INT64, KL_EDTYPE,
           "placeholder: bad dtype %d", (int)meta->dtype);
  KL_CHECK(meta->stype >= KL_STYPE_DEFAULT && meta->stype <= KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "placeholder: bad stype %d", (int)meta->stype);
  KL_CHECK(meta->stype != KL_STYPE_CSR || meta->ndim == 2, KL_ESHAPE,
           "placeholder: a csr placeholder must be 2-d, got %d-d", meta->ndim);
  int64_t known[KL_MAX_NDIM];
  for (int d = 0; d < meta->ndim; d++) {
    KL_CHECK(meta->shape[d] >= -1, KL_ESHAPE, "placeholder: shape[%d] = %lld must be >= -1", d,
             (long long)meta->shape[d]);
    known[d] = meta->shape[d] < 0 ? 1 : meta->shape[d];
  }
  KL_TRY(kl_shape_check("placeholder", meta->ndim, known));
  kl_node *nd = NULL;
  KL_TRY(kl_graph_push_named(g, name, &nd));
  nd->kind = KL_NODE_PLACEHOLDER;
  nd->meta = *meta;
  *id = g->n - 1;
  return KL_OK;
}

static kl_status kl_graph_holder(kl_graph *g, kl_node_kind kind, kl_tensor *value,
                                 int trainable, const char *name, int *id, const char *fn) {
  KL_CHECK(g && value && id, KL_EINVAL, "%s: NULL argument", fn);
  kl_node *nd = NULL;
  KL_TRY(kl_graph_push_named(g, name, &nd));
  nd->kind = kind;
  kl_tensor_meta(value, &nd->meta);
  nd->value = kl_tensor_retain(value);
  nd->trainable = trainable ? 1 : 0;
  *id = g->n - 1;
  return KL_OK;
}

kl_status kl_graph_variable(kl_graph *g, kl_tensor *value, int trainable, const char *name,
                            int *id) {
  return kl_graph_holder(g, KL_NODE_VARIABLE, value, trainable, name, id, "variable");
}

kl_status kl_graph_constant(kl_graph *g, kl_tensor *value, int *id) {
  return kl_graph_holder(g, KL_NODE_CONSTANT, value, 0, NULL, id, "constant");
}

/* meta with every -1 replaced by b. */
static void kl_meta_subst(const kl_meta *m, int64_t b, kl_meta *out) {
  *out = *m;
  for (int d = 0; d < m->ndim; d++)
    if (out->shape[d] < 0) out->shape[d] = b;
}

/* Elementwise ops with numpy broadcasting of dense operands. */
static int kl_op_broadcasts(kl_op op) {
  return op == KL_OP_ADD || op == KL_OP_SUB || op == KL_OP_MUL || op == KL_OP_DIV;
}

/* For broadcasting ops: an unknown dim that meets a known size c > 1 in another operand
 * (numpy alignment, from the last axis) can only be c (or 1) at run time, so both inference
 * passes use c there: node(-1, 3) * constant(4, 3) infers (4, 3). The real check runs on
 * the fed shapes. */
static void kl_broadcast_subst(const kl_graph *g, const int *inputs, int nin, kl_meta *in1,
                               kl_meta *in2) {
  for (int i = 0; i < nin; i++) {
    const kl_meta *mi = &g->nodes[inputs[i]].meta;
    for (int d = 0; d < mi->ndim; d++) {
      if (mi->shape[d] >= 0) continue;
      int back = mi->ndim - d; /* position counted from the last axis */
      for (int j = 0; j < nin; j++) {
        const kl_meta *mj = &g->nodes[inputs[j]].meta;
        if (j == i || mj->ndim < back) continue;
        int64_t c = mj->shape[mj->ndim - back];
        if (c > 1) {
          in1[i].shape[d] = c;
          in2[i].shape[d] = c;
          break;
        }
      }
    }
  }
}

kl_status kl_graph_infer_op(const kl_graph *g, kl_op op, const int *inputs, int nin,
                            const kl_attrs *a, kl_meta *out) {
  kl_meta stack[2 * 8], *in1 = stack, *in2, o1, o2;
  KL_CHECK(op >= 0 && op < KL_OP_COUNT, KL_EINVAL, "graph op: unknown op %d", (int)op);
  const char *name = kl_op_name(op);
  KL_CHECK(nin >= 0 && nin <= KL_MAX_OP_INPUTS, KL_EINVAL, "%s: %d inputs (at most %d)", name,
           nin, KL_MAX_OP_INPUTS);
  for (int i = 0; i < nin; i++)
    KL_CHECK(inputs[i] >= 0 && inputs[i] < g->n, KL_EINDEX,
             "%s: input %d is node %d, out of range for a graph of %d nodes", name, i, inputs[i],
             g->n);
  if (nin > 8 && !(in1 = kl_malloc_n(2 * (size_t)nin, sizeof *in1))) return KL_ENOMEM;
  in2 = in1 + (nin > 8 ? nin : 8);
  for (int i = 0; i < nin; i++) {
    kl_meta_subst(&g->nodes[inputs[i]].meta, KL_B1, &in1[i]);
    kl_meta_subst(&g->nodes[inputs[i]].meta, KL_B2, &in2[i]);
  }
  if (kl_op_broadcasts(op)) kl_broadcast_subst(g, inputs, nin, in1, in2);
  kl_attrs zero;
  memset(&zero, 0, sizeof zero);
  if (!a) a = &zero;
  kl_status st = kl_op_infer(op, in1, nin, a, &o1);
  if (st == KL_OK) st = kl_op_infer(op, in2, nin, a, &o2);
  if (in1 != stack) kl_free(in1);
  KL_TRY(st);
  KL_CHECK(o1.ndim == o2.ndim, KL_ESHAPE, "%s: result rank depends on the batch size", name);
  *out = o1;
  for (int d = 0; d < o1.ndim; d++)
    if (o1.shape[d] != o2.shape[d]) out->shape[d] = -1;
  return KL_OK;
}

kl_status kl_graph_op(kl_graph *g, kl_op op, const int *inputs, int nin, const kl_attrs *a,
                      int *id) {
  KL_CHECK(g && id && (inputs || nin == 0), KL_EINVAL, "graph op: NULL argument");
  kl_meta m;
  KL_TRY(kl_graph_infer_op(g, op, inputs, nin, a, &m));
  int *ins = NULL;
  if (nin > 0) {
    ins = kl_malloc_n((size_t)nin, sizeof *ins);
    if (!ins) return KL_ENOMEM;
    memcpy(ins, inputs, (size_t)nin * sizeof *ins);
  }
  kl_node *nd = kl_graph_push(g);
  if (!nd) {
    kl_free(ins);
    return KL_ENOMEM;
  }
  nd->kind = KL_NODE_OP;
  nd->meta = m;
  nd->op = op;
  if (a) nd->attrs = *a;
  nd->inputs = ins;
  nd->nin = nin;
  *id = g->n - 1;
  return KL_OK;
}

kl_status kl_reshape_resolve(const char *fn, int64_t numel, int ndim, const int64_t *target,
                             int64_t *out) {
  int free_at = -1;
  int64_t known = 1;
  for (int d = 0; d < ndim; d++) {
    if (target[d] == -1) {
      KL_CHECK(free_at < 0, KL_ESHAPE, "%s: more than one -1 in the target shape", fn);
      free_at = d;
    } else {
      KL_CHECK(target[d] >= 0, KL_ESHAPE, "%s: shape[%d] = %lld must be >= 0 or -1", fn, d,
               (long long)target[d]);
      known *= target[d];
    }
    out[d] = target[d];
  }
  if (free_at >= 0) {
    KL_CHECK(known > 0 && numel % known == 0, KL_ESHAPE,
             "%s: cannot reshape %lld elements into a shape with %lld elements per batch row",
             fn, (long long)numel, (long long)known);
    out[free_at] = numel / known;
  } else {
    KL_CHECK(known == numel, KL_ESHAPE, "%s: cannot reshape %lld elements into %lld", fn,
             (long long)numel, (long long)known);
  }
  return KL_OK;
}

kl_status kl_graph_reshape(kl_graph *g, int input, int ndim, const int64_t *shape, int *id) {
  KL_CHECK(g && id && (shape || ndim == 0), KL_EINVAL, "reshape: NULL argument");
  KL_TRY(kl_check_graph_id(g, "reshape", input));
  KL_CHECK(ndim >= 0 && ndim <= KL_MAX_NDIM, KL_ESHAPE, "reshape: ndim %d out of range", ndim);
  const kl_meta *im = &g->nodes[input].meta;
  KL_CHECK(im->stype == KL_STYPE_DEFAULT, KL_ESTYPE,
           "reshape: input is %s; only dense tensors can be reshaped", kl_stype_name(im->stype));
  /* Infer with the two batch sizes, like ops: dims that differ follow the batch. */
  kl_meta out = *im;
  int64_t s1[KL_MAX_NDIM], s2[KL_MAX_NDIM];
  kl_meta m1, m2;
  kl_meta_subst(im, KL_B1, &m1);
  kl_meta_subst(im, KL_B2, &m2);
  KL_TRY(kl_reshape_resolve("reshape", kl_shape_numel(m1.ndim, m1.shape), ndim, shape, s1));
  KL_TRY(kl_reshape_resolve("reshape", kl_shape_numel(m2.ndim, m2.shape), ndim, shape, s2));
  out.ndim = ndim;
  for (int d = 0; d < ndim; d++) out.shape[d] = s1[d] == s2[d] ? s1[d] : -1;
  kl_node *nd = kl_graph_push(g);
  if (!nd) return KL_ENOMEM;
  nd->kind = KL_NODE_RESHAPE;
  nd->meta = out;
  nd->inputs = NULL;
  nd->in0 = input;
  nd->rs_ndim = ndim;
  for (int d = 0; d < ndim; d++) nd->rs_shape[d] = shape[d];
  *id = g->n - 1;
  return KL_OK;
}

kl_status kl_graph_dropout(kl_graph *g, int input, double rate, uint64_t seed, int *id) {
  KL_CHECK(g && id, KL_EINVAL, "dropout: NULL argument");
  KL_TRY(kl_check_graph_id(g, "dropout", input));
  KL_CHECK(rate >= 0.0 && rate < 1.0, KL_EINVAL,
           "Dropout: rate must be in [0, 1). Received: rate=%g", rate);
  const kl_meta *im = &g->nodes[input].meta;
  KL_CHECK(kl_is_float(im->dtype), KL_EDTYPE, "dropout: input dtype %s is not a float type",
           kl_dtype_name(im->dtype));
  kl_meta m = *im;
  m.stype = KL_STYPE_DEFAULT; /* a sparse input is densified: dropping entries keeps none */
  kl_node *nd = kl_graph_push(g);
  if (!nd) return KL_ENOMEM;
  nd->kind = KL_NODE_DROPOUT;
  nd->meta = m;
  nd->in0 = input;
  nd->rate = rate;
  nd->seed = seed;
  *id = g->n - 1;
  return KL_OK;
}

kl_status kl_graph_cast(kl_graph *g, int input, kl_stype stype, int *id) {
  KL_CHECK(g && id, KL_EINVAL, "cast: NULL argument");
  KL_TRY(kl_check_graph_id(g, "cast", input));
  KL_CHECK(stype >= KL_STYPE_DEFAULT && stype <= KL_STYPE_ROW_SPARSE, KL_ESTYPE,
           "cast: bad stype %d", (int)stype);
  kl_meta m = g->nodes[input].meta;
  KL_CHECK(stype != KL_STYPE_CSR || m.ndim == 2, KL_ESHAPE, "cast: csr needs a 2-d input, got %d-d",
           m.ndim);
  KL_CHECK(stype != KL_STYPE_ROW_SPARSE || m.ndim >= 1, KL_ESHAPE,
           "cast: row_sparse needs an input of rank >= 1, got 0-d");
  m.stype = stype;
  kl_node *nd = kl_graph_push(g);
  if (!nd) return KL_ENOMEM;
  nd->kind = KL_NODE_CAST;
  nd->meta = m;
  nd->in0 = input;
  *id = g->n - 1;
  return KL_OK;
}

kl_status kl_graph_meta(const kl_graph *g, int id, kl_meta *out) {
  KL_TRY(kl_check_graph_id(g, "meta", id));
  *out = g->nodes[id].meta;
  return KL_OK;
}

kl_node_kind kl_graph_kind(const kl_graph *g, int id) {
  if (!g || id < 0 || id >= g->n) return (kl_node_kind)-1;
  return g->nodes[id].kind;
}

kl_tensor *kl_graph_value(const kl_graph *g, int id) {
  if (!g || id < 0 || id >= g->n) return NULL;
  return g->nodes[id].value;
}

kl_status kl_graph_set_value(kl_graph *g, int id, kl_tensor *value) {
  KL_TRY(kl_check_graph_id(g, "set_value", id));
  KL_CHECK(value != NULL, KL_EINVAL, "set_value: value is NULL");
  kl_node *nd = &g->nodes[id];
  KL_CHECK(nd->kind == KL_NODE_VARIABLE || nd->kind == KL_NODE_CONSTANT, KL_EINVAL,
           "set_value: node %d is not a variable or constant", id);
  kl_meta m;
  kl_tensor_meta(value, &m);
  char b1[96], b2[96];
  KL_CHECK(m.dtype == nd->meta.dtype, KL_EDTYPE, "set_value: dtype %s does not match %s",
           kl_dtype_name(m.dtype), kl_dtype_name(nd->meta.dtype));
  KL_CHECK(m.stype == nd->meta.stype, KL_ESTYPE, "set_value: stype %s does not match %s",
           kl_stype_name(m.stype), kl_stype_name(nd->meta.stype));
  KL_CHECK(m.ndim == nd->meta.ndim &&
               memcmp(m.shape, nd->meta.shape, (size_t)m.ndim * sizeof m.shape[0]) == 0,
           KL_ESHAPE, "set_value: shape (%s) does not match (%s)",
           kl_shape_str(m.ndim, m.shape, b1, sizeof b1),
           kl_shape_str(nd->meta.ndim, nd->meta.shape, b2, sizeof b2));
  kl_tensor_retain(value);
  kl_tensor_release(nd->value);
  nd->value = value;
  return KL_OK;
}
