/* cuda_blas_real.c: the real half of cuda_blas.h: cuBLAS and cuSPARSE, loaded by dlopen on
 * the first call that needs them, never when keras.cuda loads.
 *
 * Linking cuBLAS into the module cost every process that asked keras.num_gpus() ~180-255 MB
 * of RSS and 60-160 ms (gpu/README.md, NOTES-GPU-MPI.md), GPU or not. Here the libraries are
 * opened (RTLD_NOW | RTLD_LOCAL) by their sonames, libcublas.so.13 and libcusparse.so.12
 * (CUDA 13: cuSPARSE keeps major 12), else the unversioned names, through the loader path
 * (CUDA's lib64 is on it here); their entry points are found by dlsym, and each device's
 * handle is created at its first use, current device set first. The headers are included
 * for their types only: nothing here links against the libraries.
 *
 * KERAS_LUA_CUBLAS / KERAS_LUA_CUSPARSE name another file to load instead (a path or a
 * soname). A library that cannot be loaded, or lacks an entry point, is KL_EDEVICE with
 * dlerror's text, remembered (the next call fails the same way, quickly). The status strings of
 * cuda_vendor.c (kl_cuda_cublas_errstr / kl_cuda_cusparse_errstr) come from the libraries
 * when they load, else from the status names of the headers. A mutex per library serialises
 * set-stream + call, so threads sharing a device's handle do not race. */
#define DISABLE_CUSPARSE_DEPRECATED /* the legacy API's deprecation warnings: not used here */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusparse.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_blas.h"
#include "cuda_vendor.h"
#include "kl_cuda_dev.h"

/* cuda_blas.h names these values without the headers */
_Static_assert(CUBLAS_OP_N == KL_CUBLAS_OP_N && CUBLAS_OP_T == KL_CUBLAS_OP_T, "cublasOperation_t");
_Static_assert(CUSPARSE_OPERATION_NON_TRANSPOSE == KL_CUSPARSE_OP_NON_TRANSPOSE &&
                   CUSPARSE_OPERATION_TRANSPOSE == KL_CUSPARSE_OP_TRANSPOSE,
               "cusparseOperation_t");
_Static_assert(CUSPARSE_INDEX_32I == KL_CUSPARSE_INDEX_32I &&
                   CUSPARSE_INDEX_64I == KL_CUSPARSE_INDEX_64I, "cusparseIndexType_t");
_Static_assert(CUSPARSE_INDEX_BASE_ZERO == KL_CUSPARSE_INDEX_BASE_ZERO, "cusparseIndexBase_t");
_Static_assert(CUSPARSE_ORDER_COL == KL_CUSPARSE_ORDER_COL &&
                   CUSPARSE_ORDER_ROW == KL_CUSPARSE_ORDER_ROW, "cusparseOrder_t");
_Static_assert(CUSPARSE_SPMM_ALG_DEFAULT == KL_CUSPARSE_SPMM_ALG_DEFAULT, "cusparseSpMMAlg_t");
_Static_assert(CUDA_R_32F == KL_CUDA_R_32F && CUDA_R_64F == KL_CUDA_R_64F, "cudaDataType");
_Static_assert(CUSPARSE_STATUS_INVALID_VALUE == KL_CUSPARSE_STATUS_INVALID_VALUE, "cusparseStatus_t");
_Static_assert(CUBLAS_STATUS_INVALID_VALUE == KL_CUBLAS_STATUS_INVALID_VALUE, "cublasStatus_t");

#define KL_BLAS_MAX_DEVICES 64

/* ------------------------------------------------------------------ loading */

typedef struct lib {
  const char *name;            /* "cuBLAS" */
  const char *const *sonames;  /* tried in order */
  pthread_mutex_t lock;        /* loading, handle creation, calls */
  int tried;                   /* loading was attempted (ok or not) */
  void *so;                    /* dlopen handle, NULL when not loaded */
  char err[512];               /* why not, once tried and failed */
} lib;

