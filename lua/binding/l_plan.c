/* l_plan.c: the "keras.Plan" userdata: compiled plans, training steps and the C epoch loop. */
#include <math.h>
#include <string.h>

#include "l_graph.h"

#define KL_MAX_METRICS 64

/* A plan userdata. The C plan holds its own reference to its graph (closing the graph's
 * userdata cannot free it under the plan); uservalue 1 is the graph userdata. */
typedef struct kl_lua_plan {
  kl_plan *p;
  int nfeeds, noutputs, nweights;
} kl_lua_plan;

static kl_lua_plan *check_plan(lua_State *L, int idx, const char *fn) {
  kl_lua_plan *u = (kl_lua_plan *)luaL_testudata(L, idx, KL_PLAN_MT);
  if (!u)
    kl_lua_fail(L, "bad argument #%d to '%s' (keras.Plan expected, got %s)", idx, fn,
                luaL_typename(L, idx));
  if (!u->p) kl_lua_fail(L, "%s: plan is closed", fn);
  return u;
}

kl_plan *kl_lua_checkplan(lua_State *L, int idx, const char *fn) {
  return check_plan(L, idx, fn)->p;
}

/* The most feeds, outputs or weights of one plan (a node list's length; nothing is sized by
 * it on the stack). */
#define KL_PLAN_MAX_IDS (1 << 20)

/* Reads opts[key], a list of node handles, into a scratch array of 0-based ids left on the
 * stack (the options table is at an absolute index); *n receives the count. */
static int *read_ids(lua_State *L, int opts, const char *key, const kl_graph *g, int *n) {
  lua_Integer len = 0;
  if (lua_getfield(L, opts, key) != LUA_TNIL) {
    if (!lua_istable(L, -1)) kl_lua_fail(L, "plan_new: option '%s' must be a list of nodes", key);
    len = (lua_Integer)lua_rawlen(L, -1);
    if (len > KL_PLAN_MAX_IDS)
      kl_lua_fail(L, "plan_new: %s has %lld entries (at most %d)", key, (long long)len,
                  KL_PLAN_MAX_IDS);
  }
  int *ids = (int *)kl_lua_scratch(L, (size_t)len, sizeof *ids);
  for (lua_Integer i = 1; i <= len; i++) {
    char what[48];
    snprintf(what, sizeof what, "%s[%lld]", key, (long long)i);
    lua_rawgeti(L, -2, i);
    ids[i - 1] = kl_lua_checknode(L, -1, g, "plan_new", what);
    lua_pop(L, 1);
  }
  lua_remove(L, -2); /* the list; the scratch array stays */
  *n = (int)len;
  return ids;
}

