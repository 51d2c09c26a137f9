/* test_device_core.c: the device layer of the core (kl/device.h) on a guarded fake device
 * (kltest_fakedev.h: device memory is PROT_NONE to host code): transfers, in-place moves,
 * conversions through the host, the registry's device dispatch (mixed devices, host
 * fallback forward and backward, counted and warned once), the optimizer on a device, host
 * accessors refusing, allocation failures, and no leak of device blocks. */
#include <math.h>
#include <stdio.h>

#include "kl/device.h"
#include "kl/optim.h"
#include "kl/registry.h"
#include "kltest.h"
#include "kltest_fakedev.h"
#include "kltest_warn.h"

static kl_tensor *dense2(kl_dtype dt, int64_t r, int64_t c, double base) {
  int64_t shape[2] = {r, c};
  kl_tensor *t = NULL;
  if (kl_tensor_new_dense(dt, 2, shape, &t) != KL_OK) return NULL;
  for (int64_t i = 0; i < r * c; i++) kl_tensor_data_set(t, i, base + (double)i * 0.5 - 3);
  return t;
}

static kl_tensor *csr_sample(void) {
  /* 3 x 4: row 0 {1: 2}, row 1 {}, row 2 {0: -1, 3: 4} */
  kl_tensor *t = NULL;
  if (kl_tensor_new_csr(KL_FLOAT32, 3, 4, 3, &t) != KL_OK) return NULL;
  int64_t ip[4] = {0, 1, 1, 3}, ix[3] = {1, 0, 3};
  float v[3] = {2, -1, 4};
  memcpy(t->indptr, ip, sizeof ip);
  memcpy(t->indices, ix, sizeof ix);
  memcpy(t->data, v, sizeof v);
  return t;
}

/* Whether host tensors a and b hold the same values (dense comparison, exact). */
static int same_values(const kl_tensor *a, const kl_tensor *b) {
  kl_tensor *da = NULL, *db = NULL;
  int ok = kl_tensor_tostype(a, KL_STYPE_DEFAULT, &da) == KL_OK &&
           kl_tensor_tostype(b, KL_STYPE_DEFAULT, &db) == KL_OK && da->ndim == db->ndim &&
           kl_tensor_numel(da) == kl_tensor_numel(db) && da->dtype == db->dtype;
  for (int64_t i = 0; ok && i < kl_tensor_numel(da); i++) {
    double x = kl_tensor_data_at(da, i), y = kl_tensor_data_at(db, i);
    ok = x == y || (isnan(x) && isnan(y));
  }
  kl_tensor_release(da);
  kl_tensor_release(db);
  return ok;
}

/* A device tensor's values as a host copy compared with host tensor h. */
static int dev_equals(const kl_tensor *d, const kl_tensor *h) {
  kl_tensor *c = NULL;
  if (kl_tensor_to(d, KL_CPU, &c) != KL_OK) return 0;
  int ok = c->device == KL_CPU && c->stype == h->stype && same_values(c, h);
  kl_tensor_release(c);
  return ok;
}

static void test_no_backend(void) {
  kl_device_register(NULL);
  kl_tensor *h = dense2(KL_FLOAT32, 2, 2, 0), *d = NULL;
  CHECK_ERR(kl_tensor_to(h, FAKEDEV, &d), KL_ENODEV, "no CUDA device");
  CHECK(d == NULL);
  CHECK_ERR(kl_device_check("gpu", KL_DEVICE_CUDA(0)), KL_ENODEV, "gpu: no CUDA device");
  kl_tensor_release(h);
  fakedev_install();
  CHECK_ERR(kl_device_check("gpu", KL_DEVICE_CUDA(1)), KL_ENODEV, "out of range (1 GPU(s)");
  CHECK_OK(kl_device_check("gpu", KL_DEVICE_CUDA(0)));
  char b[32];
  CHECK(strcmp(kl_device_str(KL_CPU, b, sizeof b), "cpu(0)") == 0);
  CHECK(strcmp(kl_device_str(KL_DEVICE_CUDA(2), b, sizeof b), "gpu(2)") == 0);
}