static const char *const cublas_sonames[] = {"libcublas.so.13", "libcublas.so", NULL};
static const char *const cusparse_sonames[] = {"libcusparse.so.12", "libcusparse.so", NULL};
static lib L_blas = {"cuBLAS", cublas_sonames, PTHREAD_MUTEX_INITIALIZER, 0, NULL, ""};
static lib L_sparse = {"cuSPARSE", cusparse_sonames, PTHREAD_MUTEX_INITIALIZER, 0, NULL, ""};

static struct {
  cublasStatus_t (*create)(cublasHandle_t *);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
  cublasStatus_t (*set_pointer_mode)(cublasHandle_t, cublasPointerMode_t);
  cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                          const float *, const float *, int, const float *, int, const float *,
                          float *, int);
  cublasStatus_t (*dgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                          const double *, const double *, int, const double *, int,
                          const double *, double *, int);
  const char *(*status_string)(cublasStatus_t);
  cublasHandle_t handle[KL_BLAS_MAX_DEVICES];
} B;

static struct {
  cusparseStatus_t (*create)(cusparseHandle_t *);
  cusparseStatus_t (*set_stream)(cusparseHandle_t, cudaStream_t);
  cusparseStatus_t (*create_csr)(cusparseConstSpMatDescr_t *, int64_t, int64_t, int64_t,
                                 const void *, const void *, const void *, cusparseIndexType_t,
                                 cusparseIndexType_t, cusparseIndexBase_t, cudaDataType);
  cusparseStatus_t (*create_const_dn)(cusparseConstDnMatDescr_t *, int64_t, int64_t, int64_t,
                                      const void *, cudaDataType, cusparseOrder_t);
  cusparseStatus_t (*create_dn)(cusparseDnMatDescr_t *, int64_t, int64_t, int64_t, void *,
                                cudaDataType, cusparseOrder_t);
  cusparseStatus_t (*destroy_sp)(cusparseConstSpMatDescr_t);
  cusparseStatus_t (*destroy_dn)(cusparseConstDnMatDescr_t);
  cusparseStatus_t (*spmm_buffer_size)(cusparseHandle_t, cusparseOperation_t,
                                       cusparseOperation_t, const void *,
                                       cusparseConstSpMatDescr_t, cusparseConstDnMatDescr_t,
                                       const void *, cusparseDnMatDescr_t, cudaDataType,
                                       cusparseSpMMAlg_t, size_t *);
  cusparseStatus_t (*spmm)(cusparseHandle_t, cusparseOperation_t, cusparseOperation_t,
                           const void *, cusparseConstSpMatDescr_t, cusparseConstDnMatDescr_t,
                           const void *, cusparseDnMatDescr_t, cudaDataType, cusparseSpMMAlg_t,
                           void *);
  const char *(*error_string)(cusparseStatus_t);
  cusparseHandle_t handle[KL_BLAS_MAX_DEVICES];
} S;

/* dlsym of name into *fp; records the failure in l->err. */
static int sym(lib *l, const char *name, void *fp) {
  void *p = dlsym(l->so, name);
  if (!p) {
    snprintf(l->err, sizeof l->err, "%s: the library loaded has no entry point %s", l->name,
             name);
    return 0;
  }
  memcpy(fp, &p, sizeof p); /* object pointer to function pointer (POSIX) */
  return 1;
}