static int l_plan_new(lua_State *L) {
  static const char *const allowed[] = {"feeds", "outputs", "loss", "weights", "grad_stypes",
                                        "optimizer", "device", NULL};
  kl_graph *g = kl_lua_checkgraph(L, 1, "plan_new");
  luaL_checktype(L, 2, LUA_TTABLE);
  kl_lua_checkopts(L, 2, "plan_new", allowed);
  int nf, no, nw;
  int *feeds = read_ids(L, 2, "feeds", g, &nf);
  int *outputs = read_ids(L, 2, "outputs", g, &no);
  int *weights = read_ids(L, 2, "weights", g, &nw);
  kl_stype *gst = (kl_stype *)kl_lua_scratch(L, (size_t)nw, sizeof *gst);
  int loss = -1;
  if (lua_getfield(L, 2, "loss") != LUA_TNIL) loss = kl_lua_checknode(L, -1, g, "plan_new", "loss");
  lua_pop(L, 1);
  int has_gst = 0;
  if (lua_getfield(L, 2, "grad_stypes") != LUA_TNIL) {
    if (!lua_istable(L, -1)) kl_lua_fail(L, "plan_new: grad_stypes must be a list of stype names");
    has_gst = 1;
    for (int k = 0; k < nw; k++) {
      lua_rawgeti(L, -1, k + 1);
      const char *s = lua_isnil(L, -1) ? "default" : luaL_checkstring(L, -1);
      KL_LUA_TRY(L, kl_stype_parse("plan_new", s, &gst[k]));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  const kl_optimizer *opt = NULL;
  if (lua_getfield(L, 2, "optimizer") != LUA_TNIL) {
    /* The keras.Optimizer userdata block starts with its kl_optimizer (l_optim.c). */
    opt = (const kl_optimizer *)luaL_testudata(L, -1, KL_OPTIMIZER_MT);
    if (!opt)
      kl_lua_fail(L, "plan_new: optimizer must be a keras.Optimizer (got %s)",
                  luaL_typename(L, -1));
  }
  lua_pop(L, 1); /* the options table still references the optimizer */
  kl_device dev = KL_CPU; /* device = keras.gpu(n): the plan computes there (kl/graph.h) */
  if (lua_getfield(L, 2, "device") != LUA_TNIL) dev = kl_lua_checkdevice(L, lua_gettop(L), "plan_new");
  lua_pop(L, 1);
  kl_lua_plan *u = (kl_lua_plan *)lua_newuserdatauv(L, sizeof *u, 1);
  u->p = NULL;
  u->nfeeds = nf, u->noutputs = no, u->nweights = nw;
  luaL_setmetatable(L, KL_PLAN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  kl_plan_spec s = {feeds, nf, outputs, no, loss, weights, nw, has_gst ? gst : NULL, opt, dev};
  KL_LUA_TRY(L, kl_plan_new(g, &s, &u->p));
  return 1;
}

static int l_plan_gc(lua_State *L) {
  kl_lua_plan *u = (kl_lua_plan *)luaL_checkudata(L, 1, KL_PLAN_MT);
  kl_plan *p = u->p;
  u->p = NULL;
  kl_plan_free(p); /* touches only the plan's own tensors, never the graph */
  return 0;
}

/* Reads a list of tensors (or one tensor) at idx into a scratch array of max (>= 1) entries,
 * pushed on the stack (keep it there while the array is used); missing entries are NULL.
 * *n receives the count given. Runs no Lua code: the C calls that take the array retain
 * what they keep beyond their own return (kl_plan_fit_epoch retains its data). */
static kl_tensor **read_tensors(lua_State *L, int idx, const char *fn, int max, int *count) {
  kl_tensor **t = (kl_tensor **)kl_lua_scratch(L, (size_t)(max > 1 ? max : 1), sizeof *t);
  *count = 1;
  if (kl_lua_totensor(L, idx)) {
    t[0] = kl_lua_totensor(L, idx);
    return t;
  }
  if (!lua_istable(L, idx))
    kl_lua_fail(L, "%s: expected a list of tensors (got %s)", fn, luaL_typename(L, idx));
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n > max) kl_lua_fail(L, "%s: %lld tensors given, the plan takes %d", fn, (long long)n, max);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (!lua_isnil(L, -1)) t[i - 1] = kl_lua_checktensor(L, -1, fn);
    lua_pop(L, 1); /* the list keeps the tensor alive */
  }
  *count = (int)n;
  return t;
}

static int l_plan_forward(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "forward");
  int training = lua_toboolean(L, 3), nf;
  kl_tensor **feeds = read_tensors(L, 2, "forward", u->nfeeds, &nf);
  KL_LUA_TRY(L, kl_plan_forward(u->p, feeds, training));
  lua_createtable(L, u->noutputs, 0);
  for (int k = 0; k < u->noutputs; k++) {
    kl_lua_push_tensor(L, kl_tensor_retain(kl_plan_output(u->p, k)));
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

static int l_plan_loss(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "loss");
  lua_pushnumber(L, kl_plan_loss(u->p));
  return 1;
}

static int l_plan_backward(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "backward");
  KL_LUA_TRY(L, kl_plan_backward(u->p));
  lua_createtable(L, u->nweights, 0);
  for (int k = 0; k < u->nweights; k++) {
    kl_lua_push_tensor(L, kl_tensor_retain(kl_plan_grad(u->p, k)));
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

/* Entry i (1-based) of the list field key of the table at spec, or def when absent. */
static lua_Integer spec_int(lua_State *L, int spec, const char *key, lua_Integer i,
                            lua_Integer def, const char *fn) {
  if (!lua_istable(L, spec)) return def;
  lua_Integer v = def;
  if (lua_getfield(L, spec, key) != LUA_TNIL) {
    if (!lua_istable(L, -1)) kl_lua_fail(L, "%s: metric option '%s' must be a list", fn, key);
    lua_rawgeti(L, -1, i);
    v = kl_lua_checkint(L, -1, fn, key);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return v;
}

/* After a step: pushes {name = value} of the metrics named in the list at idx (canonical
 * names, as core.metric_resolve gives; "output_mean": a 0-d output's value), by default
 * output 1 against the last feed (the target). The table at spec (or nil) may give per
 * metric keys = {...} (the result's keys), outputs = {...} (1-based) and targets = {...}
 * (1-based feeds). */
static void push_step_metrics(lua_State *L, kl_lua_plan *u, int idx, int spec,
                              kl_tensor *const *feeds, const char *fn) {
  if (!lua_istable(L, idx)) kl_lua_fail(L, "%s: metrics must be a list of names", fn);
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  /* A device plan's outputs are read through host copies, made once each and owned by the
   * table at `hosts` (so that an error raised below frees them). */
  lua_createtable(L, u->noutputs, 0);
  const int hosts = lua_gettop(L);
  lua_createtable(L, 0, (int)len);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_Integer ko = spec_int(L, spec, "outputs", i, 1, fn);
    lua_Integer kt = spec_int(L, spec, "targets", i, u->nfeeds, fn);
    if (ko < 1 || ko > u->noutputs || kt < 1 || kt > u->nfeeds)
      kl_lua_fail(L, "%s: metric %lld reads output %lld of %d and feed %lld of %d", fn,
                  (long long)i, (long long)ko, u->noutputs, (long long)kt, u->nfeeds);
    const kl_tensor *out = kl_plan_output(u->p, (int)ko - 1), *y = feeds[kt - 1];
    if (!out || !y) kl_lua_fail(L, "%s: metrics need an output and a target", fn);
    if (out->device != KL_CPU) {
      if (lua_rawgeti(L, hosts, ko) == LUA_TNIL) {
        lua_pop(L, 1);
        kl_tensor *h = NULL;
        KL_LUA_TRY(L, kl_tensor_to(out, KL_CPU, &h));
        kl_lua_push_tensor(L, h);
        lua_pushvalue(L, -1);
        lua_rawseti(L, hosts, ko);
      }
      out = kl_lua_totensor(L, -1);
      lua_pop(L, 1); /* the table at hosts keeps it */
    }
    if (lua_istable(L, spec) && lua_getfield(L, spec, "keys") != LUA_TNIL) {
      lua_rawgeti(L, -1, i); /* the key, then the metric under it */
      lua_remove(L, -2);
      lua_rawgeti(L, idx, i);
      kl_metric_acc *acc = kl_lua_to_metric_acc(L, -1, fn);
      double v = NAN;
      if (acc) { /* a running state: this batch added, its value so far */
        KL_LUA_TRY(L, kl_metric_acc_update(acc, y, out));
        v = kl_metric_acc_result(acc);
      } else if (strcmp(luaL_checkstring(L, -1), "output_mean") == 0) {
        v = kl_tensor_data_at(out, 0);
      } else {
        kl_metric m;
        KL_LUA_TRY(L, kl_metric_parse(lua_tostring(L, -1), &m));
        KL_LUA_TRY(L, kl_metric_value(m, y, out, &v));
      }
      lua_pop(L, 1);
      lua_pushnumber(L, v);
      lua_settable(L, -3);
      continue;
    }
    if (lua_istable(L, spec)) lua_pop(L, 1);
    lua_rawgeti(L, idx, i);
    kl_metric_acc *acc = kl_lua_to_metric_acc(L, -1, fn);
    if (acc) { /* a running state (keras.MetricAcc): this batch added, its value so far */
      KL_LUA_TRY(L, kl_metric_acc_update(acc, y, out));
      lua_getiuservalue(L, -1, 1);
      lua_remove(L, -2);
      lua_pushnumber(L, kl_metric_acc_result(acc));
      lua_settable(L, -3);
      continue;
    }
    const char *name = luaL_checkstring(L, -1);
    kl_metric m;
    double v = NAN;
    KL_LUA_TRY(L, kl_metric_parse(name, &m));
    KL_LUA_TRY(L, kl_metric_value(m, y, out, &v));
    lua_pushnumber(L, v);
    lua_settable(L, -3); /* the name is the key */
  }
  lua_remove(L, hosts); /* the result table is left on top */
}

/* p:train_step({x..., y}[, metrics[, spec]]) -> loss[, {metric = value}]: one C call for
 * forward, backward and update; the metrics come from that same forward (before the
 * update); spec as push_step_metrics. */
static int l_plan_train_step(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "train_step");
  int want_metrics = !lua_isnoneornil(L, 3), nf;
  lua_settop(L, 4);
  kl_tensor **feeds = read_tensors(L, 2, "train_step", u->nfeeds, &nf); /* at 5 */
  double loss = 0;
  KL_LUA_TRY(L, kl_plan_train_step(u->p, feeds, &loss));
  lua_pushnumber(L, loss);
  if (!want_metrics) return 1;
  push_step_metrics(L, u, 3, 4, feeds, "train_step");
  return 2;
}

/* p:train_step_empty(): a data-parallel step on no rows (a rank whose part of an iterator
 * has ended while others' have not): zero gradients through the gradient hook, then the
 * same update as every rank's. */
static int l_plan_train_step_empty(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "train_step_empty");
  KL_LUA_TRY(L, kl_plan_train_step_empty(u->p));
  return 0;
}