static void test_transfers(void) {
  kl_tensor *h = dense2(KL_FLOAT64, 3, 5, 1), *d = NULL, *d2 = NULL, *back = NULL;
  CHECK_OK(kl_tensor_to(h, FAKEDEV, &d));
  CHECK(d->device == FAKEDEV && d->stype == KL_STYPE_DEFAULT && d->shape[1] == 5);
  CHECK_OK(kl_tensor_to(d, FAKEDEV, &d2)); /* already there: the same tensor */
  CHECK(d2 == d && d->refcount == 2);
  kl_tensor_release(d2);
  CHECK(dev_equals(d, h));
  /* csr and row_sparse keep their structure */
  kl_tensor *c = csr_sample(), *dc = NULL, *r = NULL, *dr = NULL;
  CHECK_OK(kl_tensor_to(c, FAKEDEV, &dc));
  CHECK(dc->stype == KL_STYPE_CSR && dc->nnz == 3 && dev_equals(dc, c));
  CHECK_OK(kl_tensor_tostype(c, KL_STYPE_ROW_SPARSE, &r));
  CHECK_OK(kl_tensor_to(r, FAKEDEV, &dr));
  CHECK(dr->nnz == 2 && dev_equals(dr, r));
  /* conversions of a device tensor stay on the device, with the host's values */
  kl_tensor *x = NULL, *hx = NULL;
  CHECK_OK(kl_tensor_tostype(dc, KL_STYPE_DEFAULT, &x));
  CHECK_OK(kl_tensor_tostype(c, KL_STYPE_DEFAULT, &hx));
  CHECK(x->device == FAKEDEV && dev_equals(x, hx));
  kl_tensor_release(x);
  CHECK_OK(kl_tensor_astype(d, KL_FLOAT32, &x));
  CHECK(x->device == FAKEDEV && x->dtype == KL_FLOAT32);
  kl_tensor_release(x);
  CHECK_OK(kl_tensor_copy(dc, &x));
  CHECK(x->device == FAKEDEV && dev_equals(x, c));
  kl_tensor_release(x);
  CHECK_OK(kl_tensor_slice_rows(d, 1, 3, &x));
  CHECK(x->device == FAKEDEV && x->shape[0] == 2);
  kl_tensor_release(x);
  int64_t idx[3] = {2, 0, 2};
  CHECK_OK(kl_tensor_take_rows(dc, idx, 3, &x));
  CHECK(x->device == FAKEDEV && x->stype == KL_STYPE_CSR && x->shape[0] == 3);
  kl_tensor_release(x);
  int64_t sh[1] = {15};
  CHECK_OK(kl_tensor_reshape(d, 1, sh, &x));
  CHECK(x->device == FAKEDEV && x->ndim == 1);
  kl_tensor_release(x);
  /* copyto across devices, both ways, converting stypes */
  kl_tensor *hd = NULL;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, c->shape, &hd));
  CHECK_OK(kl_tensor_copyto(dc, hd)); /* device csr -> host dense */
  CHECK(same_values(hd, hx));
  kl_tensor *dd = NULL;
  CHECK_OK(kl_tensor_new_dense_on(FAKEDEV, KL_FLOAT32, 2, c->shape, 1, &dd));
  CHECK_OK(kl_tensor_copyto(c, dd)); /* host csr -> device dense */
  CHECK(dev_equals(dd, hx));
  CHECK_OK(kl_tensor_copyto(dr, dc)); /* device rsp -> device csr */
  CHECK(dev_equals(dc, c));
  /* host accessors refuse */
  double v;
  int64_t at[2] = {0, 0};
  CHECK_ERR(kl_tensor_get(d, at, &v), KL_EUNSUPPORTED, "get: the tensor is on gpu(0)");
  CHECK_ERR(kl_tensor_check_format(dc, "check_format", 1), KL_EUNSUPPORTED,
            "check_format: the tensor is on gpu(0)");
  /* back to the host: a host tensor the host owns */
  CHECK_OK(kl_tensor_to(d, KL_CPU, &back));
  CHECK(back->device == KL_CPU && same_values(back, h));
  double bv;
  CHECK_OK(kl_tensor_get(back, at, &bv));
  CHECK(bv == kl_tensor_data_at(h, 0));
  kl_tensor *list[] = {h, d, back, c, dc, r, dr, hx, hd, dd};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}