/* Loads l once (call with l->lock held); 1 when loaded. */
static int load(lib *l) {
  if (l->tried) return l->so != NULL;
  l->tried = 1;
  char why[384] = "";
  /* KERAS_LUA_CUBLAS / KERAS_LUA_CUSPARSE: a path or soname to load instead (another CUDA
   * release's library; the specs name a missing one to see the error) */
  const char *over = getenv(l == &L_blas ? "KERAS_LUA_CUBLAS" : "KERAS_LUA_CUSPARSE");
  const char *first = over && *over ? over : l->sonames[0];
  l->so = dlopen(first, RTLD_NOW | RTLD_LOCAL);
  if (!l->so) {
    const char *e = dlerror();
    snprintf(why, sizeof why, "%s", e ? e : "dlopen failed");
    for (int i = 1; first == l->sonames[0] && l->sonames[i] && !l->so; i++)
      l->so = dlopen(l->sonames[i], RTLD_NOW | RTLD_LOCAL);
  }
  if (!l->so) {
    snprintf(l->err, sizeof l->err,
             "%s: cannot load %s (%s): install the CUDA toolkit's %s library or put it on "
             "LD_LIBRARY_PATH",
             l->name, first, why, l->name);
    return 0;
  }
  int ok;
  if (l == &L_blas)
    ok = sym(l, "cublasCreate_v2", &B.create) && sym(l, "cublasSetStream_v2", &B.set_stream) &&
         sym(l, "cublasSetMathMode", &B.set_math_mode) &&
         sym(l, "cublasSetPointerMode_v2", &B.set_pointer_mode) &&
         sym(l, "cublasSgemm_v2", &B.sgemm) && sym(l, "cublasDgemm_v2", &B.dgemm) &&
         sym(l, "cublasGetStatusString", &B.status_string);
  else
    ok = sym(l, "cusparseCreate", &S.create) && sym(l, "cusparseSetStream", &S.set_stream) &&
         sym(l, "cusparseCreateConstCsr", &S.create_csr) &&
         sym(l, "cusparseCreateConstDnMat", &S.create_const_dn) &&
         sym(l, "cusparseCreateDnMat", &S.create_dn) &&
         sym(l, "cusparseDestroySpMat", &S.destroy_sp) &&
         sym(l, "cusparseDestroyDnMat", &S.destroy_dn) &&
         sym(l, "cusparseSpMM_bufferSize", &S.spmm_buffer_size) &&
         sym(l, "cusparseSpMM", &S.spmm) && sym(l, "cusparseGetErrorString", &S.error_string);
  if (!ok) {
    dlclose(l->so);
    l->so = NULL;
    if (l == &L_blas) memset(&B, 0, sizeof B);
    else memset(&S, 0, sizeof S);
  }
  return ok;
}

int kl_cuda_blas_loaded(void) {
  pthread_mutex_lock(&L_blas.lock);
  int a = L_blas.so != NULL;
  pthread_mutex_unlock(&L_blas.lock);
  pthread_mutex_lock(&L_sparse.lock);
  int b = L_sparse.so != NULL;
  pthread_mutex_unlock(&L_sparse.lock);
  return a || b;
}

/* The status strings (cuda_vendor.h): the library's own, loading it when needed (an error
 * report may be the first use); the header's status name when it cannot be loaded. */