/* p:test_step({x..., y}[, metrics[, spec]]) -> loss[, {metric = value}]: a forward in
 * inference mode with the loss (evaluate over one batch of an iterator). */
static int l_plan_test_step(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "test_step");
  int want_metrics = !lua_isnoneornil(L, 3), nf;
  lua_settop(L, 4);
  kl_tensor **feeds = read_tensors(L, 2, "test_step", u->nfeeds, &nf); /* at 5 */
  KL_LUA_TRY(L, kl_plan_forward(u->p, feeds, 0));
  lua_pushnumber(L, kl_plan_loss(u->p));
  if (!want_metrics) return 1;
  push_step_metrics(L, u, 3, 4, feeds, "test_step");
  return 2;
}

/* ------------------------------------------------------------------ epoch loop */

/* State of the on_batch trampoline. Lua values live on the stack of the calling C function;
 * err_slot is a stack slot (absolute) that receives a callback's error. */
typedef struct cb_state {
  lua_State *L;
  int fn, names, err_slot, nmetrics, failed;
} cb_state;

/* Runs inside lua_pcall: args (state, fn, names, batch, seen, total, loss); builds the metrics
 * table and calls fn. Everything that can raise happens here. */
static int cb_body(lua_State *L) {
  cb_state *s = (cb_state *)lua_touserdata(L, 1);
  const double *m = (const double *)lua_touserdata(L, 8);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 4);
  lua_pushvalue(L, 5);
  lua_pushvalue(L, 6);
  lua_pushvalue(L, 7);
  lua_createtable(L, 0, s->nmetrics);
  for (int i = 0; i < s->nmetrics; i++) {
    lua_rawgeti(L, 3, i + 1);
    lua_pushnumber(L, m[i]);
    lua_settable(L, -3);
  }
  lua_call(L, 5, 1);
  return 1;
}