static void test_move(void) {
  kl_tensor *w = dense2(KL_FLOAT32, 4, 3, 2), *ref = NULL;
  CHECK_OK(kl_tensor_copy(w, &ref));
  CHECK_OK(kl_tensor_move(w, FAKEDEV));
  CHECK(w->device == FAKEDEV && dev_equals(w, ref));
  CHECK_OK(kl_tensor_move(w, KL_CPU));
  CHECK(w->device == KL_CPU && same_values(w, ref));
  kl_tensor_release(w);
  kl_tensor_release(ref);
}

static void test_dispatch(void) {
  kl_set_warn_handler(kltest_on_warn, NULL);
  kl_tensor *a = dense2(KL_FLOAT32, 3, 4, 0), *b = dense2(KL_FLOAT32, 3, 4, 7);
  kl_tensor *da = NULL, *db = NULL, *out = NULL, *hout = NULL;
  CHECK_OK(kl_tensor_to(a, FAKEDEV, &da));
  CHECK_OK(kl_tensor_to(b, FAKEDEV, &db));
  kl_tensor *mixed[2] = {a, db};
  CHECK_ERR(kl_op_run(KL_OP_ADD, mixed, 2, NULL, &out), KL_EINVAL,
            "add: inputs on different devices: input 1 on cpu(0), input 2 on gpu(0)");
  long f0 = kl_device_fallback_count();
  int w0 = kltest_nwarn;
  kl_tensor *in[2] = {da, db}, *hin[2] = {a, b};
  CHECK_OK(kl_op_run(KL_OP_ADD, in, 2, NULL, &out));
  CHECK_OK(kl_op_run(KL_OP_ADD, hin, 2, NULL, &hout));
  CHECK(out->device == FAKEDEV && dev_equals(out, hout));
  CHECK(kl_device_fallback_count() == f0 + 1);
  CHECK(kltest_nwarn == w0 + 1 && strstr(kltest_lastwarn, "add on gpu(0) has no device kernel") != NULL);
  kl_tensor_release(out);
  CHECK_OK(kl_op_run(KL_OP_ADD, in, 2, NULL, &out)); /* warned once */
  CHECK(kltest_nwarn == w0 + 1 && kl_device_fallback_count() == f0 + 2);
  kl_tensor_release(out);
  /* csr . dense on the device: the host's csr kernel, result on the device */
  kl_tensor *c = csr_sample(), *dc = NULL, *w = dense2(KL_FLOAT32, 4, 2, 1), *dw = NULL;
  CHECK_OK(kl_tensor_to(c, FAKEDEV, &dc));
  CHECK_OK(kl_tensor_to(w, FAKEDEV, &dw));
  kl_tensor *hres = NULL;
  CHECK_OK(kl_dot(dc, dw, 0, 0, &out));
  CHECK_OK(kl_dot(c, w, 0, 0, &hres));
  CHECK(out->device == FAKEDEV && dev_equals(out, hres));
  /* backward: csr^T . gout as row_sparse, on the device */
  kl_tensor *dg = NULL, *hg = NULL, *din[2] = {dc, dw}, *hin2[2] = {c, w};
  CHECK_OK(kl_op_backward(KL_OP_DOT, din, 2, NULL, out, out, 1, KL_STYPE_ROW_SPARSE, &dg));
  CHECK_OK(kl_op_backward(KL_OP_DOT, hin2, 2, NULL, hres, hres, 1, KL_STYPE_ROW_SPARSE, &hg));
  CHECK(dg->device == FAKEDEV && dg->stype == KL_STYPE_ROW_SPARSE && dev_equals(dg, hg));
  kl_tensor *bad = NULL;
  CHECK_ERR(kl_op_backward(KL_OP_DOT, din, 2, NULL, out, hres, 1, KL_STYPE_ROW_SPARSE, &bad),
            KL_EINVAL, "another device");
  CHECK(bad == NULL);
  kl_set_warn_handler(NULL, NULL);
  kl_tensor *list[] = {a, b, da, db, hout, c, dc, w, dw, out, hres, dg, hg};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
}