static const char *cublas_name(int s) {
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

static const char *cusparse_name(int s) {
  switch (s) {
    case CUSPARSE_STATUS_NOT_INITIALIZED: return "CUSPARSE_STATUS_NOT_INITIALIZED";
    case CUSPARSE_STATUS_ALLOC_FAILED: return "CUSPARSE_STATUS_ALLOC_FAILED";
    case CUSPARSE_STATUS_INVALID_VALUE: return "CUSPARSE_STATUS_INVALID_VALUE";
    case CUSPARSE_STATUS_ARCH_MISMATCH: return "CUSPARSE_STATUS_ARCH_MISMATCH";
    case CUSPARSE_STATUS_EXECUTION_FAILED: return "CUSPARSE_STATUS_EXECUTION_FAILED";
    case CUSPARSE_STATUS_INTERNAL_ERROR: return "CUSPARSE_STATUS_INTERNAL_ERROR";
    case CUSPARSE_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSPARSE_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSPARSE_STATUS_NOT_SUPPORTED: return "CUSPARSE_STATUS_NOT_SUPPORTED";
    case CUSPARSE_STATUS_INSUFFICIENT_RESOURCES: return "CUSPARSE_STATUS_INSUFFICIENT_RESOURCES";
    default: return "unknown cuSPARSE status";
  }
}

const char *kl_cuda_cublas_errstr(int status) {
  pthread_mutex_lock(&L_blas.lock);
  const char *s = load(&L_blas) ? B.status_string((cublasStatus_t)status) : NULL;
  pthread_mutex_unlock(&L_blas.lock);
  return s ? s : cublas_name(status);
}

const char *kl_cuda_cusparse_errstr(int status) {
  pthread_mutex_lock(&L_sparse.lock);
  const char *s = load(&L_sparse) ? S.error_string((cusparseStatus_t)status) : NULL;
  pthread_mutex_unlock(&L_sparse.lock);
  return s ? s : cusparse_name(status);
}

/* ------------------------------------------------------------------ handles */

static kl_status ordinal(kl_device d, const char *what, int *ord) {
  *ord = KL_DEVICE_ORDINAL(d);
  if (!KL_DEVICE_IS_CUDA(d) || *ord >= KL_BLAS_MAX_DEVICES)
    return kl_cuda_seterr(KL_EINVAL, "%s: not a CUDA device (%d)", what, (int)d);
  return KL_OK;
}

/* cuBLAS's handle of device d, loaded and created on first use (L_blas.lock held). */
static kl_status blas_handle(kl_device d, cublasHandle_t *h) {
  int ord;
  KL_TRY(ordinal(d, "cuBLAS", &ord));
  if (!load(&L_blas)) return kl_cuda_seterr(KL_EDEVICE, "%s", L_blas.err);
  if (!B.handle[ord]) {
    KL_TRY(kl_cuda_rt_set_device(ord));
    cublasHandle_t nh = NULL;
    KL_TRY(kl_cuda_check_cublas((int)B.create(&nh), "cublasCreate"));
    /* full-precision math (no TF32 for float32), scalars from the host */
    kl_status st = kl_cuda_check_cublas((int)B.set_math_mode(nh, CUBLAS_DEFAULT_MATH),
                                        "cublasSetMathMode");
    if (st == KL_OK)
      st = kl_cuda_check_cublas((int)B.set_pointer_mode(nh, CUBLAS_POINTER_MODE_HOST),
                                "cublasSetPointerMode");
    if (st != KL_OK) return st; /* the handle is kept out of use; cuBLAS frees at exit */
    B.handle[ord] = nh;
  }
  *h = B.handle[ord];
  return KL_OK;
}

static kl_status sparse_handle(kl_device d, cusparseHandle_t *h) {
  int ord;
  KL_TRY(ordinal(d, "cuSPARSE", &ord));
  if (!load(&L_sparse)) return kl_cuda_seterr(KL_EDEVICE, "%s", L_sparse.err);
  if (!S.handle[ord]) {
    KL_TRY(kl_cuda_rt_set_device(ord));
    cusparseHandle_t nh = NULL;
    KL_TRY(kl_cuda_check_cusparse((int)S.create(&nh), "cusparseCreate"));
    S.handle[ord] = nh;
  }
  *h = S.handle[ord];
  return KL_OK;
}

/* ------------------------------------------------------------------ calls */

kl_status kl_cuda_blas_gemm(kl_device d, kl_dtype dt, const kl_cuda_gemm_call *c, double alpha,
                            double beta, kl_cuda_stream s) {
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "cuda gemm: dtype %s, expected float32 or float64",
                          kl_cuda_dtype_name(dt));
  pthread_mutex_lock(&L_blas.lock);
  cublasHandle_t h = NULL;
  kl_status st = blas_handle(d, &h);
  if (st == KL_OK)
    st = kl_cuda_check_cublas((int)B.set_stream(h, (cudaStream_t)s), "cublasSetStream");
  if (st == KL_OK) {
    const cublasOperation_t ta = (cublasOperation_t)c->transa, tb = (cublasOperation_t)c->transb;
    if (dt == KL_FLOAT32) {
      const float a = (float)alpha, b = (float)beta;
      st = kl_cuda_check_cublas((int)B.sgemm(h, ta, tb, c->m, c->n, c->k, &a, c->A, c->lda,
                                             c->B, c->ldb, &b, c->C, c->ldc),
                                "cublasSgemm");
    } else {
      st = kl_cuda_check_cublas((int)B.dgemm(h, ta, tb, c->m, c->n, c->k, &alpha, c->A, c->lda,
                                             c->B, c->ldb, &beta, c->C, c->ldc),
                                "cublasDgemm");
    }
  }
  pthread_mutex_unlock(&L_blas.lock);
  return st;
}