static int cb_trampoline(void *ud, int64_t batch, int64_t seen, int64_t total, double loss,
                         const double *metric_avgs) {
  cb_state *s = (cb_state *)ud;
  lua_State *L = s->L;
  if (!lua_checkstack(L, 12)) {
    s->failed = 2; /* out of stack: stop, reported after the loop */
    return 1;
  }
  lua_pushcfunction(L, cb_body);
  lua_pushlightuserdata(L, s);
  lua_pushvalue(L, s->fn);
  lua_pushvalue(L, s->names);
  lua_pushinteger(L, (lua_Integer)batch + 1); /* batches are numbered from 1 in Lua */
  lua_pushinteger(L, (lua_Integer)seen);
  lua_pushinteger(L, (lua_Integer)total);
  lua_pushnumber(L, loss);
  lua_pushlightuserdata(L, (void *)metric_avgs);
  if (lua_pcall(L, 8, 1, 0) != LUA_OK) {
    lua_replace(L, s->err_slot); /* keep the error; raised after C has freed its memory */
    s->failed = 1;
    return 1;
  }
  int stop = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return stop;
}

/* Reads opts.metrics (a list of metric names; "output_mean": the mean of a 0-d output, as
 * one output's loss) into ids; leaves at *names_idx the list of result keys (opts.metric_keys,
 * default the names). */