/* Every rule on the device (the host's update, written back) against the host, 3 steps,
 * dense and row_sparse gradients. */
static void test_optimizer(void) {
  for (int kind = 0; kind < KL_OPT_COUNT; kind++) {
    for (int sparse = 0; sparse <= 1; sparse++) {
      kl_optimizer o;
      CHECK_OK(kl_optimizer_init(&o, (kl_opt_kind)kind));
      o.lazy_update = 1;
      kl_tensor *hw = dense2(KL_FLOAT32, 5, 3, 1), *dw = NULL;
      CHECK_OK(kl_tensor_to(hw, FAKEDEV, &dw));
      kl_tensor *hs[2] = {NULL, NULL}, *ds[2] = {NULL, NULL};
      CHECK_OK(kl_optimizer_create_states(&o, hw, hs));
      CHECK_OK(kl_optimizer_create_states(&o, dw, ds));
      int ns = kl_optimizer_num_states(&o);
      for (int i = 0; i < ns; i++) CHECK(ds[i]->device == FAKEDEV && dev_equals(ds[i], hs[i]));
      kl_tensor *g = dense2(KL_FLOAT32, 5, 3, -2), *gs = NULL, *dg = NULL;
      if (sparse) {
        int64_t rows[2] = {1, 3};
        CHECK_OK(kl_tensor_tostype(g, KL_STYPE_ROW_SPARSE, &gs));
        kl_tensor *r = NULL;
        CHECK_OK(kl_retain(gs, rows, 2, &r));
        kl_tensor_release(gs);
        gs = r;
      } else {
        gs = kl_tensor_retain(g);
      }
      CHECK_OK(kl_tensor_to(gs, FAKEDEV, &dg));
      for (int64_t t = 1; t <= 3; t++) {
        CHECK_OK(kl_optimizer_update(&o, hw, gs, hs, t));
        CHECK_OK(kl_optimizer_update(&o, dw, dg, ds, t));
      }
      CHECK(dev_equals(dw, hw));
      for (int i = 0; i < ns; i++) CHECK(dev_equals(ds[i], hs[i]));
      CHECK_ERR(kl_optimizer_update(&o, dw, gs, ds, 4), KL_EINVAL, "the gradient is on cpu(0)");
      kl_optimizer_release_states(&o, hs);
      kl_optimizer_release_states(&o, ds);
      kl_tensor *list[] = {hw, dw, g, gs, dg};
      for (size_t i = 0; i < sizeof list / sizeof *list; i++) kl_tensor_release(list[i]);
    }
  }
}

/* Every device allocation of a transfer and of a fallback op failing in turn: a clean
 * KL_ENOMEM each time, nothing left allocated. */
static void test_alloc_failures(void) {
  kl_tensor *c = csr_sample(), *w = dense2(KL_FLOAT32, 4, 2, 1);
  long live0 = fakedev_live();
  for (long k = 1; k < 40; k++) {
    kl_tensor *dc = NULL, *dw = NULL, *out = NULL;
    fakedev_fail_at(k);
    kl_status st = kl_tensor_to(c, FAKEDEV, &dc);
    if (st == KL_OK) st = kl_tensor_to(w, FAKEDEV, &dw);
    if (st == KL_OK) st = kl_dot(dc, dw, 0, 0, &out);
    fakedev_fail_at(0);
    CHECK(st == KL_OK || st == KL_ENOMEM);
    if (st != KL_OK) CHECK(out == NULL);
    kl_tensor_release(out);
    kl_tensor_release(dc);
    kl_tensor_release(dw);
    CHECK(fakedev_live() == live0);
    if (st == KL_OK) break;
  }
  kl_tensor_release(c);
  kl_tensor_release(w);
}

int main(void) {
  test_no_backend();
  test_transfers();
  test_move();
  test_dispatch();
  test_optimizer();
  test_alloc_failures();
  CHECK(fakedev_live() == 0);
  KLTEST_DONE();
}