kl_status kl_cuda_blas_spmm(kl_device d, kl_dtype dt, const kl_cuda_spmm_call *c, double alpha,
                            double beta, kl_cuda_stream s) {
  if (dt != KL_FLOAT32 && dt != KL_FLOAT64)
    return kl_cuda_seterr(KL_EDTYPE, "cuda spmm: dtype %s, expected float32 or float64",
                          kl_cuda_dtype_name(dt));
  const float af = (float)alpha, bf = (float)beta;
  const void *pa = dt == KL_FLOAT32 ? (const void *)&af : (const void *)&alpha;
  const void *pb = dt == KL_FLOAT32 ? (const void *)&bf : (const void *)&beta;
  pthread_mutex_lock(&L_sparse.lock);
  cusparseHandle_t h = NULL;
  cusparseConstSpMatDescr_t A = NULL;
  cusparseConstDnMatDescr_t Bm = NULL;
  cusparseDnMatDescr_t C = NULL;
  void *work = NULL;
  size_t wbytes = 0;
  const cusparseOperation_t oa = (cusparseOperation_t)c->opA, ob = (cusparseOperation_t)c->opB;
  const cudaDataType ct = (cudaDataType)c->compute_type;
  const cusparseSpMMAlg_t alg = (cusparseSpMMAlg_t)c->alg;
  kl_status st = sparse_handle(d, &h);
  if (st == KL_OK)
    st = kl_cuda_check_cusparse((int)S.set_stream(h, (cudaStream_t)s), "cusparseSetStream");
  if (st == KL_OK)
    st = kl_cuda_check_cusparse(
        (int)S.create_csr(&A, c->a_rows, c->a_cols, c->a_nnz, c->a_offsets, c->a_columns,
                          c->a_values, (cusparseIndexType_t)c->a_offsets_type,
                          (cusparseIndexType_t)c->a_columns_type,
                          (cusparseIndexBase_t)c->a_base, (cudaDataType)c->a_value_type),
        "cusparseCreateConstCsr");
  if (st == KL_OK)
    st = kl_cuda_check_cusparse(
        (int)S.create_const_dn(&Bm, c->b_rows, c->b_cols, c->b_ld, c->b_values,
                               (cudaDataType)c->b_value_type, (cusparseOrder_t)c->b_order),
        "cusparseCreateConstDnMat");
  if (st == KL_OK)
    st = kl_cuda_check_cusparse(
        (int)S.create_dn(&C, c->c_rows, c->c_cols, c->c_ld, c->c_values,
                         (cudaDataType)c->c_value_type, (cusparseOrder_t)c->c_order),
        "cusparseCreateDnMat");
  if (st == KL_OK)
    st = kl_cuda_check_cusparse(
        (int)S.spmm_buffer_size(h, oa, ob, pa, A, Bm, pb, C, ct, alg, &wbytes),
        "cusparseSpMM_bufferSize");
  if (st == KL_OK && wbytes > 0) st = kl_cuda_dev_alloc(d, wbytes, &work);
  if (st == KL_OK)
    st = kl_cuda_check_cusparse((int)S.spmm(h, oa, ob, pa, A, Bm, pb, C, ct, alg, work),
                                "cusparseSpMM");
  if (A) (void)S.destroy_sp(A);
  if (Bm) (void)S.destroy_dn(Bm);
  if (C) (void)S.destroy_dn((cusparseConstDnMatDescr_t)C);
  pthread_mutex_unlock(&L_sparse.lock);
  kl_cuda_dev_free(d, work); /* stream-ordered reuse: safe once queued */
  return st;
}