static int read_metrics(lua_State *L, int opts, const char *fn, int *ids, int *names_idx) {
  int n = 0;
  if (lua_istable(L, opts) && lua_getfield(L, opts, "metrics") != LUA_TNIL) {
    if (!lua_istable(L, -1)) kl_lua_fail(L, "%s: option 'metrics' must be a list of names", fn);
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    if (len > KL_MAX_METRICS) kl_lua_fail(L, "%s: at most %d metrics", fn, KL_MAX_METRICS);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, -1, i);
      const char *name = luaL_checkstring(L, -1);
      kl_metric m;
      if (strcmp(name, "output_mean") == 0)
        ids[n++] = KL_EPOCH_OUTPUT_MEAN;
      else {
        KL_LUA_TRY(L, kl_metric_parse(name, &m));
        ids[n++] = (int)m;
      }
      lua_pop(L, 1);
    }
    if (lua_getfield(L, opts, "metric_keys") != LUA_TNIL) {
      if (!lua_istable(L, -1) || (lua_Integer)lua_rawlen(L, -1) != len)
        kl_lua_fail(L, "%s: option 'metric_keys' must be a list as long as 'metrics'", fn);
      lua_remove(L, -2);
    } else {
      lua_pop(L, 1);
    }
  } else {
    if (lua_istable(L, opts)) lua_pop(L, 1);
    lua_newtable(L);
  }
  *names_idx = lua_gettop(L);
  return n;
}

/* Reads opts[key], a list of n integers in [lo, hi] (1-based in Lua) into out as 0-based;
 * returns out, or NULL when the option is absent. */
static int *read_metric_index(lua_State *L, int opts, const char *fn, const char *key, int n,
                              int lo, int hi, int *out) {
  if (!lua_istable(L, opts) || lua_getfield(L, opts, key) == LUA_TNIL) {
    if (lua_istable(L, opts)) lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != n)
    kl_lua_fail(L, "%s: option '%s' must be a list as long as 'metrics'", fn, key);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    int64_t v = kl_lua_checkint(L, -1, fn, key);
    if (v < lo || v > hi)
      kl_lua_fail(L, "%s: %s[%d] = %lld out of range [%d, %d]", fn, key, i + 1, (long long)v, lo,
                  hi);
    out[i] = (int)(v - 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

/* Reads opts.extra (a list of tensors, false for none: the empty "no weights") into a
 * scratch array pushed on the stack; *n receives the count. */
static kl_tensor **read_extra(lua_State *L, int opts, const char *fn, int max, int *n) {
  *n = 0;
  if (!lua_istable(L, opts) || lua_getfield(L, opts, "extra") == LUA_TNIL) {
    if (lua_istable(L, opts)) lua_pop(L, 1);
    return (kl_tensor **)kl_lua_scratch(L, 1, sizeof(kl_tensor *));
  }
  if (!lua_istable(L, -1)) kl_lua_fail(L, "%s: option 'extra' must be a list of tensors", fn);
  lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
  if (len > max) kl_lua_fail(L, "%s: %lld extra tensors given, the plan takes %d", fn, (long long)len, max);
  kl_tensor **t = (kl_tensor **)kl_lua_scratch(L, (size_t)(len > 0 ? len : 1), sizeof *t);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, -2, i);
    if (lua_toboolean(L, -1))
      t[i - 1] = kl_lua_checktensor(L, -1, fn);
    else if (!lua_isboolean(L, -1))
      kl_lua_fail(L, "%s: extra[%lld] must be a tensor or false", fn, (long long)i);
    lua_pop(L, 1); /* the list (kept below the scratch) holds the tensor */
  }
  *n = (int)len;
  return t;
}

/* Pushes the table {name = value} of the metric averages. */
static void push_metrics(lua_State *L, int names, int n, const double *avg) {
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, names, i + 1);
    lua_pushnumber(L, avg[i]);
    lua_settable(L, -3);
  }
}

/* fit_epoch (train = 1) and evaluate (train = 0): p:fit_epoch({x...}, y, opts). */
static int plan_loop(lua_State *L, int train) {
  static const char *const fit_allowed[] = {"batch_size", "shuffle", "metrics", "on_batch",
                                            "seed", "extra", "metric_keys", "metric_outputs",
                                            "metric_targets", "metric_params", "part",
                                            "nparts", NULL};
  static const char *const eval_allowed[] = {"batch_size", "metrics", "extra", "metric_keys",
                                             "metric_outputs", "metric_targets", "metric_params",
                                             NULL};
  const char *fn = train ? "fit_epoch" : "evaluate";
  kl_lua_plan *u = check_plan(L, 1, fn);
  int nx;
  kl_tensor *y = kl_lua_checktensor(L, 3, fn);
  lua_settop(L, 4);
  kl_tensor **x = read_tensors(L, 2, fn, u->nfeeds > 1 ? u->nfeeds - 1 : 1, &nx); /* at 5 */
  kl_lua_checkopts(L, 4, fn, train ? fit_allowed : eval_allowed);
  double bs = kl_lua_optnumber(L, 4, fn, "batch_size", 32);
  if (!(bs >= 1) || bs != floor(bs) || bs > 9e15)
    kl_lua_fail(L, "%s: batch_size must be a positive integer. Received: batch_size=%g", fn, bs);
  int shuffle = 0;
  if (train && lua_istable(L, 4) && lua_getfield(L, 4, "shuffle") != LUA_TNIL) {
    const char *sm = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (sm && strcmp(sm, "batch") == 0)
      shuffle = KL_SHUFFLE_BATCH;
    else if (lua_isboolean(L, -1))
      shuffle = lua_toboolean(L, -1);
    else
      kl_lua_fail(L, "%s: shuffle must be true, false or 'batch'", fn);
  }
  if (train && lua_istable(L, 4)) lua_pop(L, 1);
  kl_rng local;
  kl_rng *rng = kl_lua_rng(L);
  if (train && lua_istable(L, 4) && lua_getfield(L, 4, "seed") != LUA_TNIL) {
    kl_rng_seed(&local, (uint64_t)kl_lua_checkint(L, -1, fn, "seed"));
    rng = &local;
  }
  if (train && lua_istable(L, 4)) lua_pop(L, 1);
  int metrics[KL_MAX_METRICS], mouts[KL_MAX_METRICS], mtgts[KL_MAX_METRICS], names, nextra;
  kl_tensor **extra = read_extra(L, 4, fn, u->nfeeds, &nextra);
  int nm = read_metrics(L, 4, fn, metrics, &names);
  const int *mo = read_metric_index(L, 4, fn, "metric_outputs", nm, 1, u->noutputs, mouts);
  const int *mt = read_metric_index(L, 4, fn, "metric_targets", nm, 1, nextra + 1, mtgts);
  int64_t mparams[KL_MAX_METRICS];
  const int64_t *mp = kl_lua_metric_params(L, 4, fn, nm, mparams);
  int fnidx = 0;
  if (train && lua_istable(L, 4)) {
    lua_getfield(L, 4, "on_batch");
    if (!lua_isnil(L, -1)) {
      if (!lua_isfunction(L, -1)) kl_lua_fail(L, "%s: option 'on_batch' must be a function", fn);
      fnidx = lua_gettop(L);
    }
  }
  lua_pushnil(L); /* err_slot */
  cb_state cs = {L, fnidx, names, lua_gettop(L), nm, 0};
  kl_epoch_opts o = {(int64_t)bs, shuffle, rng, nm, metrics, fnidx ? cb_trampoline : NULL, &cs,
                     nextra, extra, mo, mt, mp, 0, 1};
  if (train) { /* data parallelism: this process's part (1-based in Lua) of nparts */
    double np = kl_lua_optnumber(L, 4, fn, "nparts", 1), pt = kl_lua_optnumber(L, 4, fn, "part", 1);
    if (!(np >= 1 && np <= 1e6 && np == floor(np)) || !(pt >= 1 && pt <= np && pt == floor(pt)))
      kl_lua_fail(L, "%s: part must be in 1..nparts (an integer >= 1). Received: part=%g, nparts=%g",
                  fn, pt, np);
    o.part = (int)pt - 1, o.nparts = (int)np;
  }
  double loss = NAN, avg[KL_MAX_METRICS];
  for (int i = 0; i < KL_MAX_METRICS; i++) avg[i] = NAN;
  kl_status st = train ? kl_plan_fit_epoch(u->p, x, nx, y, &o, &loss, avg)
                       : kl_plan_evaluate(u->p, x, nx, y, &o, &loss, avg);
  /* C has freed its temporaries: now errors may be raised. */
  if (cs.failed == 1) {
    lua_pushvalue(L, cs.err_slot);
    return lua_error(L);
  }
  if (cs.failed == 2) return kl_lua_fail(L, "%s: Lua stack overflow in on_batch", fn);
  if (st != KL_OK) return kl_lua_raise(L, st);
  lua_pushnumber(L, loss);
  push_metrics(L, names, nm, avg);
  return 2;
}

static int l_plan_fit_epoch(lua_State *L) { return plan_loop(L, 1); }
static int l_plan_evaluate(lua_State *L) { return plan_loop(L, 0); }

static int l_plan_predict(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "predict");
  int64_t bs = lua_isnoneornil(L, 3) ? 32 : kl_lua_checkint(L, 3, "predict", "batch_size");
  int nx;
  kl_tensor **x = read_tensors(L, 2, "predict", u->nfeeds > 0 ? u->nfeeds : 1, &nx);
  int nout = u->noutputs > 0 ? u->noutputs : 1;
  if (!lua_checkstack(L, nout + 4)) return kl_lua_fail(L, "predict: too many outputs");
  kl_tensor **tmp = (kl_tensor **)kl_lua_scratch(L, (size_t)nout, sizeof *tmp);
  kl_tensor ***slots = (kl_tensor ***)kl_lua_scratch(L, (size_t)nout, sizeof *slots);
  for (int k = 0; k < nout; k++) slots[k] = kl_lua_newslot(L); /* userdata do not move */
  KL_LUA_TRY(L, kl_plan_predict_outputs(u->p, x, nx, bs, nout, tmp));
  for (int k = 0; k < nout; k++) *slots[k] = tmp[k];
  return nout; /* one tensor per output of the plan */
}

/* The 0-based index of the 1-based integer at idx in 1..n. */
static int check_index(lua_State *L, int idx, int n, const char *fn, const char *what) {
  int64_t k = kl_lua_checkint(L, idx, fn, what);
  if (k < 1 || k > n) kl_lua_fail(L, "%s: %s = %lld out of range 1..%d", fn, what, (long long)k, n);
  return (int)(k - 1);
}

static int l_plan_num_states(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "num_states");
  int k = check_index(L, 2, u->nweights, "num_states", "weight");
  lua_pushinteger(L, kl_plan_num_states(u->p, k));
  return 1;
}

static int l_plan_state(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "state");
  int k = check_index(L, 2, u->nweights, "state", "weight");
  int s = check_index(L, 3, kl_plan_num_states(u->p, k), "state", "state");
  kl_lua_push_tensor(L, kl_tensor_retain(kl_plan_state(u->p, k, s)));
  return 1;
}

static int l_plan_num_weights(lua_State *L) {
  lua_pushinteger(L, check_plan(L, 1, "num_weights")->nweights);
  return 1;
}

static int l_plan_step_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)kl_plan_step_count(check_plan(L, 1, "step_count")->p));
  return 1;
}

static int l_plan_set_step_count(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "set_step_count");
  int64_t t = kl_lua_checkint(L, 2, "set_step_count", "t");
  if (t < 0) kl_lua_fail(L, "set_step_count: t = %lld must be >= 0", (long long)t);
  kl_plan_set_step_count(u->p, t);
  return 0;
}

static int l_plan_set_learning_rate(lua_State *L) {
  kl_lua_plan *u = check_plan(L, 1, "set_learning_rate");
  double lr = luaL_checknumber(L, 2);
  if (!(lr >= 0) || isinf(lr))
    kl_lua_fail(L, "set_learning_rate: learning_rate must be >= 0. Received: learning_rate=%g", lr);
  kl_plan_set_learning_rate(u->p, lr);
  return 0;
}

static int l_plan_tostring(lua_State *L) {
  kl_lua_plan *u = (kl_lua_plan *)luaL_checkudata(L, 1, KL_PLAN_MT);
  lua_pushfstring(L, u->p ? "<Plan %d feeds, %d outputs, %d weights>" : "<Plan closed>",
                  u->nfeeds, u->noutputs, u->nweights);
  return 1;
}

void kl_lua_open_plan(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"forward", l_plan_forward},
      {"loss", l_plan_loss},
      {"backward", l_plan_backward},
      {"train_step", l_plan_train_step},
      {"train_step_empty", l_plan_train_step_empty},
      {"num_weights", l_plan_num_weights},
      {"test_step", l_plan_test_step},
      {"fit_epoch", l_plan_fit_epoch},
      {"evaluate", l_plan_evaluate},
      {"predict", l_plan_predict},
      {"num_states", l_plan_num_states},
      {"state", l_plan_state},
      {"step_count", l_plan_step_count},
      {"set_step_count", l_plan_set_step_count},
      {"set_learning_rate", l_plan_set_learning_rate},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, KL_PLAN_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_plan_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_plan_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_plan_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_plan_new);
  lua_setfield(L, -2, "plan_new");
}
